"""`pip-audit --format json` output, including its false pass when nothing could be audited."""

from __future__ import annotations

from wormhole_ci.jsonish import as_dict, as_list, as_str_list
from wormhole_ci.security.model import Finding, Outcome, PackageLocation, Severity, Status
from wormhole_ci.security.parsers.common import ParseError, RawRun, last_lines, load_json

TOOL = "pip-audit"
EDITABLE = "requirement marked as editable"


def parse(run: RawRun, target: str, manifest: str) -> Outcome:
    """Findings per vulnerable dependency. pip-audit has no severities (UNKNOWN: the
    policy assigns one). Skipped dependencies mean pip-audit did not look at them: when
    any is skipped the outcome is `unavailable`, even though pip-audit itself exits 0
    and prints "No known vulnerabilities found" (its false pass without PyPI/OSV)."""
    try:
        data = load_json(run.stdout, TOOL)
    except ParseError as exc:
        reason = last_lines(run.stderr) or str(exc)
        return Outcome.error(TOOL, target, reason, run.tool_version)
    # pip-audit 2.x: {"dependencies": [...], "fixes": [...]}; 1.x printed the list itself.
    report = as_dict(data)
    dependencies = as_list(data) if report is None else as_list(report.get("dependencies"))
    if dependencies is None:
        return Outcome.error(
            TOOL, target, "pip-audit JSON has no dependencies list", run.tool_version
        )
    findings: list[Finding] = []
    skipped: list[str] = []
    reasons: set[str] = set()
    for dep in map(as_dict, dependencies):
        if dep is None:
            continue
        name, version = str(dep.get("name", "")), str(dep.get("version", ""))
        if str(dep.get("skip_reason", "")) == EDITABLE:
            continue  # the project's own code: not a dependency to audit
        if dep.get("skip_reason"):
            skipped.append(name)
            reasons.add(str(dep["skip_reason"]))
            continue
        for vuln in map(as_dict, as_list(dep.get("vulns")) or []):
            if vuln is None:
                continue
            description = str(vuln.get("description", "")).strip()
            findings.append(
                Finding(
                    tool=TOOL,
                    rule_id=str(vuln.get("id", "")),
                    severity=Severity.UNKNOWN,
                    title=description.splitlines()[0][:200]
                    if description
                    else str(vuln.get("id", "")),
                    location=PackageLocation(
                        name, version, tuple(as_str_list(vuln.get("fix_versions")) or []), manifest
                    ),
                    service=target,
                    message=description,
                    raw_severity="none",
                    aliases=tuple(as_str_list(vuln.get("aliases")) or []),
                )
            )
    if skipped:
        reason = (
            f"{len(skipped)} of {len(dependencies)} dependencies could not be audited "
            f"({', '.join(sorted(skipped)[:5])}{'…' if len(skipped) > 5 else ''}): {'; '.join(sorted(reasons))}"
        )
        return Outcome(
            TOOL,
            target,
            Status.UNAVAILABLE,
            tuple(findings),
            reason,
            run.tool_version,
        )
    if run.exit_code not in (0, 1, None):
        return Outcome.error(
            TOOL,
            target,
            last_lines(run.stderr) or f"pip-audit exited {run.exit_code}",
            run.tool_version,
        )
    return Outcome.of(TOOL, target, findings, run.tool_version)
