import { describe, expect, it } from "vitest";
import { MAX_STEPS, validateWorkflowDefinition } from "../src/workflows.js";

function errorsOf(input: unknown): string[] {
  const result = validateWorkflowDefinition(input);
  if (result.ok) throw new Error("expected validation to fail");
  return result.errors;
}

describe("validateWorkflowDefinition", () => {
  it("accepts a valid definition and normalises optional fields", () => {
    const result = validateWorkflowDefinition({
      steps: [
        { id: "fetch", type: "http", next: ["wait"], config: { url: "https://example.test" } },
        { id: "wait", type: "delay", next: ["shape", "tell"], config: { seconds: 5 } },
        { id: "shape", type: "transform" },
        { id: "tell", type: "notify" },
      ],
    });
    expect(result).toEqual({
      ok: true,
      definition: {
        steps: [
          { id: "fetch", type: "http", next: ["wait"], config: { url: "https://example.test" } },
          { id: "wait", type: "delay", next: ["shape", "tell"], config: { seconds: 5 } },
          { id: "shape", type: "transform", next: [], config: {} },
          { id: "tell", type: "notify", next: [], config: {} },
        ],
      },
    });
  });

  it.each([null, [], "steps", 42])("rejects non-object definition %j", (input) => {
    expect(errorsOf(input)).toEqual(["definition must be a JSON object"]);
  });

  it("rejects the column default {} (no steps)", () => {
    expect(errorsOf({})).toEqual(["definition.steps must be an array"]);
    expect(errorsOf({ steps: [] })).toEqual(["definition.steps must contain at least one step"]);
  });

  it("limits the number of steps", () => {
    const steps = Array.from({ length: MAX_STEPS + 1 }, (_, i) => ({ id: `s${i}`, type: "delay" }));
    expect(errorsOf({ steps })).toEqual([`definition.steps has more than ${MAX_STEPS} steps`]);
  });

  it("requires unique step ids", () => {
    const errors = errorsOf({
      steps: [
        { id: "a", type: "http" },
        { id: "b", type: "delay" },
        { id: "a", type: "notify" },
      ],
    });
    expect(errors).toEqual(['steps[2].id "a" is not unique']);
  });

  it("reports every malformed step", () => {
    const errors = errorsOf({
      steps: [
        "nope",
        { id: "", type: "http" },
        { id: "ok", type: "email" },
        { id: "n", type: "delay", next: "ok" },
        { id: "c", type: "delay", config: [1] },
      ],
    });
    expect(errors).toEqual([
      "steps[0] must be an object",
      "steps[1].id must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
      'steps[2].type must be one of http, delay, transform, notify (got "email")',
      "steps[3].next must be an array of step ids",
      "steps[4].config must be an object",
    ]);
  });

  it("rejects references to unknown steps and self-references", () => {
    const errors = errorsOf({
      steps: [
        { id: "a", type: "http", next: ["ghost"] },
        { id: "b", type: "delay", next: ["b"] },
      ],
    });
    expect(errors).toEqual(['step "a" has unknown next step "ghost"', 'step "b" lists itself in next']);
  });

  it("rejects cycles", () => {
    const errors = errorsOf({
      steps: [
        { id: "start", type: "http", next: ["a"] },
        { id: "a", type: "transform", next: ["b"] },
        { id: "b", type: "delay", next: ["c"] },
        { id: "c", type: "notify", next: ["a"] },
      ],
    });
    expect(errors).toEqual(["steps form a cycle: a -> b -> c -> a"]);
  });

  it("accepts diamonds (shared successors are not cycles)", () => {
    const result = validateWorkflowDefinition({
      steps: [
        { id: "a", type: "http", next: ["b", "c"] },
        { id: "b", type: "transform", next: ["d"] },
        { id: "c", type: "transform", next: ["d"] },
        { id: "d", type: "notify" },
      ],
    });
    expect(result.ok).toBe(true);
  });
});
