"""Trivy `--format json` output: vulnerabilities, secrets and misconfigurations."""

from __future__ import annotations

from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.security.model import FileLocation, Finding, Outcome, PackageLocation, Severity
from wormhole_ci.security.parsers.common import (
    ParseError,
    RawRun,
    ServiceOf,
    last_lines,
    load_json,
    severity_from,
)

TOOL = "trivy"
SEVERITY = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.HIGH,
    "MEDIUM": Severity.MEDIUM,
    "LOW": Severity.LOW,
}
# What trivy prints when it cannot get vulnerability data (no network, no DB cached).
_NO_DATA = (
    "failed to download",
    "db error",
    "vulnerability db",
    "oci repository error",
    "dial tcp",
    "no such host",
)


def parse(run: RawRun, target: str, service_of: ServiceOf, *, path_prefix: str = "") -> Outcome:
    """Findings of every result; a failed run is `unavailable` when trivy could not get
    its vulnerability data and `error` otherwise. Secret values (`Match`, `Code`) are
    never copied. `path_prefix` places file targets relative to the monorepo root."""
    if run.exit_code not in (0, None) or not run.stdout.strip():
        reason = last_lines(run.stderr) or f"trivy exited {run.exit_code} without output"
        if any(marker in run.stderr.lower() for marker in _NO_DATA):
            return Outcome.unavailable(
                TOOL, target, f"no vulnerability data: {reason}", run.tool_version
            )
        return Outcome.error(TOOL, target, reason, run.tool_version)
    try:
        data = load_json(run.stdout, TOOL)
        # trivy < 0.20 printed a bare list of results; newer versions an object with Results.
        report = as_dict(data)
        results = as_list(data) if report is None else as_list(report.get("Results")) or []
        if results is None:
            raise ParseError("trivy JSON is neither a report object nor a list of results")
        findings = [f for result in results for f in _findings(result, service_of, path_prefix)]
    except ParseError as exc:
        return Outcome.error(TOOL, target, str(exc), run.tool_version)
    return Outcome.of(TOOL, target, findings, run.tool_version)


def _findings(raw: object, service_of: ServiceOf, prefix: str) -> list[Finding]:
    result = as_dict(raw)
    if result is None:
        raise ParseError("trivy result is not an object")
    target = str(result.get("Target", ""))
    path = f"{prefix}{target}" if prefix and target else target
    out: list[Finding] = []
    for vuln in map(as_dict, as_list(result.get("Vulnerabilities")) or []):
        if vuln is None:
            continue
        fixed = str(vuln.get("FixedVersion") or "")
        raw_severity = str(vuln.get("Severity", ""))
        out.append(
            Finding(
                tool=TOOL,
                rule_id=str(vuln.get("VulnerabilityID", "")),
                severity=severity_from(SEVERITY, raw_severity),
                title=str(vuln.get("Title") or vuln.get("VulnerabilityID", "")),
                location=PackageLocation(
                    name=str(vuln.get("PkgName", "")),
                    version=str(vuln.get("InstalledVersion", "")),
                    fixed_versions=tuple(v.strip() for v in fixed.split(",") if v.strip()),
                    manifest=path,
                ),
                service=service_of(path),
                help_uri=str(vuln.get("PrimaryURL", "")),
                raw_severity=raw_severity,
            )
        )
    for secret in map(as_dict, as_list(result.get("Secrets")) or []):
        if secret is None:
            continue
        raw_severity = str(secret.get("Severity", ""))
        out.append(
            Finding(
                tool=TOOL,
                rule_id=str(secret.get("RuleID", "")),
                severity=severity_from(SEVERITY, raw_severity),
                title=f"secret: {secret.get('Title', '')}",
                location=FileLocation(
                    path, _int(secret.get("StartLine")), _int(secret.get("EndLine"))
                ),
                service=service_of(path),
                raw_severity=raw_severity,
            )
        )
    for misconfig in map(as_dict, as_list(result.get("Misconfigurations")) or []):
        if misconfig is None or str(misconfig.get("Status", "FAIL")) != "FAIL":
            continue
        cause = as_dict(misconfig.get("CauseMetadata")) or {}
        raw_severity = str(misconfig.get("Severity", ""))
        out.append(
            Finding(
                tool=TOOL,
                rule_id=str(misconfig.get("AVDID") or misconfig.get("ID", "")),
                severity=severity_from(SEVERITY, raw_severity),
                title=str(misconfig.get("Title", "")),
                location=FileLocation(
                    path, _int(cause.get("StartLine")), _int(cause.get("EndLine"))
                ),
                service=service_of(path),
                message=str(misconfig.get("Message", "")),
                help_uri=str(misconfig.get("PrimaryURL", "")),
                raw_severity=raw_severity,
                aliases=(str(misconfig.get("ID", "")),) if misconfig.get("AVDID") else (),
            )
        )
    return out


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
