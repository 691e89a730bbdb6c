"""The scan policy: which findings fail the scan, which are waived, and what "could not scan" means."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum

from wormhole_ci.security.model import (
    FileLocation,
    Finding,
    Outcome,
    PackageLocation,
    Severity,
    Status,
)
from wormhole_ci.waivers import IgnoreEntry

# A severity the scanner did not give, or one we cannot map, fails closed: it counts as high.
UNKNOWN_COUNTS_AS = Severity.HIGH
# Scanners whose findings carry no severity at all; the policy assigns UNKNOWN_COUNTS_AS.
NO_SEVERITY_TOOLS = frozenset({"pip-audit"})


class FailOn(StrEnum):
    """The lowest severity that fails the scan (`none`: findings never fail it)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "none"

    @property
    def threshold(self) -> Severity | None:
        """The severity at and above which findings fail the scan."""
        return None if self is FailOn.NONE else Severity[self.name]


@dataclass(frozen=True)
class Verdict:
    """The policy applied to every outcome of a scan."""

    outcomes: tuple[Outcome, ...]
    """Outcomes with waived findings marked (`Finding.waived_by`)."""
    fail_on: FailOn
    allow_unavailable: bool
    blocking: tuple[Finding, ...]
    """Active findings at or above the threshold."""
    expired: tuple[IgnoreEntry, ...]
    unused: tuple[IgnoreEntry, ...]
    """Active entries that matched no finding (candidates for removal)."""

    @property
    def not_scanned(self) -> tuple[Outcome, ...]:
        """Outcomes that are neither clean nor findings."""
        return tuple(o for o in self.outcomes if o.status in (Status.UNAVAILABLE, Status.ERROR))

    @property
    def passed(self) -> bool:
        """True when nothing blocks: no finding over the threshold, and every scanner ran
        (unless unavailable/error outcomes are explicitly allowed)."""
        return not self.blocking and (self.allow_unavailable or not self.not_scanned)

    def reasons(self) -> list[str]:
        """Why the scan failed, one line each (empty when it passed)."""
        lines: list[str] = []
        if self.blocking:
            by_tool: dict[str, int] = {}
            for finding in self.blocking:
                by_tool[finding.tool] = by_tool.get(finding.tool, 0) + 1
            counts = ", ".join(f"{tool} {n}" for tool, n in by_tool.items())
            lines.append(f"{len(self.blocking)} findings at or above {self.fail_on} ({counts})")
        if not self.allow_unavailable:
            for outcome in self.not_scanned:
                lines.append(
                    f"{outcome.tool} on {outcome.target} {outcome.status}: {outcome.reason} "
                    "(not a clean result; pass --allow-unavailable to accept it)"
                )
        return lines


def waives(entry: IgnoreEntry, finding: Finding) -> bool:
    """True when `entry` names the finding's rule (or an alias) and the finding is in its scope."""
    ids = (finding.rule_id, *finding.aliases)
    match finding.location:
        case FileLocation(path=path):
            return entry.covers(ids, service=finding.service, path=path)
        case PackageLocation(name=name, version=version):
            return entry.covers(ids, service=finding.service, package=(name, version))


def effective_severity(finding: Finding) -> Severity:
    """The severity the threshold is compared with."""
    return UNKNOWN_COUNTS_AS if finding.severity is Severity.UNKNOWN else finding.severity


def evaluate(
    outcomes: list[Outcome],
    ignores: tuple[IgnoreEntry, ...],
    fail_on: FailOn,
    *,
    allow_unavailable: bool,
    today: dt.date,
) -> Verdict:
    """Apply waivers (expired ones do not apply) and the threshold to every outcome."""
    active = [e for e in ignores if not e.expired(today)]
    expired = tuple(e for e in ignores if e.expired(today))
    used: set[IgnoreEntry] = set()
    marked: list[Outcome] = []
    for outcome in outcomes:
        findings: list[Finding] = []
        for finding in outcome.findings:
            entry = next((e for e in active if waives(e, finding)), None)
            if entry is not None:
                used.add(entry)
            findings.append(finding if entry is None else finding.waive(entry.label))
        notes = outcome.notes
        if outcome.tool in NO_SEVERITY_TOOLS and findings:
            notes = (
                *notes,
                f"{outcome.tool} reports no severity: the policy counts its findings as {UNKNOWN_COUNTS_AS.label}",
            )
        elif any(f.severity is Severity.UNKNOWN for f in findings):
            notes = (*notes, f"unknown severities are counted as {UNKNOWN_COUNTS_AS.label}")
        marked.append(replace(outcome, findings=tuple(findings), notes=notes))
    threshold = fail_on.threshold
    blocking = tuple(
        f
        for o in marked
        for f in o.findings
        if not f.waived_by and threshold is not None and effective_severity(f) >= threshold
    )
    unused = tuple(e for e in active if e not in used)
    return Verdict(tuple(marked), fail_on, allow_unavailable, blocking, expired, unused)
