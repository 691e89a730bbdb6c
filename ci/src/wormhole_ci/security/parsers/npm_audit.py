"""`npm audit --json` output (npm 7+ report v2: `auditReportVersion: 2`, a `vulnerabilities` map)."""

from __future__ import annotations

from wormhole_ci.jsonish import as_dict
from wormhole_ci.security.model import Outcome
from wormhole_ci.security.parsers.common import (
    ParseError,
    RawRun,
    last_lines,
    load_json,
)
from wormhole_ci.security.parsers.pnpm_audit import npm_report_findings

TOOL = "npm-audit"
# Network failures npm reports by code when it never got an answer.
_NETWORK = ("ENOTFOUND", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EAI_AGAIN", "fetch failed")


def parse(run: RawRun, target: str, manifest: str) -> Outcome:
    """Findings per advisory and vulnerable package; a registry that refused or failed the
    audit request is `unavailable` with its answer (npm exits 1 both for findings and for
    failures, and prints JSON for both: the JSON decides)."""
    text = run.stdout.strip()
    try:
        data = as_dict(load_json(text, TOOL)) if text else None
    except ParseError:
        data = None
    if data is not None and "vulnerabilities" in data and "error" not in data:
        vulnerabilities = as_dict(data["vulnerabilities"]) or {}
        return Outcome.of(
            TOOL,
            target,
            npm_report_findings(vulnerabilities, target, manifest, TOOL),
            run.tool_version,
        )
    if data is not None and "advisories" in data:
        return Outcome.error(
            TOOL,
            target,
            "npm 6's audit report (advisories) is not read; use npm 7 or later",
            run.tool_version,
        )
    reason, answered = _failure(data, run)
    if answered or any(marker in f"{reason} {run.stderr}" for marker in _NETWORK):
        return Outcome.unavailable(
            TOOL,
            target,
            f"the registry's audit endpoint refused or failed: {reason}",
            run.tool_version,
        )
    return Outcome.error(TOOL, target, reason, run.tool_version)


def _failure(data: dict[str, object] | None, run: RawRun) -> tuple[str, bool]:
    """Why the audit has no report, and whether the registry answered with an HTTP error.

    npm prints the registry's response as JSON: `message` ("405 Method Not Allowed - POST
    …/advisories/bulk"), `statusCode`, and `error.{summary,detail}` (often empty).
    """
    if data is None:
        reason = (
            last_lines(run.stderr) or last_lines(run.stdout) or f"npm audit exited {run.exit_code}"
        )
        return reason, False
    error = as_dict(data.get("error")) or {}
    parts = [
        str(data.get("message") or ""),
        str(error.get("summary") or ""),
        str(error.get("code") or ""),
    ]
    reason = " ".join(dict.fromkeys(p for p in parts if p)) or last_lines(run.stderr)
    status = data.get("statusCode")
    answered = isinstance(status, int) and status >= 400
    if not reason:
        reason = "npm audit JSON has no vulnerabilities and no error message"
    return reason, answered
