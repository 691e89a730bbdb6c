"""Defects that the project's Semgrep rules must catch in the example monorepo.

One per rule category (a file of ci/src/wormhole_ci/security/semgrep/rules). Each is a NEW
file to create inside a throw-away copy of examples/wormhole (never the example itself);
scanning that copy with the rules must then report exactly one finding in the file:
``rule_id`` at 1-based ``line``. The rest of the copy stays clean (zero findings).

The snippets are realistic code for their service. The TypeScript ones type-check against
the service's installed dependencies except ``jsonwebtoken``, which the api does not depend
on; the Python ones also trip the runner's Ruff ``S`` (bandit) rules, and ``import yaml``
is not a runner dependency.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Injection:
    category: str
    """Rule file stem in ci/src/wormhole_ci/security/semgrep/rules (e.g. ``shell-injection``)."""
    relative_path: str
    """Path of the new file, relative to the root of the example copy."""
    content: str
    rule_id: str
    """The one rule id expected in this file (``--no-rewrite-rule-ids``)."""
    line: int
    """1-based line where the finding starts."""


INJECTIONS: list[Injection] = [
    Injection(
        category="code-execution",
        relative_path="runner/src/runner/defect_eval.py",
        content=(
            '"""Defect: a transform expression evaluated with eval()."""\n'
            "\n"
            "\n"
            "def evaluate(expression: str, data: dict[str, object]) -> object:\n"
            '    return eval(expression, {"__builtins__": {}}, data)\n'
        ),
        rule_id="wormhole.python.eval-exec-nonliteral",
        line=5,
    ),
    Injection(
        category="shell-injection",
        relative_path="api/src/defect_shell.ts",
        content=(
            'import { execSync } from "node:child_process";\n'
            "\n"
            "/** Defect: the tenant slug goes into a shell command line. */\n"
            "export function archiveTenant(slug: string): Buffer {\n"
            "  return execSync(`tar -czf /tmp/${slug}.tgz /var/lib/wormhole/${slug}`);\n"
            "}\n"
        ),
        rule_id="wormhole.js.child-process-exec",
        line=5,
    ),
    Injection(
        category="raw-sql",
        relative_path="api/src/defect_sql.ts",
        content=(
            'import type { PrismaClient } from "@prisma/client";\n'
            "\n"
            "/** Defect: the e-mail address is pasted into the SQL text. */\n"
            "export function findUserByEmail(db: PrismaClient, email: string) {\n"
            "  return db.$queryRawUnsafe(`SELECT * FROM users WHERE email = '${email}'`);\n"
            "}\n"
        ),
        rule_id="wormhole.js.prisma-raw-unsafe-nonliteral",
        line=5,
    ),
    Injection(
        category="tls-verification",
        relative_path="web/server/utils/defect_tls.ts",
        content=(
            'import { Agent } from "node:https";\n'
            "\n"
            "/** Defect: an HTTPS agent for calls to the api that accepts any certificate. */\n"
            "export const apiAgent = new Agent({\n"
            "  keepAlive: true,\n"
            "  rejectUnauthorized: false,\n"
            "});\n"
        ),
        rule_id="wormhole.js.tls-reject-unauthorized-false",
        line=4,
    ),
    Injection(
        category="unsafe-yaml",
        relative_path="runner/src/runner/defect_yaml.py",
        content=(
            '"""Defect: workflow definitions parsed with PyYAML\'s unsafe loader."""\n'
            "\n"
            "import yaml\n"
            "\n"
            "\n"
            "def load_definition(text: str) -> object:\n"
            "    return yaml.load(text, Loader=yaml.Loader)\n"
        ),
        rule_id="wormhole.python.yaml-unsafe-load",
        line=7,
    ),
    Injection(
        category="hardcoded-credentials",
        relative_path="web/server/utils/defect_secret.ts",
        content=(
            "/** Defect: the runner API token is committed in the source. */\n"
            'export const runnerApiToken = "wh_live_4f9a1c0e7b2d55a1";\n'
            "\n"
            "export function runnerHeaders(): Record<string, string> {\n"
            "  return { authorization: `Bearer ${runnerApiToken}` };\n"
            "}\n"
        ),
        rule_id="wormhole.js.hardcoded-credential",
        line=2,
    ),
    Injection(
        category="jwt",
        relative_path="api/src/defect_jwt.ts",
        content=(
            'import jwt from "jsonwebtoken";\n'
            "\n"
            "/** Defect: the tenant is read from a token whose signature is never checked. */\n"
            "export function tenantOf(token: string): string | undefined {\n"
            "  const claims = jwt.decode(token);\n"
            '  return typeof claims === "object" && claims !== null ? claims.tenant : undefined;\n'
            "}\n"
        ),
        rule_id="wormhole.js.jwt-decode-without-verify",
        line=5,
    ),
    Injection(
        category="cors",
        relative_path="web/server/utils/defect_cors.ts",
        content=(
            'import { handleCors, type H3Event } from "h3";\n'
            "\n"
            "/** Defect: any website may make credentialed requests to the BFF. */\n"
            "export function applyCors(event: H3Event): boolean {\n"
            '  return handleCors(event, { origin: "*", credentials: true, methods: "*" });\n'
            "}\n"
        ),
        rule_id="wormhole.js.cors-wildcard-credentials",
        line=5,
    ),
]
