/**
 * Workflow runs on the `workflow-runs` BullMQ queue (Redis), consumed by the runner
 * (runner/src/runner/queue.py, BullMQ for Python: same Lua scripts, same key layout).
 *
 * A job is one run: its id is the run id, its timestamp the trigger time (the runner's
 * trigger-to-start histogram measures from it), its data
 * `{ run_id, tenant_id, workflow_id, steps, input }` with the steps in execution order.
 * Runs are not retried by the queue (`attempts: 1`): a step may have had effects (an HTTP
 * call) before it failed, so a new run is a decision for the tenant, not for the queue.
 *
 * Only types come from bullmq here: the connection lives in redis-queue.ts, so the tests
 * (and anything else using these functions) load neither BullMQ nor ioredis.
 */
import { randomUUID } from "node:crypto";
import type { KeepJobs } from "bullmq";
import type { WorkflowDefinition, WorkflowStep } from "./workflows.js";

export const QUEUE_NAME = "workflow-runs";
export const JOB_NAME = "run";
/** Completed jobs are only bookkeeping; failed ones are kept for a week to be looked at. */
export const REMOVE_ON_COMPLETE: KeepJobs = { age: 3600, count: 1000 };
export const REMOVE_ON_FAIL: KeepJobs = { age: 7 * 24 * 3600 };
export const DEFAULT_REDIS_URL = "redis://localhost:6379/0";

export interface RunJobData {
  run_id: string;
  tenant_id: string;
  workflow_id: string;
  steps: { id: string; type: string; config: Record<string, unknown> }[];
  input: Record<string, unknown>;
}

export interface RunTrigger {
  workflowId: string;
  tenantId: string;
  definition: WorkflowDefinition;
  input?: Record<string, unknown>;
  /** Defaults to a new UUID. */
  runId?: string;
}

/** What enqueueing needs of a BullMQ Queue (a fake in tests). */
export interface JobSink {
  add(
    name: string,
    data: RunJobData,
    opts: { jobId: string; attempts: number; removeOnComplete: KeepJobs; removeOnFail: KeepJobs },
  ): Promise<{ id?: string | undefined }>;
}

/** What the queue metrics read of a BullMQ Queue (a fake in tests). */
export interface QueueStatsSource {
  readonly name: string;
  getJobCounts(...types: ("waiting" | "prioritized" | "failed")[]): Promise<Record<string, number>>;
  getJobs(types: "wait"[], start: number, end: number, asc: boolean): Promise<{ timestamp: number }[]>;
}

export interface QueueStats {
  waiting: number;
  failed: number;
  oldestWaitingSeconds: number;
}

/**
 * The steps in execution order: a topological order of the `next` graph that keeps the
 * definition's order among steps that are ready together (the runner runs them in sequence).
 */
export function executionOrder(definition: WorkflowDefinition): WorkflowStep[] {
  const indegree = new Map(definition.steps.map((s) => [s.id, 0]));
  for (const step of definition.steps) {
    for (const next of step.next) indegree.set(next, (indegree.get(next) ?? 0) + 1);
  }
  const byId = new Map(definition.steps.map((s) => [s.id, s]));
  const position = new Map(definition.steps.map((s, index) => [s.id, index]));
  const order: WorkflowStep[] = [];
  const ready = definition.steps.filter((s) => indegree.get(s.id) === 0);
  while (ready.length > 0) {
    const step = ready.shift() as WorkflowStep;
    order.push(step);
    for (const next of step.next) {
      const left = (indegree.get(next) ?? 0) - 1;
      indegree.set(next, left);
      const target = byId.get(next);
      if (left === 0 && target) ready.push(target);
    }
    ready.sort((a, b) => (position.get(a.id) ?? 0) - (position.get(b.id) ?? 0));
  }
  if (order.length !== definition.steps.length) {
    throw new Error("workflow definition has a cycle (validate it first)");
  }
  return order;
}

/** The job for a run (pure: exported for tests). */
export function runJobData(trigger: RunTrigger, runId: string): RunJobData {
  return {
    run_id: runId,
    tenant_id: trigger.tenantId,
    workflow_id: trigger.workflowId,
    steps: executionOrder(trigger.definition).map(({ id, type, config }) => ({ id, type, config })),
    input: trigger.input ?? {},
  };
}

/** Enqueue one run; resolves to its run id once Redis has the job. */
export async function enqueueRun(queue: JobSink, trigger: RunTrigger): Promise<string> {
  const runId = trigger.runId ?? randomUUID();
  await queue.add(JOB_NAME, runJobData(trigger, runId), {
    jobId: runId,
    attempts: 1,
    removeOnComplete: REMOVE_ON_COMPLETE,
    removeOnFail: REMOVE_ON_FAIL,
  });
  return runId;
}

/** Depth, failures and the age of the oldest waiting job, read from the queue now. */
export async function readQueueStats(queue: QueueStatsSource, now: () => number = Date.now): Promise<QueueStats> {
  const [counts, oldest] = await Promise.all([
    queue.getJobCounts("waiting", "prioritized", "failed"),
    // the wait list's tail is its oldest job (asc: oldest first)
    queue.getJobs(["wait"], 0, 0, true),
  ]);
  const first = oldest[0];
  return {
    waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
    failed: counts.failed ?? 0,
    oldestWaitingSeconds: first ? Math.max(0, (now() - first.timestamp) / 1000) : 0,
  };
}

/** Parse REDIS_URL (default redis://localhost:6379/0). Throws on anything but redis(s)://host. */
export function parseRedisUrl(value: string | undefined): string {
  const raw = value?.trim() || DEFAULT_REDIS_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`REDIS_URL must be a redis:// or rediss:// URL, got ${JSON.stringify(redact(raw))}`);
  }
  if ((url.protocol !== "redis:" && url.protocol !== "rediss:") || url.hostname === "") {
    throw new Error(`REDIS_URL must be a redis:// or rediss:// URL with a host, got ${JSON.stringify(redact(raw))}`);
  }
  return raw;
}

/** `url` without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, "$1:***@");
}
