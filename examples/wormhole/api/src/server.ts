import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";

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

/** The whole HTTP API. Kept free of listening/ports so tests can mount it. */
export function handleRequest(req: IncomingMessage, res: ServerResponse): void {
  // req.url is only the path + query for a server request.
  const path = new URL(req.url ?? "/", "http://localhost").pathname;

  if (req.method === "GET" && path === "/healthz") {
    sendJson(res, 200, { status: "ok", version: buildVersion() });
    return;
  }

  sendJson(res, 404, { error: "not_found", path });
}

export function createServer(): http.Server {
  return http.createServer(handleRequest);
}

/** Start listening; resolves once the port is bound. */
export function startServer(port: number, host?: string): Promise<http.Server> {
  const server = createServer();
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
