"""What a run reports: per-task results and the one summary a failed run ends with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

TAIL_LINES = 20


class Status(StrEnum):
    """How a task ended."""

    PASSED = "passed"
    FAILED = "failed"
    BLOCKED = "blocked"
    """Not run: a setup task of its service (or a task it needs) did not pass."""


@dataclass(frozen=True)
class Explanation:
    """Whether a task's earlier result was reused and, if not, the first input that differs."""

    reused: bool
    cause: str = ""
    """What kind of input differs (`file`, `lock file`, `tool version`, `env var`, `command`),
    or why there was nothing to compare (`no earlier run`, `earlier task ran`, …)."""
    subject: str = ""
    """Which one: a path, a tool, an env var's name (never its value), the command."""
    detail: str = ""
    """How it differs: `changed`, `added`, `removed`, or a tool's `old → new` version."""
    more: int = 0
    """Other inputs that differ too, not named."""

    def text(self) -> str:
        """`reused`, or `ran: lock file greeter/uv.lock changed (and 2 more inputs)`."""
        if self.reused:
            return "reused"
        what = " ".join(part for part in (self.cause, self.subject, self.detail) if part)
        more = f" (and {self.more} more input{'s' if self.more > 1 else ''})" if self.more else ""
        return f"ran: {what}{more}"


@dataclass(frozen=True)
class TaskResult:
    """The outcome of one task."""

    service: str
    task: str
    status: Status
    duration: float = 0.0
    exit_code: int | None = None
    tail: str = ""
    """The last lines of the task's output (or why it was blocked)."""
    log: str | None = None
    """Where the full output is kept, when the runtime keeps one."""
    cached: bool = False
    """Passed earlier with identical inputs, command and tools; not run again."""
    explanation: Explanation | None = None
    """Why the result was or was not reused, where the runtime knows (native: always)."""


@dataclass(frozen=True)
class RunReport:
    """Every task's result, in plan order."""

    results: tuple[TaskResult, ...]
    wall_time: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every task passed."""
        return all(r.status is Status.PASSED for r in self.results)

    def services(self) -> list[str]:
        """Service names in plan order."""
        return list(dict.fromkeys(r.service for r in self.results))

    def failed(self) -> list[TaskResult]:
        """The tasks that ran and failed."""
        return [r for r in self.results if r.status is Status.FAILED]


def tail_of(text: str, lines: int = TAIL_LINES) -> str:
    """The last `lines` non-empty-trailing lines of `text`."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def summary(report: RunReport, what: str = "check") -> str:
    """One paragraph naming each failed service and its failed tasks, then their tails.

    `check failed for 2 of 4 services: api (lint), runner (lint, test)`; both runtimes
    raise/print exactly this text.
    """
    services = report.services()
    failed_by_service: dict[str, list[str]] = {}
    for result in report.failed():
        failed_by_service.setdefault(result.service, []).append(result.task)
    if not failed_by_service:
        return f"{what} passed for {len(services)} of {len(services)} services"
    names = ", ".join(f"{svc} ({', '.join(tasks)})" for svc, tasks in failed_by_service.items())
    lines = [f"{what} failed for {len(failed_by_service)} of {len(services)} services: {names}"]
    for result in report.failed():
        code = "" if result.exit_code is None else f", exit {result.exit_code}"
        where = f" (full log: {result.log})" if result.log else ""
        lines.append(f"\n--- {result.service}/{result.task}{code}{where}")
        if result.tail:
            lines.append(result.tail)
    return "\n".join(lines)


def status_lines(report: RunReport, what: str = "check", notes: Sequence[str] = ()) -> list[str]:
    """One line per service listing every task's status, the plan's notes, then the verdict.

    Notes are conventions that found nothing to run (no `test` script, …): a skipped
    check is said where the run is judged, not only in the log above it.
    """
    width = max((len(s) for s in report.services()), default=0)
    lines: list[str] = []
    for service in report.services():
        results = [r for r in report.results if r.service == service]
        ok = all(r.status is Status.PASSED for r in results)
        cells = ", ".join(f"{r.task} {r.status}{' (cached)' if r.cached else ''}" for r in results)
        lines.append(f"{service:<{width}}  {'passed' if ok else 'failed'}  {cells}")
    if notes:
        lines.append("notes:")
        lines.extend(f"  {note}" for note in notes)
    lines.append(f"{what} {'passed' if report.ok else 'failed'} in {report.wall_time:.1f}s")
    return lines


def blocked_reason(blocker: Sequence[str]) -> str:
    """The tail text of a blocked task."""
    return f"not run: {', '.join(blocker)} did not pass"
