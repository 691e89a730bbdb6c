// Semgrep test target for rules/hardcoded-credentials.yaml (run with `semgrep --test`); never imported.
// The "credentials" below are made up for the test.

// ruleid: wormhole.js.hardcoded-credential
const dbPassword = "hunter2-prod";
// ruleid: wormhole.js.hardcoded-credential
export const API_KEY = 'sk_live_51H8xYzAbCdEf';
// ruleid: wormhole.js.hardcoded-credential
let jwtSecret = `s3cr3t!value`;

class Client {
  // ruleid: wormhole.js.hardcoded-credential
  private apiToken = "tok_4f9a1c0e";
  // ruleid: wormhole.js.hardcoded-credential
  clientSecret: string = "Winter2024!";
}

export function connect(): unknown {
  // ruleid: wormhole.js.hardcoded-credential
  const config = { user: "app", password: "pg-Sup3r-secret", port: 5432 };
  // ruleid: wormhole.js.hardcoded-credential
  process.env.RUNNER_TOKEN = "tok_4f9a1c";
  return [config, dbPassword, jwtSecret, Client];
}

export function safe(): unknown {
  // ok: wormhole.js.hardcoded-credential
  const dbPassword = process.env.DB_PASSWORD ?? "";
  // ok: wormhole.js.hardcoded-credential
  const token = "";
  // ok: wormhole.js.hardcoded-credential
  const apiKey = "<your-api-key>";
  // ok: wormhole.js.hardcoded-credential
  const tokenType = "Bearer";
  // ok: wormhole.js.hardcoded-credential
  const csrfToken = "x-csrf-token";
  // ok: wormhole.js.hardcoded-credential
  const secret = `${process.env.PREFIX}-secret`;
  // ok: wormhole.js.hardcoded-credential
  const config = { password: process.env.DB_PASSWORD, label: "password" };
  // ok: wormhole.js.hardcoded-credential
  const passwordHint = "at least 12 characters";
  // ok: wormhole.js.hardcoded-credential
  const runtime = { apiSecret: "API_SECRET", sessionPassword: "********" };
  return [dbPassword, token, apiKey, tokenType, csrfToken, secret, config, passwordHint, runtime];
}
