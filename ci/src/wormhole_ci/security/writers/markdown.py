"""A Markdown summary for `$GITHUB_STEP_SUMMARY`: outcome per scanner, blocking findings, waivers."""

from __future__ import annotations

from wormhole_ci.security.model import FileLocation, Finding, PackageLocation, Status
from wormhole_ci.security.policy import Verdict, effective_severity

_ICON = {Status.CLEAN: "✅", Status.FINDINGS: "⚠️", Status.UNAVAILABLE: "⛔", Status.ERROR: "❌"}


def where(finding: Finding) -> str:
    """`path:line` or `package@version (fixed: …)`."""
    match finding.location:
        case FileLocation(path=path, line=line):
            return f"{path}:{line}" if line else path
        case PackageLocation(name=name, version=version, fixed_versions=fixed):
            return f"{name}@{version} (fix: {', '.join(fixed) or 'none'})"


def write_markdown(verdict: Verdict) -> str:
    """The summary document."""
    lines = [
        f"## wormhole-ci scan: {'passed' if verdict.passed else 'FAILED'} (fail on {verdict.fail_on})",
        "",
    ]
    for reason in verdict.reasons():
        lines.append(f"- **{_cell(reason)}**")
    if verdict.reasons():
        lines.append("")
    lines += ["| scanner | target | outcome | findings | version |", "|---|---|---|---|---|"]
    for o in verdict.outcomes:
        detail = (
            str(len(o.findings))
            if o.status is not Status.UNAVAILABLE
            else f"not scanned: {o.reason}"
        )
        if o.status is Status.ERROR:
            detail = f"scanner error: {o.reason}"
        lines.append(
            f"| {o.tool} | {o.target} | {_ICON[o.status]} {o.status} | {_cell(detail)} | {o.tool_version or '?'} |"
        )
    notes = [n for o in verdict.outcomes for n in o.notes]
    for note in dict.fromkeys(notes):
        lines.append(f"\n> {note}")
    active = sorted(
        (f for o in verdict.outcomes for f in o.findings if not f.waived_by),
        key=lambda f: (-effective_severity(f), f.tool, f.rule_id),
    )
    if active:
        lines += [
            "",
            "### Findings",
            "",
            "| severity | scanner | id | where | title |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {f.severity.label} | {f.tool} | {f.rule_id} | {_cell(where(f))} | {_cell(f.title)} |"
            for f in active
        ]
    waived = [f for o in verdict.outcomes for f in o.findings if f.waived_by]
    if waived:
        lines += ["", "### Waived", ""]
        lines += [f"- {f.rule_id} at {_cell(where(f))}: {_cell(f.waived_by)}" for f in waived]
    if verdict.expired:
        lines += ["", "### Expired waivers (no longer applied)", ""]
        lines += [f"- {e.label}: {_cell(e.reason)}" for e in verdict.expired]
    if verdict.unused:
        lines += ["", "### Waivers that matched nothing", ""]
        lines += [f"- {e.label}" for e in verdict.unused]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
