// Semgrep test target for rules/unsafe-yaml.yaml (run with `semgrep --test`); never imported.
import yaml from "js-yaml";
import { load, DEFAULT_FULL_SCHEMA } from "js-yaml";

export function unsafe(text: string): unknown[] {
  // ruleid: wormhole.js.js-yaml-unsafe-schema
  const a = yaml.load(text, { schema: yaml.DEFAULT_FULL_SCHEMA });
  // ruleid: wormhole.js.js-yaml-unsafe-schema
  const b = load(text, { filename: "job.yml", schema: DEFAULT_FULL_SCHEMA });
  // ruleid: wormhole.js.js-yaml-unsafe-schema
  const c = yaml.loadAll(text, undefined, { schema: yaml.DEFAULT_FULL_SCHEMA });
  return [a, b, c];
}

export function safe(text: string): unknown[] {
  // ok: wormhole.js.js-yaml-unsafe-schema
  const a = yaml.load(text);
  // ok: wormhole.js.js-yaml-unsafe-schema
  const b = yaml.load(text, { schema: yaml.CORE_SCHEMA });
  // ok: wormhole.js.js-yaml-unsafe-schema
  const c = yaml.safeLoad(text, { schema: yaml.DEFAULT_SAFE_SCHEMA });
  return [a, b, c];
}
