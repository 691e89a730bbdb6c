import { describe, expect, it } from "vitest";
import type { JobSink, QueueStatsSource, RunJobData } from "../src/queue.js";
import {
  QUEUE_NAME,
  enqueueRun,
  executionOrder,
  parseRedisUrl,
  readQueueStats,
  redact,
} from "../src/queue.js";
import type { WorkflowDefinition } from "../src/workflows.js";

const DIAMOND: WorkflowDefinition = {
  steps: [
    { id: "notify", type: "notify", next: [], config: {} },
    { id: "fetch", type: "http", next: ["left", "right"], config: { url: "https://example.test" } },
    { id: "right", type: "transform", next: ["notify"], config: {} },
    { id: "left", type: "delay", next: ["notify"], config: { seconds: 1 } },
  ],
};

class FakeQueue implements JobSink {
  added: { name: string; data: RunJobData; opts: unknown }[] = [];
  fail = false;
  async add(name: string, data: RunJobData, opts: { jobId: string }) {
    if (this.fail) throw new Error("Connection is closed.");
    this.added.push({ name, data, opts });
    return { id: opts.jobId };
  }
}

describe("executionOrder", () => {
  it("orders steps after everything that leads to them, keeping the definition's order", () => {
    expect(executionOrder(DIAMOND).map((s) => s.id)).toEqual(["fetch", "right", "left", "notify"]);
  });

  it("refuses a cycle", () => {
    const cycle: WorkflowDefinition = {
      steps: [
        { id: "a", type: "http", next: ["b"], config: {} },
        { id: "b", type: "http", next: ["a"], config: {} },
      ],
    };
    expect(() => executionOrder(cycle)).toThrow(/cycle/);
  });
});

describe("enqueueRun", () => {
  it("adds one job per run on workflow-runs, with the run id as job id, not retried", async () => {
    expect(QUEUE_NAME).toBe("workflow-runs");
    const queue = new FakeQueue();
    const runId = await enqueueRun(queue, {
      workflowId: "wf-1",
      tenantId: "tenant-a",
      definition: DIAMOND,
      input: { order: 42 },
      runId: "run-1",
    });
    expect(runId).toBe("run-1");
    expect(queue.added).toEqual([
      {
        name: "run",
        data: {
          run_id: "run-1",
          tenant_id: "tenant-a",
          workflow_id: "wf-1",
          steps: [
            { id: "fetch", type: "http", config: { url: "https://example.test" } },
            { id: "right", type: "transform", config: {} },
            { id: "left", type: "delay", config: { seconds: 1 } },
            { id: "notify", type: "notify", config: {} },
          ],
          input: { order: 42 },
        },
        opts: {
          jobId: "run-1",
          attempts: 1,
          removeOnComplete: { age: 3600, count: 1000 },
          removeOnFail: { age: 604800 },
        },
      },
    ]);
  });

  it("makes up a UUID run id", async () => {
    const queue = new FakeQueue();
    const runId = await enqueueRun(queue, { workflowId: "w", tenantId: "t", definition: DIAMOND });
    expect(runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(queue.added[0]?.data.input).toEqual({});
  });
});

describe("readQueueStats", () => {
  const source = (counts: Record<string, number>, oldest: number[]): QueueStatsSource => ({
    name: QUEUE_NAME,
    getJobCounts: async () => counts,
    getJobs: async () => oldest.map((timestamp) => ({ timestamp })),
  });

  it("counts waiting (incl. prioritized) and failed jobs and the oldest one's age", async () => {
    const stats = await readQueueStats(source({ waiting: 3, prioritized: 1, failed: 2 }, [10_000]), () => 17_500);
    expect(stats).toEqual({ waiting: 4, failed: 2, oldestWaitingSeconds: 7.5 });
  });

  it("reports an age of 0 when nothing waits", async () => {
    expect(await readQueueStats(source({}, []), () => 1)).toEqual({ waiting: 0, failed: 0, oldestWaitingSeconds: 0 });
  });
});

describe("REDIS_URL", () => {
  it("defaults to the local Redis and accepts redis(s)://", () => {
    expect(parseRedisUrl(undefined)).toBe("redis://localhost:6379/0");
    expect(parseRedisUrl(" ")).toBe("redis://localhost:6379/0");
    expect(parseRedisUrl("rediss://cache.internal:6380/2")).toBe("rediss://cache.internal:6380/2");
  });

  it.each(["http://localhost:6379", "redis://", "not a url"])("rejects %j", (value) => {
    expect(() => parseRedisUrl(value)).toThrow(/REDIS_URL/);
  });

  it("never shows the password", () => {
    expect(redact("redis://:s3cret@host:6379/0")).toBe("redis://:***@host:6379/0");
    expect(redact("rediss://user:s3cret@host/0")).toBe("rediss://user:***@host/0");
    expect(redact("redis://host:6379/0")).toBe("redis://host:6379/0");
    expect(() => parseRedisUrl("http://:s3cret@host")).toThrow(/:\*\*\*@host/);
  });
});
