// Semgrep test target for rules/jwt.yaml (run with `semgrep --test`); never imported.
import jwt from "jsonwebtoken";
import { decode as b64decode } from "./base64";

declare const token: string;
declare const key: string;

export function unsafe(): unknown {
  // ruleid: wormhole.js.jwt-decode-without-verify
  const claims = jwt.decode(token);
  // ruleid: wormhole.js.jwt-decode-without-verify
  const full = jwt.decode(token, { complete: true });

  // ruleid: wormhole.js.jwt-none-algorithm
  const verified = jwt.verify(token, key, { algorithms: ["HS256", "none"] });
  // ruleid: wormhole.js.jwt-none-algorithm
  const forged = jwt.sign({ sub: "admin" }, "", { algorithm: "none" });
  return [claims, full, verified, forged];
}

export function safe(): unknown {
  // ok: wormhole.js.jwt-decode-without-verify
  const claims = jwt.verify(token, key, { algorithms: ["RS256"] });
  // ok: wormhole.js.jwt-decode-without-verify
  const text = new TextDecoder().decode(new Uint8Array());
  // ok: wormhole.js.jwt-decode-without-verify
  const raw = b64decode(token);
  // ok: wormhole.js.jwt-none-algorithm
  const signed = jwt.sign({ sub: "u1" }, key, { algorithm: "HS256", expiresIn: "1h" });
  return [claims, text, raw, signed];
}
