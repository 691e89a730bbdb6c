"""Progress output: a live table on a terminal, one plain line per event otherwise."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from wormhole_ci.plan import Plan, Task
from wormhole_ci.results import RunReport, Status, TaskResult, status_lines

_STYLE = {Status.PASSED: "green", Status.FAILED: "bold red", Status.BLOCKED: "yellow"}


class PlainReporter:
    """`[api] lint passed (3.2s)` lines, for logs and CI."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def started(self, task: Task) -> None:
        self._line(f"[{task.service}] {task.name} started: {' '.join(task.argv)}")

    def finished(self, result: TaskResult) -> None:
        extra = "" if result.status is Status.PASSED else f", exit {result.exit_code}"
        if result.status is Status.BLOCKED:
            extra = f": {result.tail}"
        if result.cached:
            self._line(f"[{result.service}] {result.task} passed (cached: {result.tail})")
            return
        self._line(
            f"[{result.service}] {result.task} {result.status}{extra} ({result.duration:.1f}s)"
        )

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class LiveReporter:
    """A rich table redrawn as tasks start and finish."""

    def __init__(self, console: Console, plan: Plan) -> None:
        self.console = console
        self.plan = plan
        self.state: dict[str, tuple[str, float]] = {t.key: ("waiting", 0.0) for t in plan.tasks}
        self.results: dict[str, TaskResult] = {}
        self.live = Live(self._table(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveReporter:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._table(), refresh=True)
        self.live.__exit__(None, None, None)

    def started(self, task: Task) -> None:
        self.state[task.key] = ("running", time.monotonic())
        self.live.update(self._table(), refresh=True)

    def finished(self, result: TaskResult) -> None:
        self.results[f"{result.service}:{result.task}"] = result
        self.live.update(self._table(), refresh=True)

    def _table(self) -> Table:
        table = Table(show_header=True, header_style="bold", expand=False)
        for column in ("service", "task", "status", "time"):
            table.add_column(column)
        now = time.monotonic()
        for task in self.plan.tasks:
            result = self.results.get(task.key)
            if result is not None:
                table.add_row(
                    task.service,
                    task.name,
                    f"[{_STYLE[result.status]}]{result.status}{' (cached)' if result.cached else ''}",
                    f"{result.duration:.1f}s",
                )
                continue
            state, since = self.state[task.key]
            elapsed = f"{now - since:.0f}s" if state == "running" else ""
            table.add_row(
                task.service,
                task.name,
                "[cyan]running" if state == "running" else "[dim]waiting",
                elapsed,
            )
        return table


def print_report(
    console: Console, report: RunReport, what: str = "check", notes: Sequence[str] = ()
) -> None:
    """One line per service listing every task's status, the plan's notes, then the verdict."""
    for line in status_lines(report, what, notes):
        console.print(line, markup=False, highlight=False)
