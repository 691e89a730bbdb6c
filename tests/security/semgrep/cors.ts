// Semgrep test target for rules/cors.yaml (run with `semgrep --test`); never imported.
import cors from "cors";
import express from "express";
import type { ServerResponse } from "node:http";
import { defineEventHandler, handleCors, setResponseHeader, setResponseHeaders } from "h3";

const app = express();

// ruleid: wormhole.js.cors-wildcard-credentials
app.use(cors({ origin: "*", credentials: true }));
// ruleid: wormhole.js.cors-wildcard-credentials
app.use(cors({ credentials: true, methods: ["GET"], origin: true }));
export const h3Cors = defineEventHandler((event) => {
  // ruleid: wormhole.js.cors-wildcard-credentials
  if (handleCors(event, { origin: "*", credentials: true, methods: "*" })) return;
});

export function unsafeHeaders(res: ServerResponse): void {
  // ruleid: wormhole.js.cors-header-wildcard-credentials
  res.setHeader("Access-Control-Allow-Origin", "*");
  res.setHeader("Content-Type", "application/json");
  res.setHeader("Access-Control-Allow-Credentials", "true");
  // ruleid: wormhole.js.cors-header-wildcard-credentials
  res.writeHead(200, { "access-control-allow-origin": "*", "access-control-allow-credentials": "true" });
}

export const nitroHandler = defineEventHandler((event) => {
  // ruleid: wormhole.js.cors-header-wildcard-credentials
  setResponseHeader(event, "Access-Control-Allow-Credentials", "true");
  setResponseHeader(event, "Access-Control-Allow-Origin", "*");
  // ruleid: wormhole.js.cors-header-wildcard-credentials
  setResponseHeaders(event, { "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": true });
});

// ok: wormhole.js.cors-wildcard-credentials
app.use(cors({ origin: ["https://app.wormhole.example"], credentials: true }));
// ok: wormhole.js.cors-wildcard-credentials
app.use(cors({ origin: "*" }));
// ok: wormhole.js.cors-wildcard-credentials
app.use(cors());

export function safeHeaders(res: ServerResponse): void {
  // ok: wormhole.js.cors-header-wildcard-credentials
  res.setHeader("Access-Control-Allow-Origin", "*");
  res.setHeader("Cache-Control", "no-store");
  // ok: wormhole.js.cors-header-wildcard-credentials
  res.writeHead(200, { "Access-Control-Allow-Origin": "https://app.wormhole.example", "Access-Control-Allow-Credentials": "true" });
}
