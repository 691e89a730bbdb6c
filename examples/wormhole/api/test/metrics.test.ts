import { describe, expect, it } from "vitest";
import { createLogger } from "../src/log.js";
import { ApiMetrics } from "../src/metrics.js";
import type { QueueStatsSource } from "../src/queue.js";

function queueSource(overrides: Partial<QueueStatsSource> = {}): QueueStatsSource {
  return {
    name: "workflow-runs",
    getJobCounts: async () => ({ waiting: 5, prioritized: 0, failed: 2 }),
    getJobs: async () => [{ timestamp: 1_000 }],
    ...overrides,
  };
}

describe("ApiMetrics", () => {
  it("exposes the request histogram and counter by route, method and status code", async () => {
    const metrics = new ApiMetrics({ defaultMetrics: false });
    metrics.observeRequest("/workflows/:id/runs", "POST", 202, 0.03);
    metrics.observeRequest("/workflows/:id/runs", "POST", 202, 0.2);
    metrics.observeRequest("unmatched", "GET", 404, 0.001);
    const text = await metrics.render();
    expect(text).toContain("# TYPE http_request_duration_seconds histogram");
    expect(text).toContain("# TYPE http_requests_total counter");
    expect(text).toContain('http_requests_total{route="/workflows/:id/runs",method="POST",status_code="202"} 2');
    expect(text).toContain('http_requests_total{route="unmatched",method="GET",status_code="404"} 1');
    expect(text).toContain(
      'http_request_duration_seconds_bucket{le="0.05",route="/workflows/:id/runs",method="POST",status_code="202"} 1',
    );
    expect(text).toContain(
      'http_request_duration_seconds_count{route="/workflows/:id/runs",method="POST",status_code="202"} 2',
    );
  });

  it("includes the default process metrics", async () => {
    const text = await new ApiMetrics().render();
    expect(text).toContain("# TYPE process_cpu_seconds_total counter");
    expect(text).toContain("process_resident_memory_bytes");
    expect(text).toContain("nodejs_eventloop_lag_seconds");
  });

  it("reads the queue gauges from BullMQ at scrape time", async () => {
    let waiting = 5;
    const source = queueSource({ getJobCounts: async () => ({ waiting, failed: 2 }) });
    const metrics = new ApiMetrics({ defaultMetrics: false, queues: [source], clock: () => 31_000 });
    let text = await metrics.render();
    expect(text).toContain("# TYPE wormhole_queue_waiting_jobs gauge");
    expect(text).toContain('wormhole_queue_waiting_jobs{queue="workflow-runs"} 5');
    expect(text).toContain('wormhole_queue_failed_jobs{queue="workflow-runs"} 2');
    expect(text).toContain('wormhole_queue_oldest_waiting_seconds{queue="workflow-runs"} 30');
    waiting = 0;
    text = await metrics.render();
    expect(text).toContain('wormhole_queue_waiting_jobs{queue="workflow-runs"} 0');
  });

  it("leaves the queue gauges out, and says why, when the queue does not answer", async () => {
    const lines: string[] = [];
    const logger = createLogger({ write: (line) => lines.push(line) });
    const hanging = queueSource({ getJobCounts: () => new Promise(() => {}) });
    const metrics = new ApiMetrics({ defaultMetrics: false, queues: [hanging], logger, scrapeTimeoutMs: 20 });
    const text = await metrics.render();
    expect(text).not.toMatch(/^wormhole_queue_waiting_jobs\{/m);
    expect(text).toContain("# TYPE wormhole_queue_waiting_jobs gauge");
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(entry.level).toBe("WARNING");
    expect(entry.message).toBe("queue workflow-runs metrics unavailable: Error: workflow-runs: no answer within 20 ms");
  });
});
