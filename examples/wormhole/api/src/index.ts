import type { AddressInfo } from "node:net";
import { createLogger, parseLogLevel } from "./log.js";
import { ApiMetrics } from "./metrics.js";
import { parseRedisUrl, redact } from "./queue.js";
import { openRunQueue } from "./redis-queue.js";
import { buildVersion, parsePort, startServer } from "./server.js";

const logger = createLogger({ version: buildVersion(), level: parseLogLevel(process.env.LOG_LEVEL) });
const port = parsePort(process.env.PORT);
const redisUrl = parseRedisUrl(process.env.REDIS_URL);
// Redis is connected in the background: /healthz answers without it.
const runQueue = openRunQueue(redisUrl, logger);
const metrics = new ApiMetrics({ queues: [runQueue.stats], logger });
const server = await startServer(port, undefined, { metrics, runs: runQueue.runs, logger });
const { port: boundPort } = server.address() as AddressInfo;
logger.info(`wormhole-api ${buildVersion()} listening on :${boundPort}`, {
  port: boundPort,
  queue: runQueue.queue.name,
  redis: redact(redisUrl),
});

const shutdown = (signal: NodeJS.Signals): void => {
  logger.info(`received ${signal}, shutting down`);
  server.close((err) => {
    if (err) {
      logger.error(`server close failed: ${err.message}`);
      process.exitCode = 1;
    }
    runQueue.close().then(
      () => logger.info("api stopped"),
      (closeErr: unknown) => logger.warning(`queue close failed: ${String(closeErr)}`),
    );
  });
  server.closeIdleConnections();
};
process.once("SIGTERM", shutdown);
process.once("SIGINT", shutdown);
