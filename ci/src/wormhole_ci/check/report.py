"""The JSON report of a check run: every task's outcome and, where known, why it ran."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from wormhole_ci.check.explain import explanation_json
from wormhole_ci.results import RunReport


def report_json(report: RunReport, what: str = "check", notes: Sequence[str] = ()) -> str:
    """`{"command", "passed", "wall_time", "notes", "tasks": [...]}` with stable key order.

    A task's `explain` is `{"reused": true}` or the first input that differs (`cause`,
    `subject`, `detail`, `more`); an env var is named, its value never included.
    """
    tasks: list[dict[str, object]] = []
    for result in report.results:
        task: dict[str, object] = {
            "service": result.service,
            "task": result.task,
            "status": str(result.status),
            "cached": result.cached,
            "duration": round(result.duration, 3),
            "exit_code": result.exit_code,
            "log": result.log,
        }
        if result.explanation is not None:
            task["explain"] = explanation_json(result.explanation)
        tasks.append(task)
    data = {
        "command": what,
        "passed": report.ok,
        "wall_time": round(report.wall_time, 3),
        "notes": list(notes),
        "tasks": tasks,
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_report_json(
    report: RunReport, path: Path, what: str = "check", notes: Sequence[str] = ()
) -> None:
    """Write the report's JSON to `path`, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_json(report, what, notes), encoding="utf-8")
