import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "./log.js";
import { silentLogger } from "./log.js";
import { ApiMetrics, UNMATCHED_ROUTE } from "./metrics.js";
import type { JobSink } from "./queue.js";
import { enqueueRun } from "./queue.js";
import { validateWorkflowDefinition } from "./workflows.js";

export const DEFAULT_PORT = 3000;

/** Version reported by /healthz: the build's commit SHA, or "dev". */
export function buildVersion(env: NodeJS.ProcessEnv = process.env): string {
  return env.BUILD_SHA ?? "dev";
}

/** Parse the PORT env var (default 3000). Throws on anything but 0-65535. */
export function parsePort(value: string | undefined): number {
  if (value === undefined || value.trim() === "") {
    return DEFAULT_PORT;
  }
  if (!/^\d+$/.test(value.trim())) {
    throw new Error(`PORT must be an integer, got ${JSON.stringify(value)}`);
  }
  const port = Number(value);
  if (port > 65535) {
    throw new Error(`PORT must be between 0 and 65535, got ${port}`);
  }
  return port;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(payload),
    "cache-control": "no-store",
  });
  res.end(payload);
}

/** What the HTTP API uses; every part has a default that needs no Redis. */
export interface AppDeps {
  metrics?: ApiMetrics;
  /** The workflow-runs queue; without it, triggering a run answers 503. */
  runs?: JobSink | null;
  logger?: Logger;
}

/** A trigger waits at most this long for Redis before it answers 503. */
export const ENQUEUE_TIMEOUT_MS = 5000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the queue within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Largest accepted request body (a workflow definition of 100 steps fits easily). */
export const MAX_BODY_BYTES = 256 * 1024;
const RUNS_ROUTE = /^\/workflows\/([0-9A-Za-z_-]{1,64})\/runs$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.error));
  }
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, { error: "body_too_large", limit: MAX_BODY_BYTES }));
        // drain the rest so the 413 can still be sent on this connection
        req.removeAllListeners("data");
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        reject(new HttpError(400, { error: "invalid_json" }));
      }
    });
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * `POST /workflows/:id/runs` with `{ tenant_id, definition, input? }`: validates the
 * definition and enqueues a run; 202 `{ run_id }`, 422 with the validation errors, 503 when
 * the queue cannot take it.
 */
async function triggerRun(
  req: IncomingMessage,
  workflowId: string,
  runs: JobSink | null,
  logger: Logger,
): Promise<[number, Record<string, unknown>]> {
  const body = await readJson(req);
  if (!isRecord(body) || typeof body.tenant_id !== "string" || body.tenant_id === "") {
    return [400, { error: "tenant_id_required" }];
  }
  const tenantId = body.tenant_id;
  const input = body.input;
  if (input !== undefined && !isRecord(input)) {
    return [400, { error: "input_must_be_an_object" }];
  }
  const result = validateWorkflowDefinition(body.definition);
  if (!result.ok) {
    return [422, { error: "invalid_definition", details: result.errors }];
  }
  if (!runs) {
    return [503, { error: "queue_unavailable" }];
  }
  try {
    const runId = await withTimeout(
      enqueueRun(runs, { workflowId, tenantId, definition: result.definition, input }),
      ENQUEUE_TIMEOUT_MS,
    );
    logger.info("run enqueued", { tenant_id: tenantId, run_id: runId, workflow_id: workflowId });
    return [202, { run_id: runId, status: "queued" }];
  } catch (err) {
    logger.error(`cannot enqueue a run: ${String(err)}`, { tenant_id: tenantId, workflow_id: workflowId });
    return [503, { error: "queue_unavailable" }];
  }
}

/** The whole HTTP API. Kept free of listening/ports so tests can mount it. */
export function createApp(deps: AppDeps = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const metrics = deps.metrics ?? new ApiMetrics({ defaultMetrics: false });
  const runs = deps.runs ?? null;
  const logger = deps.logger ?? silentLogger;

  const route = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<string> => {
    if (path === "/healthz" && req.method === "GET") {
      sendJson(res, 200, { status: "ok", version: buildVersion() });
      return "/healthz";
    }
    if (path === "/metrics" && req.method === "GET") {
      const payload = await metrics.render();
      res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
      res.end(payload);
      return "/metrics";
    }
    const runsMatch = RUNS_ROUTE.exec(path);
    if (runsMatch && req.method === "POST") {
      const [status, body] = await triggerRun(req, runsMatch[1] as string, runs, logger);
      sendJson(res, status, body);
      return "/workflows/:id/runs";
    }
    sendJson(res, 404, { error: "not_found", path });
    return UNMATCHED_ROUTE;
  };

  return (req, res) => {
    const started = process.hrtime.bigint();
    // req.url is only the path + query for a server request.
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const method = req.method ?? "GET";
    route(req, res, path)
      .catch((err: unknown) => {
        if (err instanceof HttpError) {
          sendJson(res, err.status, err.body);
        } else {
          logger.error(`request failed: ${String(err)}`, { method, path });
          if (!res.headersSent) sendJson(res, 500, { error: "internal_error" });
        }
        return RUNS_ROUTE.test(path) ? "/workflows/:id/runs" : UNMATCHED_ROUTE;
      })
      .then((routeName) => {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        metrics.observeRequest(routeName, method, res.statusCode, seconds);
      });
  };
}

/** The API without a queue or process metrics (what the tests of /healthz mount). */
export const handleRequest = createApp();

export function createServer(deps: AppDeps = {}): http.Server {
  return http.createServer(createApp(deps));
}

/** Start listening; resolves once the port is bound. */
export function startServer(port: number, host?: string, deps: AppDeps = {}): Promise<http.Server> {
  const server = createServer(deps);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
