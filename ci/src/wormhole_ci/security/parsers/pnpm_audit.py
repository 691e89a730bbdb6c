"""`pnpm audit --json` output (npm-audit v6 `advisories`, or the npm 7+ `vulnerabilities` variant)."""

from __future__ import annotations

from wormhole_ci.jsonish import as_dict, as_list, as_str_list
from wormhole_ci.security.model import Finding, Outcome, PackageLocation, Severity
from wormhole_ci.security.parsers.common import (
    ParseError,
    RawRun,
    last_lines,
    load_json,
    severity_from,
)

TOOL = "pnpm-audit"
SEVERITY = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.HIGH,
    "MODERATE": Severity.MEDIUM,
    "LOW": Severity.LOW,
    "INFO": Severity.INFO,
}
# Registry answers that mean "the audit service would not answer", not "no advisories".
_UNAVAILABLE = (
    "405",
    "410",
    "ERR_PNPM_AUDIT",
    "ENOTFOUND",
    "ECONNREFUSED",
    "ETIMEDOUT",
    "EAI_AGAIN",
    "fetch failed",
)


def parse(run: RawRun, target: str, manifest: str) -> Outcome:
    """Findings per advisory and installed version; a refused or failed audit request is
    `unavailable` (pnpm exits 1 both for findings and for failures: the JSON decides)."""
    text = run.stdout.strip()
    data = None
    if text:
        try:
            data = as_dict(load_json(text, TOOL))
        except ParseError:
            data = None
    if data is None or "error" in data:
        error = as_dict(data.get("error")) if data else None
        detail = _error_detail(error) if error else ""
        reason = (
            detail
            or last_lines(run.stderr)
            or last_lines(run.stdout)
            or f"pnpm audit exited {run.exit_code}"
        )
        if any(marker in f"{reason} {run.stderr}" for marker in _UNAVAILABLE):
            return Outcome.unavailable(
                TOOL,
                target,
                f"the registry's audit endpoint refused or failed: {reason}",
                run.tool_version,
            )
        return Outcome.error(TOOL, target, reason, run.tool_version)
    if "advisories" in data:
        findings = _advisories(as_dict(data["advisories"]) or {}, target, manifest)
    elif "vulnerabilities" in data:
        findings = npm_report_findings(as_dict(data["vulnerabilities"]) or {}, target, manifest)
    else:
        return Outcome.error(
            TOOL,
            target,
            "pnpm audit JSON has neither advisories nor vulnerabilities",
            run.tool_version,
        )
    return Outcome.of(TOOL, target, findings, run.tool_version)


def _advisories(advisories: dict[str, object], service: str, manifest: str) -> list[Finding]:
    findings: list[Finding] = []
    for advisory in map(as_dict, advisories.values()):
        if advisory is None:
            continue
        ghsa = str(advisory.get("github_advisory_id") or "")
        rule = ghsa or f"npm-{advisory.get('id', '')}"
        aliases = tuple(as_str_list(advisory.get("cves")) or [])
        patched = str(advisory.get("patched_versions") or "")
        versions = sorted(
            {
                str(found.get("version", ""))
                for found in map(as_dict, as_list(advisory.get("findings")) or [])
                if found is not None
            }
        ) or [""]
        for version in versions:
            raw_severity = str(advisory.get("severity", ""))
            findings.append(
                Finding(
                    tool=TOOL,
                    rule_id=rule,
                    severity=severity_from(SEVERITY, raw_severity),
                    title=str(advisory.get("title", rule)),
                    location=PackageLocation(
                        str(advisory.get("module_name", "")),
                        version,
                        (patched,) if patched and patched != "<0.0.0" else (),
                        manifest,
                    ),
                    service=service,
                    help_uri=str(advisory.get("url", "")),
                    raw_severity=raw_severity,
                    aliases=aliases,
                )
            )
    return findings


def npm_report_findings(
    vulnerabilities: dict[str, object], service: str, manifest: str, tool: str = TOOL
) -> list[Finding]:
    """Findings of npm's v2 audit report (`vulnerabilities`), which pnpm 12 also prints."""
    findings: list[Finding] = []
    for name, raw in vulnerabilities.items():
        vuln = as_dict(raw) or {}
        for via in map(as_dict, as_list(vuln.get("via")) or []):
            if via is None:
                continue  # a string `via` names another vulnerable package, reported on its own
            url = str(via.get("url", ""))
            rule = (
                url.rsplit("/", 1)[-1] if "/advisories/" in url else f"npm-{via.get('source', '')}"
            )
            raw_severity = str(via.get("severity", ""))
            findings.append(
                Finding(
                    tool=tool,
                    rule_id=rule,
                    severity=severity_from(SEVERITY, raw_severity),
                    title=str(via.get("title", rule)),
                    location=PackageLocation(
                        str(via.get("name") or name), str(via.get("range", "")), (), manifest
                    ),
                    service=service,
                    help_uri=url,
                    raw_severity=raw_severity,
                )
            )
    return findings


def _error_detail(error: dict[str, object]) -> str:
    """pnpm 12's `summary`, else pnpm 9's `code: message` (the registry's answer)."""
    code, message = str(error.get("code") or ""), str(error.get("message") or "").strip()
    return str(error.get("summary") or (f"{code}: {message}" if message else code))
