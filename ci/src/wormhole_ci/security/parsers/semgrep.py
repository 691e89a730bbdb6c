"""Semgrep `--json` output: results and errors[]."""

from __future__ import annotations

from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.security.model import FileLocation, Finding, Outcome, Severity, Status
from wormhole_ci.security.parsers.common import (
    ParseError,
    RawRun,
    ServiceOf,
    load_json,
    severity_from,
)

TOOL = "semgrep"
# Rule severities: the classic three, and the four newer Semgrep levels.
SEVERITY = {
    "ERROR": Severity.HIGH,
    "WARNING": Severity.MEDIUM,
    "INFO": Severity.LOW,
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.HIGH,
    "MEDIUM": Severity.MEDIUM,
    "LOW": Severity.LOW,
}


def parse(run: RawRun, target: str, service_of: ServiceOf) -> Outcome:
    """Findings from `results`; any `errors[]` entry makes the outcome an error.

    Semgrep exits 0 or 1 with findings; 2+ means it failed. The matched source text
    (`extra.lines`) is never copied: a hard-coded secret would travel into reports.
    """
    try:
        data = as_dict(load_json(run.stdout, TOOL))
        if data is None or as_list(data.get("results")) is None:
            raise ParseError("semgrep JSON has no results list")
        findings = [_finding(r, service_of) for r in as_list(data.get("results")) or []]
    except ParseError as exc:
        return Outcome.error(TOOL, target, f"{exc} (exit {run.exit_code})", run.tool_version)
    version = str(data.get("version") or run.tool_version)
    errors = [as_dict(e) or {} for e in as_list(data.get("errors")) or []]
    if errors:
        first = errors[0]
        detail = " ".join(f"{first.get('type', '')} {first.get('message', '')}".split())
        reason = f"{len(errors)} semgrep errors, first: {detail}"
        return Outcome(TOOL, target, Status.ERROR, tuple(findings), reason, version)
    if run.exit_code not in (0, 1):
        return Outcome(
            TOOL, target, Status.ERROR, tuple(findings), f"semgrep exited {run.exit_code}", version
        )
    return Outcome.of(TOOL, target, findings, version)


def _finding(raw: object, service_of: ServiceOf) -> Finding:
    result = as_dict(raw)
    if result is None:
        raise ParseError("semgrep result is not an object")
    extra = as_dict(result.get("extra")) or {}
    metadata = as_dict(extra.get("metadata")) or {}
    start = as_dict(result.get("start")) or {}
    end = as_dict(result.get("end")) or {}
    path = str(result.get("path", ""))
    rule = str(result.get("check_id", ""))
    if not rule or not path:
        raise ParseError("semgrep result without check_id or path")
    message = str(extra.get("message", "")).strip()
    references = as_list(metadata.get("references")) or []
    raw_severity = str(extra.get("severity", ""))
    return Finding(
        tool=TOOL,
        rule_id=rule,
        severity=severity_from(SEVERITY, raw_severity),
        title=message.splitlines()[0] if message else rule,
        location=FileLocation(path, _int(start.get("line")), _int(end.get("line"))),
        service=service_of(path),
        message=message,
        help_uri=str(references[0]) if references else "",
        raw_severity=raw_severity,
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
