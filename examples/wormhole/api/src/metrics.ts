/**
 * The api's Prometheus metrics, served as `GET /metrics` (prom-client).
 *
 * Names and labels are the ones the alert rules and dashboards query (issue 15):
 * - `http_request_duration_seconds` (histogram) and `http_requests_total` (counter), labels
 *   `route` (the route's template, e.g. `/workflows/:id/runs`, or `unmatched` for a 404:
 *   never the raw path, which would make a series per URL), `method`, `status_code`;
 * - `wormhole_queue_waiting_jobs{queue}`, `wormhole_queue_failed_jobs{queue}` and
 *   `wormhole_queue_oldest_waiting_seconds{queue}`, read from BullMQ at scrape time; when
 *   the queue cannot be read within `QUEUE_SCRAPE_TIMEOUT_MS` they are left out of that
 *   scrape (absent, not zero: an alert on them must not resolve because Redis is down) and a
 *   warning is logged;
 * - prom-client's default process and Node.js metrics (`process_*`, `nodejs_*`).
 *
 * Each `ApiMetrics` has its own registry, so tests never share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Logger } from "./log.js";
import { silentLogger } from "./log.js";
import type { QueueStatsSource } from "./queue.js";
import { readQueueStats } from "./queue.js";

export const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
export const QUEUE_SCRAPE_TIMEOUT_MS = 2000;
export const UNMATCHED_ROUTE = "unmatched";

export interface MetricsOptions {
  /** The BullMQ queues whose depth is exported (none: no queue gauges). */
  queues?: readonly QueueStatsSource[];
  logger?: Logger;
  clock?: () => number;
  defaultMetrics?: boolean;
  scrapeTimeoutMs?: number;
}

const HTTP_LABELS = ["route", "method", "status_code"] as const;

export class ApiMetrics {
  readonly registry = new Registry();
  readonly requestDuration: Histogram<(typeof HTTP_LABELS)[number]>;
  readonly requests: Counter<(typeof HTTP_LABELS)[number]>;

  constructor(options: MetricsOptions = {}) {
    const { queues = [], logger = silentLogger, clock = Date.now } = options;
    const timeoutMs = options.scrapeTimeoutMs ?? QUEUE_SCRAPE_TIMEOUT_MS;
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
    }
    this.requestDuration = new Histogram({
      name: "http_request_duration_seconds",
      help: "Duration of HTTP requests, by route template, method and status code.",
      labelNames: HTTP_LABELS,
      buckets: HTTP_BUCKETS,
      registers: [this.registry],
    });
    this.requests = new Counter({
      name: "http_requests_total",
      help: "HTTP requests, by route template, method and status code.",
      labelNames: HTTP_LABELS,
      registers: [this.registry],
    });

    // One read of every queue per scrape, shared by the three gauges.
    let pending: Promise<void> | undefined;
    const waiting = new Gauge({
      name: "wormhole_queue_waiting_jobs",
      help: "Jobs waiting to be started, per BullMQ queue.",
      labelNames: ["queue"],
      registers: [this.registry],
      collect: () => (pending ??= refresh().finally(() => (pending = undefined))),
    });
    const failed = new Gauge({
      name: "wormhole_queue_failed_jobs",
      help: "Jobs in the failed set, per BullMQ queue (kept 7 days, see queue.ts).",
      labelNames: ["queue"],
      registers: [this.registry],
      collect: () => pending,
    });
    const oldest = new Gauge({
      name: "wormhole_queue_oldest_waiting_seconds",
      help: "Age of the oldest waiting job, per BullMQ queue (0 when none waits).",
      labelNames: ["queue"],
      registers: [this.registry],
      collect: () => pending,
    });
    const refresh = async (): Promise<void> => {
      waiting.reset();
      failed.reset();
      oldest.reset();
      await Promise.all(
        queues.map(async (queue) => {
          try {
            const stats = await withTimeout(readQueueStats(queue, clock), timeoutMs, queue.name);
            waiting.set({ queue: queue.name }, stats.waiting);
            failed.set({ queue: queue.name }, stats.failed);
            oldest.set({ queue: queue.name }, stats.oldestWaitingSeconds);
          } catch (err) {
            logger.warning(`queue ${queue.name} metrics unavailable: ${String(err)}`, {
              queue: queue.name,
            });
          }
        }),
      );
    };
  }

  /** Record one finished request. */
  observeRequest(route: string, method: string, statusCode: number, seconds: number): void {
    const labels = { route, method, status_code: String(statusCode) };
    this.requestDuration.observe(labels, seconds);
    this.requests.inc(labels);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
