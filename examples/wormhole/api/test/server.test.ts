import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
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
