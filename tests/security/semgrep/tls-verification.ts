// Semgrep test target for rules/tls-verification.yaml (run with `semgrep --test`); never imported.
import https from "node:https";
import tls from "node:tls";
import { spawn } from "node:child_process";

export function unsafe(host: string): void {
  // ruleid: wormhole.js.tls-reject-unauthorized-false
  const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false });
  // ruleid: wormhole.js.tls-reject-unauthorized-false
  tls.connect({ host, port: 443, rejectUnauthorized: false });
  const options: https.RequestOptions = { host };
  // ruleid: wormhole.js.tls-reject-unauthorized-false
  options.rejectUnauthorized = false;
  // ruleid: wormhole.js.tls-reject-unauthorized-false
  https.get({ host, checkServerIdentity: () => undefined });

  // ruleid: wormhole.js.node-tls-reject-unauthorized-env
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  // ruleid: wormhole.js.node-tls-reject-unauthorized-env
  process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = '0';
  // ruleid: wormhole.js.node-tls-reject-unauthorized-env
  spawn("node", ["job.js"], { env: { ...process.env, NODE_TLS_REJECT_UNAUTHORIZED: "0" } });
  void agent;
}

export function safe(host: string, ca: Buffer): void {
  // ok: wormhole.js.tls-reject-unauthorized-false
  const agent = new https.Agent({ keepAlive: true, ca });
  // ok: wormhole.js.tls-reject-unauthorized-false
  tls.connect({ host, port: 443, rejectUnauthorized: true });
  // ok: wormhole.js.node-tls-reject-unauthorized-env
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "1";
  // ok: wormhole.js.node-tls-reject-unauthorized-env
  const strict = process.env.NODE_TLS_REJECT_UNAUTHORIZED === "0";
  void [agent, strict];
}
