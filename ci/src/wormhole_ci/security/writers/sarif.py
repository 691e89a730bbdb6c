"""One merged SARIF 2.1.0 log: a run per tool, each rule once, waived findings as suppressions."""

from __future__ import annotations

import json

from wormhole_ci import __version__
from wormhole_ci.security.model import (
    FileLocation,
    Finding,
    Outcome,
    PackageLocation,
    Severity,
    Status,
)
from wormhole_ci.security.policy import Verdict

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# GitHub code scanning reads `security-severity` (a CVSS-like score) to rank results.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
    Severity.UNKNOWN: "8.0",  # counted as high by the policy
}
LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
    Severity.UNKNOWN: "error",
}
TOOL_URI = {
    "semgrep": "https://semgrep.dev",
    "trivy": "https://trivy.dev",
    "pnpm-audit": "https://pnpm.io/cli/audit",
    "npm-audit": "https://docs.npmjs.com/cli/commands/npm-audit",
    "pip-audit": "https://github.com/pypa/pip-audit",
}


def sarif_log(verdict: Verdict) -> dict[str, object]:
    """The SARIF document for every outcome of the verdict."""
    runs: list[dict[str, object]] = []
    for tool in dict.fromkeys(o.tool for o in verdict.outcomes):
        runs.append(_run(tool, [o for o in verdict.outcomes if o.tool == tool]))
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": runs}


def write_sarif(verdict: Verdict) -> str:
    """Serialized with sorted keys so the output is stable for snapshots and diffs."""
    return json.dumps(sarif_log(verdict), indent=2, sort_keys=True) + "\n"


def _run(tool: str, outcomes: list[Outcome]) -> dict[str, object]:
    rules: dict[str, dict[str, object]] = {}
    results: list[dict[str, object]] = []
    findings = sorted((f for o in outcomes for f in o.findings), key=_order)
    for finding in findings:
        if finding.rule_id not in rules:
            rules[finding.rule_id] = _rule(finding)
    index = {rule_id: i for i, rule_id in enumerate(rules)}
    for finding in findings:
        results.append(_result(finding, index[finding.rule_id]))
    version = next((o.tool_version for o in outcomes if o.tool_version), "")
    driver: dict[str, object] = {
        "name": tool,
        "informationUri": TOOL_URI.get(tool, "https://github.com/wormhole/wormhole-ci"),
        "rules": list(rules.values()),
        "properties": {"reportedBy": f"wormhole-ci {__version__}"},
    }
    if version:
        driver["version"] = version
    notifications = [
        {
            "level": "error",
            "message": {
                "text": f"{o.tool} on {o.target} {o.status}: {o.reason} — this is not a clean result"
            },
            "descriptor": {"id": f"wormhole-ci/{o.status}"},
        }
        for o in outcomes
        if o.status in (Status.UNAVAILABLE, Status.ERROR)
    ]
    invocation: dict[str, object] = {"executionSuccessful": not notifications}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {"tool": {"driver": driver}, "results": results, "invocations": [invocation]}


def _rule(finding: Finding) -> dict[str, object]:
    rule: dict[str, object] = {
        "id": finding.rule_id,
        "name": finding.rule_id,
        "shortDescription": {"text": finding.title or finding.rule_id},
        "defaultConfiguration": {"level": LEVEL[finding.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[finding.severity],
            "tags": ["security", finding.tool],
        },
    }
    if finding.help_uri:
        rule["helpUri"] = finding.help_uri
    return rule


def _result(finding: Finding, rule_index: int) -> dict[str, object]:
    match finding.location:
        case FileLocation(path=path, line=line, end_line=end_line):
            region: dict[str, object] = {"startLine": max(line, 1)}
            if end_line >= line > 0:
                region["endLine"] = end_line
            location = {
                "physicalLocation": {"artifactLocation": {"uri": path or "."}, "region": region}
            }
            text = finding.message or finding.title
        case PackageLocation(name=name, version=version, fixed_versions=fixed, manifest=manifest):
            location = {
                "physicalLocation": {
                    "artifactLocation": {"uri": manifest or "."},
                    "region": {"startLine": 1},
                },
                "logicalLocations": [{"name": f"{name}@{version}", "kind": "package"}],
            }
            fix = f"; fixed in {', '.join(fixed)}" if fixed else "; no fixed version"
            text = f"{name}@{version}: {finding.title}{fix}"
    result: dict[str, object] = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {"wormholeCiFingerprint/v1": finding.fingerprint},
        "properties": {
            "service": finding.service,
            "severity": finding.severity.label,
            "rawSeverity": finding.raw_severity,
        },
    }
    if finding.waived_by:
        result["suppressions"] = [
            {"kind": "external", "justification": finding.waived_by, "status": "accepted"}
        ]
    return result


def _order(finding: Finding) -> tuple[str, str, str]:
    return (finding.rule_id, finding.service, finding.fingerprint)
