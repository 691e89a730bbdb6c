"""Findings, severities and per-scanner outcomes: the data every parser returns (no Dagger runtime required)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum


class Severity(IntEnum):
    """Ordered severities; UNKNOWN is what a parser reports for a value it cannot map."""

    UNKNOWN = -1
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """Lower-case name for reports."""
        return self.name.lower()


class Status(StrEnum):
    """How one scanner run ended. Only CLEAN means "looked and found nothing"."""

    CLEAN = "clean"
    FINDINGS = "findings"
    UNAVAILABLE = "unavailable"
    """The scanner could not look (no vulnerability data, registry refused, no network)."""
    ERROR = "error"
    """The scanner broke (crash, internal errors, unparseable output)."""


@dataclass(frozen=True)
class FileLocation:
    """A finding in a source file."""

    path: str
    """Relative to the monorepo root, POSIX separators."""
    line: int = 0
    end_line: int = 0


@dataclass(frozen=True)
class PackageLocation:
    """A finding in a dependency."""

    name: str
    version: str
    fixed_versions: tuple[str, ...] = ()
    manifest: str = ""
    """The lock file or image the package was found through."""


Location = FileLocation | PackageLocation


@dataclass(frozen=True)
class Finding:
    """One problem a scanner reported."""

    tool: str
    rule_id: str
    """Rule or advisory id (e.g. `wormhole.python.subprocess-shell-true`, `GHSA-…`, `CVE-…`)."""
    severity: Severity
    title: str
    location: Location
    service: str = ""
    message: str = ""
    help_uri: str = ""
    raw_severity: str = ""
    """The scanner's own severity text, kept when the policy had to assign one."""
    aliases: tuple[str, ...] = ()
    waived_by: str = ""
    """The ignore entry that waives this finding ("" when active)."""

    @property
    def fingerprint(self) -> str:
        """Stable across runs and machines: tool, rule and where (never the matched text)."""
        match self.location:
            case FileLocation(path=path, line=line):
                where = f"{path}:{line}"
            case PackageLocation(name=name, version=version, manifest=manifest):
                where = f"{manifest}:{name}@{version}"
        digest = hashlib.sha256(f"{self.tool}\0{self.rule_id}\0{self.service}\0{where}".encode())
        return digest.hexdigest()[:32]

    def waive(self, entry: str) -> Finding:
        """A copy marked as waived by the ignore entry `entry`."""
        return replace(self, waived_by=entry)


@dataclass(frozen=True)
class Outcome:
    """The result of one scanner over one target."""

    tool: str
    target: str
    """What was scanned: a service name, `monorepo`, or an image reference."""
    status: Status
    findings: tuple[Finding, ...] = ()
    reason: str = ""
    """Why the scanner was unavailable or errored (shown verbatim, never as "no findings")."""
    tool_version: str = ""
    notes: tuple[str, ...] = field(default=())
    """Policy notes for this outcome, e.g. that severities were assigned."""

    @staticmethod
    def of(
        tool: str,
        target: str,
        findings: list[Finding],
        tool_version: str = "",
        notes: tuple[str, ...] = (),
    ) -> Outcome:
        """CLEAN or FINDINGS depending on `findings`."""
        status = Status.FINDINGS if findings else Status.CLEAN
        return Outcome(tool, target, status, tuple(findings), "", tool_version, notes)

    @staticmethod
    def unavailable(tool: str, target: str, reason: str, tool_version: str = "") -> Outcome:
        """The scanner could not look."""
        return Outcome(tool, target, Status.UNAVAILABLE, (), reason, tool_version)

    @staticmethod
    def error(tool: str, target: str, reason: str, tool_version: str = "") -> Outcome:
        """The scanner broke."""
        return Outcome(tool, target, Status.ERROR, (), reason, tool_version)
