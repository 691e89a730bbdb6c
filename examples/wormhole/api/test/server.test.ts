import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../src/log.js";
import { ApiMetrics } from "../src/metrics.js";
import type { RunJobData } from "../src/queue.js";
import { buildVersion, createServer, DEFAULT_PORT, parsePort } from "../src/server.js";

describe("HTTP server on 127.0.0.1", () => {
  let server: Server;
  let baseUrl: string;
  const originalSha = process.env.BUILD_SHA;

  beforeAll(async () => {
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    baseUrl = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  });

  afterEach(() => {
    if (originalSha === undefined) delete process.env.BUILD_SHA;
    else process.env.BUILD_SHA = originalSha;
  });

  it("GET /healthz reports ok and the BUILD_SHA", async () => {
    process.env.BUILD_SHA = "3f2c9e1";
    const res = await fetch(`${baseUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ status: "ok", version: "3f2c9e1" });
  });

  it('GET /healthz reports version "dev" without BUILD_SHA', async () => {
    delete process.env.BUILD_SHA;
    const res = await fetch(`${baseUrl}/healthz?probe=1`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok", version: "dev" });
  });

  it("answers 404 JSON for unknown paths", async () => {
    const res = await fetch(`${baseUrl}/nope`);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ error: "not_found", path: "/nope" });
  });

  it("answers 404 JSON for other methods on /healthz", async () => {
    const res = await fetch(`${baseUrl}/healthz`, { method: "POST", body: "{}" });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "not_found", path: "/healthz" });
  });
});

describe("buildVersion", () => {
  it("uses BUILD_SHA when set", () => {
    expect(buildVersion({ BUILD_SHA: "abc123" })).toBe("abc123");
    expect(buildVersion({})).toBe("dev");
  });
});

describe("parsePort", () => {
  it("defaults to 3000", () => {
    expect(parsePort(undefined)).toBe(DEFAULT_PORT);
    expect(parsePort("")).toBe(3000);
  });

  it("parses valid ports", () => {
    expect(parsePort("8080")).toBe(8080);
    expect(parsePort(" 0 ")).toBe(0);
    expect(parsePort("65535")).toBe(65535);
  });

  it.each(["abc", "-1", "80.5", "65536", "1e3"])("rejects %j", (value) => {
    expect(() => parsePort(value)).toThrow(/PORT/);
  });
});

describe("metrics and run triggers", () => {
  let server: Server;
  let baseUrl: string;
  const queue = new (class {
    added: { name: string; data: RunJobData }[] = [];
    fail = false;
    async add(name: string, data: RunJobData, opts: { jobId: string }) {
      if (this.fail) throw new Error("Connection is closed.");
      this.added.push({ name, data });
      return { id: opts.jobId };
    }
  })();
  const lines: string[] = [];
  const logger = createLogger({ write: (line) => lines.push(line) });

  const definition = { steps: [{ id: "a", type: "transform", config: { operations: [] } }] };
  const post = (path: string, body: unknown) =>
    fetch(`${baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  beforeAll(async () => {
    server = createServer({ metrics: new ApiMetrics({ defaultMetrics: false }), runs: queue, logger });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    baseUrl = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  });

  afterEach(() => {
    queue.fail = false;
  });

  it("POST /workflows/:id/runs validates and enqueues a run", async () => {
    const res = await post("/workflows/wf-1/runs", { tenant_id: "tenant-a", definition, input: { n: 1 } });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { run_id: string; status: string };
    expect(body.status).toBe("queued");
    const job = queue.added.at(-1);
    expect(job?.name).toBe("run");
    expect(job?.data).toEqual({
      run_id: body.run_id,
      tenant_id: "tenant-a",
      workflow_id: "wf-1",
      steps: [{ id: "a", type: "transform", config: { operations: [] } }],
      input: { n: 1 },
    });
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.message === "run enqueued");
    expect(logged).toMatchObject({ service: "api", level: "INFO", tenant_id: "tenant-a", run_id: body.run_id });
  });

  it.each([
    [{ definition }, 400, { error: "tenant_id_required" }],
    [{ tenant_id: "t", definition, input: [1] }, 400, { error: "input_must_be_an_object" }],
    [{ tenant_id: "t", definition: { steps: [] } }, 422, { error: "invalid_definition", details: ["definition.steps must contain at least one step"] }],
    ["{nope", 400, { error: "invalid_json" }],
  ])("rejects %j with %i", async (body, status, expected) => {
    const res = await post("/workflows/wf-1/runs", body);
    expect(res.status).toBe(status);
    expect(await res.json()).toEqual(expected);
  });

  it("answers 503 when the queue cannot take the run", async () => {
    queue.fail = true;
    const res = await post("/workflows/wf-1/runs", { tenant_id: "t", definition });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: "queue_unavailable" });
  });

  it("GET /metrics counts requests by route template, never by raw path", async () => {
    await fetch(`${baseUrl}/healthz`);
    await fetch(`${baseUrl}/no/such/page`);
    const res = await fetch(`${baseUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('http_requests_total{route="/healthz",method="GET",status_code="200"} 1');
    expect(text).toContain('http_requests_total{route="unmatched",method="GET",status_code="404"} 1');
    expect(text).toContain('http_requests_total{route="/workflows/:id/runs",method="POST",status_code="202"} 1');
    expect(text).toContain('route="/workflows/:id/runs",method="POST",status_code="422"');
    expect(text).toContain('route="/workflows/:id/runs",method="POST",status_code="503"');
    expect(text).not.toContain("/no/such/page");
    expect(text).not.toContain("wf-1");
  });
});

describe("a server without a queue", () => {
  it("answers 503 to a run trigger", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/workflows/w/runs`, {
        method: "POST",
        body: JSON.stringify({ tenant_id: "t", definition: { steps: [{ id: "a", type: "delay" }] } }),
      });
      expect(res.status).toBe(503);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
