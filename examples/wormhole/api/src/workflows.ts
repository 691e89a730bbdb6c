/**
 * Validation of workflow definitions (the `workflows.definition` JSON column).
 *
 * A definition is `{ "steps": [...] }`. Each step has a unique `id`, a known
 * `type`, and optionally `next` (ids of the steps that run after it) and a
 * free-form `config` object. The step graph must not contain cycles.
 */

export const STEP_TYPES = ["http", "delay", "transform", "notify"] as const;
export type StepType = (typeof STEP_TYPES)[number];

export const MAX_STEPS = 100;

export interface WorkflowStep {
  id: string;
  type: StepType;
  next: string[];
  config: Record<string, unknown>;
}

export interface WorkflowDefinition {
  steps: WorkflowStep[];
}

export type ValidationResult =
  | { ok: true; definition: WorkflowDefinition }
  | { ok: false; errors: string[] };

const STEP_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isStepType(value: unknown): value is StepType {
  return typeof value === "string" && (STEP_TYPES as readonly string[]).includes(value);
}

/**
 * Validate an untrusted definition. On success the returned definition is
 * normalised (`next` and `config` always present).
 */
export function validateWorkflowDefinition(input: unknown): ValidationResult {
  const errors: string[] = [];

  if (!isRecord(input)) {
    return { ok: false, errors: ["definition must be a JSON object"] };
  }
  const rawSteps = input.steps;
  if (!Array.isArray(rawSteps)) {
    return { ok: false, errors: ["definition.steps must be an array"] };
  }
  if (rawSteps.length === 0) {
    return { ok: false, errors: ["definition.steps must contain at least one step"] };
  }
  if (rawSteps.length > MAX_STEPS) {
    return { ok: false, errors: [`definition.steps has more than ${MAX_STEPS} steps`] };
  }

  const steps: WorkflowStep[] = [];
  const seen = new Set<string>();

  rawSteps.forEach((raw: unknown, index) => {
    const where = `steps[${index}]`;
    if (!isRecord(raw)) {
      errors.push(`${where} must be an object`);
      return;
    }
    const { id, type, next = [], config = {} } = raw;

    let stepId: string | undefined;
    if (typeof id !== "string" || !STEP_ID_PATTERN.test(id)) {
      errors.push(`${where}.id must match ${STEP_ID_PATTERN.source}`);
    } else if (seen.has(id)) {
      errors.push(`${where}.id "${id}" is not unique`);
    } else {
      seen.add(id);
      stepId = id;
    }

    if (!isStepType(type)) {
      errors.push(`${where}.type must be one of ${STEP_TYPES.join(", ")} (got ${JSON.stringify(type)})`);
    }

    const nextIds: string[] = [];
    if (!Array.isArray(next) || !next.every((n): n is string => typeof n === "string")) {
      errors.push(`${where}.next must be an array of step ids`);
    } else {
      nextIds.push(...next);
    }

    if (!isRecord(config)) {
      errors.push(`${where}.config must be an object`);
    }

    if (stepId !== undefined && isStepType(type) && isRecord(config)) {
      steps.push({ id: stepId, type, next: nextIds, config });
    }
  });

  if (errors.length > 0) {
    return { ok: false, errors };
  }

  // References: every `next` must name an existing step, and not itself.
  for (const step of steps) {
    for (const target of step.next) {
      if (target === step.id) {
        errors.push(`step "${step.id}" lists itself in next`);
      } else if (!seen.has(target)) {
        errors.push(`step "${step.id}" has unknown next step "${target}"`);
      }
    }
  }
  if (errors.length > 0) {
    return { ok: false, errors };
  }

  const cycle = findCycle(steps);
  if (cycle) {
    return { ok: false, errors: [`steps form a cycle: ${cycle.join(" -> ")}`] };
  }

  return { ok: true, definition: { steps } };
}

/** Returns one cycle (first step repeated at the end) or null. */
function findCycle(steps: readonly WorkflowStep[]): string[] | null {
  const edges = new Map(steps.map((s) => [s.id, s.next]));
  const state = new Map<string, "visiting" | "done">();
  const path: string[] = [];

  const visit = (id: string): string[] | null => {
    const current = state.get(id);
    if (current === "done") return null;
    if (current === "visiting") {
      return [...path.slice(path.indexOf(id)), id];
    }
    state.set(id, "visiting");
    path.push(id);
    for (const next of edges.get(id) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(id, "done");
    return null;
  };

  for (const step of steps) {
    const cycle = visit(step.id);
    if (cycle) return cycle;
  }
  return null;
}
