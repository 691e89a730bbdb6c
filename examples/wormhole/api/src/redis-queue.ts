/** The `workflow-runs` BullMQ queue on Redis (the process's one connection to it). */
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import type { Logger } from "./log.js";
import type { JobSink, QueueStatsSource } from "./queue.js";
import { QUEUE_NAME, redact } from "./queue.js";

/** How long a request waits for a connection attempt that is under way. */
export const CONNECT_GRACE_MS = 1000;

export interface RunQueue {
  readonly queue: Queue;
  /** Enqueues on `queue`; fails at once while Redis is not connected. */
  readonly runs: JobSink;
  /** Reads `queue`; fails at once while Redis is not connected. */
  readonly stats: QueueStatsSource;
  close(): Promise<void>;
}

/**
 * The BullMQ queue on REDIS_URL, with its own ioredis client (BullMQ 6 no longer bundles
 * ioredis, and from an ES module it can only use a client it is given). Connection errors
 * are logged, never thrown: /healthz does not depend on Redis, and the queue reconnects.
 */
export function openRunQueue(redisUrl: string, logger: Logger): RunQueue {
  const connection = new Redis(redisUrl, {
    // An HTTP request waiting for Redis fails after one reconnection attempt instead of
    // hanging (BullMQ's default for a producer is to retry forever).
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
  });
  let lastError = "";
  const onError = (err: Error): void => {
    // ioredis reports every failed reconnection; one line per distinct error is enough
    if (err.message === lastError) return;
    lastError = err.message;
    logger.warning(`queue ${QUEUE_NAME} on ${redact(redisUrl)}: ${err.message}`, { queue: QUEUE_NAME });
  };
  connection.on("error", onError);
  connection.on("ready", () => (lastError = ""));
  const queue = new Queue(QUEUE_NAME, { connection });
  queue.on("error", onError);
  // BullMQ waits for the connection without a limit; a request must not. Nothing is handed to
  // BullMQ while Redis is away, so a run refused with 503 is never enqueued later.
  const connected = async (): Promise<void> => {
    if (connection.status === "connecting" || connection.status === "connect") {
      // the first connection (or a reconnection) is under way: give it a moment
      await new Promise<void>((resolve) => {
        const ready = (): void => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          connection.off("ready", ready);
          resolve();
        }, CONNECT_GRACE_MS);
        connection.once("ready", ready);
      });
    }
    if (connection.status !== "ready") {
      throw new Error(`Redis at ${redact(redisUrl)} is not connected (${connection.status})`);
    }
  };
  return {
    queue,
    runs: {
      add: async (name, data, opts) => {
        await connected();
        return queue.add(name, data, opts);
      },
    },
    stats: {
      name: queue.name,
      getJobCounts: async (...types) => {
        await connected();
        return queue.getJobCounts(...types);
      },
      getJobs: async (types, start, end, asc) => {
        await connected();
        return queue.getJobs(types, start, end, asc);
      },
    },
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}
