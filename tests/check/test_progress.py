"""Progress output: plain lines for logs, a live table on a terminal, the final per-service lines."""

from __future__ import annotations

import io

from rich.console import Console

from wormhole_ci.check.progress import LiveReporter, PlainReporter, print_report
from wormhole_ci.manifest import ServiceKind
from wormhole_ci.plan import Plan, ServicePlan, Task, Tool
from wormhole_ci.results import RunReport, Status, TaskResult

LINT = Task("api", "lint", Tool.PNPM, "12.4.2", "api", ("pnpm", "run", "lint"))
TEST = Task("api", "test", Tool.PNPM, "12.4.2", "api", ("pnpm", "run", "test"))
PLAN = Plan("p", (ServicePlan("api", ServiceKind.NODE, "api", (LINT, TEST)),))


def test_plain_lines() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out)
    reporter.started(LINT)
    reporter.finished(TaskResult("api", "lint", Status.FAILED, 1.25, 1, "boom"))
    reporter.finished(
        TaskResult("api", "test", Status.PASSED, 0.0, 0, "passed earlier in 2.0s", cached=True)
    )
    assert out.getvalue().splitlines() == [
        "[api] lint started: pnpm run lint",
        "[api] lint failed, exit 1 (1.2s)",
        "[api] test passed (cached: passed earlier in 2.0s)",
    ]


def test_live_table_shows_running_and_finished_tasks() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    with LiveReporter(console, PLAN) as reporter:
        reporter.started(LINT)
        reporter.finished(TaskResult("api", "lint", Status.PASSED, 2.0, 0))
    text = out.getvalue()
    assert "running" in text
    assert "passed" in text
    assert "waiting" in text  # test never started


def test_final_report_lists_every_service_and_task() -> None:
    out = io.StringIO()
    report = RunReport(
        (
            TaskResult("api", "lint", Status.PASSED, 1.0, 0),
            TaskResult("web", "test", Status.BLOCKED, tail="x"),
        ),
        wall_time=3.0,
    )
    print_report(Console(file=out, width=200, color_system=None), report)
    assert out.getvalue().splitlines() == [
        "api  passed  lint passed",
        "web  failed  test blocked",
        "check failed in 3.0s",
    ]


def test_final_report_ends_with_the_plans_notes() -> None:
    """A convention that found nothing to run is said in the summary, not only in the log."""
    out = io.StringIO()
    report = RunReport((TaskResult("web", "lint", Status.PASSED, 1.0, 0),), wall_time=2.0)
    notes = ("web: no `test` script in package.json, tests skipped",)
    print_report(Console(file=out, width=200, color_system=None), report, "check", notes)
    assert out.getvalue().splitlines() == [
        "web  passed  lint passed",
        "notes:",
        "  web: no `test` script in package.json, tests skipped",
        "check passed in 2.0s",
    ]
