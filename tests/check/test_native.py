"""The native executor (through the scheduler) on small real subprocesses: order, concurrency,
blocking, timeouts, result reuse."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio

from wormhole_ci.check.native import NativeExecutor, NativeOptions, PrioritySlots
from wormhole_ci.manifest import ServiceKind
from wormhole_ci.plan import Plan, ServicePlan, Task, Tool
from wormhole_ci.results import Status, TaskResult
from wormhole_ci.toolchains import HostTools

PY = sys.executable


class Recorder:
    """A reporter that keeps events in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def started(self, task: Task) -> None:
        self.events.append(f"start {task.key}")

    def finished(self, result: TaskResult) -> None:
        self.events.append(f"end {result.service}:{result.task} {result.status}")


def task(service: str, name: str, code: str, after: tuple[str, ...] = ()) -> Task:
    return Task(
        service=service,
        name=name,
        tool=Tool.UV,
        tool_version="",
        workdir=".",
        argv=("python", "-c", code),
        after=after,
    )


def service(name: str, *tasks: Task) -> ServicePlan:
    return ServicePlan(name, ServiceKind.PYTHON, ".", tasks)


def run(
    plan: Plan, tmp_path: Path, jobs: int = 4, timeout: float = 60.0
) -> tuple[list[TaskResult], Recorder]:
    options = NativeOptions(
        source=tmp_path,
        log_dir=tmp_path / "logs",
        cache_dir=tmp_path / "cache",
        jobs=jobs,
        task_timeout=timeout,
    )
    recorder = Recorder()
    executor = NativeExecutor(options, HostTools({"python": (PY,)}))
    report = anyio.run(executor.execute, plan, recorder)
    return list(report.results), recorder


def test_failures_do_not_cancel_siblings_and_setup_failure_blocks(tmp_path: Path) -> None:
    plan = Plan(
        "p",
        (
            service(
                "a",
                task("a", "install", "pass"),
                task("a", "lint", "import sys; print('bad lint'); sys.exit(3)"),
                task("a", "test", "print('tests ok')"),
            ),
            service(
                "b", task("b", "install", "import sys; sys.exit(1)"), task("b", "test", "pass")
            ),
            service("c", task("c", "test", "import time; time.sleep(0.5); print('slow but fine')")),
        ),
    )
    results, _ = run(plan, tmp_path)
    status = {f"{r.service}:{r.task}": r.status for r in results}
    assert status == {
        "a:install": Status.PASSED,
        "a:lint": Status.FAILED,
        "a:test": Status.PASSED,
        "b:install": Status.FAILED,
        "b:test": Status.BLOCKED,
        "c:test": Status.PASSED,
    }
    lint = next(r for r in results if r.task == "lint")
    assert (lint.exit_code, lint.tail.splitlines()[-1]) == (3, "bad lint")
    assert lint.log is not None
    assert Path(lint.log).read_text().startswith("$ python -c")
    blocked = next(r for r in results if r.status is Status.BLOCKED)
    assert blocked.tail == "not run: b:install did not pass"


def test_tasks_of_a_service_run_in_order_services_concurrently(tmp_path: Path) -> None:
    marker = tmp_path / "trace"

    def step(label: str) -> str:
        return f"import time; open({str(marker)!r}, 'a').write('{label}+\\n'); time.sleep(0.3); open({str(marker)!r}, 'a').write('{label}-\\n')"

    plan = Plan(
        "p",
        (
            service("a", task("a", "one", step("a1")), task("a", "two", step("a2"))),
            service("b", task("b", "one", step("b1")), task("b", "two", step("b2"))),
        ),
    )
    started = time.monotonic()
    run(plan, tmp_path, jobs=2)
    elapsed = time.monotonic() - started
    trace = marker.read_text().split()
    assert trace.index("a1-") < trace.index("a2+")
    assert trace.index("b1-") < trace.index("b2+")
    # both services' first tasks overlapped
    assert trace.index("b1+") < trace.index("a1-") or trace.index("a1+") < trace.index("b1-")
    assert elapsed < 4 * 0.3 + 2.0  # generous: concurrency is proven by the trace above


def test_jobs_bounds_how_many_tasks_run_at_once(tmp_path: Path) -> None:
    marker = tmp_path / "trace"
    code = f"import time; open({str(marker)!r}, 'a').write('+\\n'); time.sleep(0.3); open({str(marker)!r}, 'a').write('-\\n')"
    plan = Plan("p", tuple(service(f"s{i}", task(f"s{i}", "t", code)) for i in range(4)))
    run(plan, tmp_path, jobs=1)
    assert marker.read_text().split() == ["+", "-"] * 4


def test_after_dependencies_wait_and_block(tmp_path: Path) -> None:
    marker = tmp_path / "trace"
    plan = Plan(
        "p",
        (
            service(
                "db",
                task(
                    "db",
                    "install",
                    f"import time; time.sleep(0.4); open({str(marker)!r}, 'a').write('db\\n')",
                ),
            ),
            service(
                "meta",
                task(
                    "meta",
                    "validate",
                    f"open({str(marker)!r}, 'a').write('meta\\n')",
                    after=("db:install",),
                ),
            ),
        ),
    )
    run(plan, tmp_path)
    assert marker.read_text().split() == ["db", "meta"]
    failing = Plan(
        "p",
        (
            service("db", task("db", "install", "raise SystemExit(1)")),
            service("meta", task("meta", "validate", "pass", after=("db:install",))),
        ),
    )
    results, _ = run(failing, tmp_path)
    assert results[1].status is Status.BLOCKED


def test_timeout_kills_the_process_tree(tmp_path: Path) -> None:
    child = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); open({str(child)!r}, 'w').write(str(p.pid)); "
        "time.sleep(60)"
    )
    plan = Plan("p", (service("a", task("a", "hang", code)),))
    started = time.monotonic()
    results, _ = run(plan, tmp_path, timeout=1.5)
    assert time.monotonic() - started < 20
    assert results[0].status is Status.FAILED
    assert "timed out after 2s" in results[0].tail or "timed out after 1s" in results[0].tail
    pid = int(child.read_text())
    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline
        and Path(f"/proc/{pid}").exists()
        and "zombie" not in Path(f"/proc/{pid}/status").read_text()
    ):
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_missing_program_is_a_failed_task_not_a_crash(tmp_path: Path) -> None:
    plan = Plan(
        "p", (service("a", Task("a", "lint", Tool.UV, "", ".", ("no-such-tool-xyz", "run"))),)
    )
    results, recorder = run(plan, tmp_path)
    assert results[0].status is Status.FAILED
    assert "could not start no-such-tool-xyz" in results[0].tail
    assert recorder.events == ["start a:lint", "end a:lint failed"]


def test_timings_order_the_next_run_longest_first(tmp_path: Path) -> None:
    plan = Plan(
        "p",
        (
            service("short", task("short", "t", "pass")),
            service("long", task("long", "t", "import time; time.sleep(0.4)")),
            service("mid", task("mid", "t", "import time; time.sleep(0.2)")),
        ),
    )
    _, first = run(plan, tmp_path, jobs=1)
    assert [e.split()[1] for e in first.events if e.startswith("start")] == [
        "short:t",
        "long:t",
        "mid:t",
    ]
    _, second = run(plan, tmp_path, jobs=1)
    assert [e.split()[1] for e in second.events if e.startswith("start")] == [
        "long:t",
        "mid:t",
        "short:t",
    ]


def test_priority_slots_hand_a_freed_slot_to_the_highest_priority(tmp_path: Path) -> None:
    order: list[str] = []

    async def main() -> None:
        slots = PrioritySlots(1)

        async def worker(name: str, priority: float, delay: float) -> None:
            await anyio.sleep(delay)
            async with slots.hold(priority):
                order.append(name)
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as group:
            group.start_soon(worker, "first", 0.0, 0.0)
            group.start_soon(worker, "low", 1.0, 0.01)
            group.start_soon(worker, "high", 9.0, 0.02)
            group.start_soon(worker, "mid", 5.0, 0.03)

    anyio.run(main)
    assert order == ["first", "high", "mid", "low"]


def run_reusing(plan: Plan, source: Path, tmp_path: Path) -> list[TaskResult]:
    """One run with result reuse on (the default), caches under tmp_path."""
    options = NativeOptions(
        source=source, log_dir=tmp_path / "logs", cache_dir=tmp_path / "cache", jobs=2
    )
    return list(
        anyio.run(
            NativeExecutor(options, HostTools({"python": (PY,)})).execute, plan, Recorder()
        ).results
    )


def test_passed_results_are_reused_until_an_input_changes(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "svc").mkdir(parents=True)
    (source / "svc" / "code.py").write_text("x = 1\n")
    counter = tmp_path / "runs"

    def counting(name: str) -> Task:
        code = f"open({str(counter)!r}, 'a').write('{name}\\n')"
        return Task("svc", name, Tool.UV, "", "svc", ("python", "-c", code))

    plan = Plan(
        "p",
        (
            ServicePlan(
                "svc",
                ServiceKind.PYTHON,
                "svc",
                (counting("install"), counting("lint"), counting("test")),
            ),
        ),
    )

    def run_once() -> list[TaskResult]:
        return run_reusing(plan, source, tmp_path)

    first = run_once()
    assert [r.cached for r in first] == [False, False, False]
    second = run_once()
    assert [r.cached for r in second] == [True, True, True]
    assert all(r.status is Status.PASSED for r in second)
    assert counter.read_text().split() == ["install", "lint", "test"]
    (source / "svc" / "code.py").write_text("x = 2\n")
    third = run_once()
    assert [r.cached for r in third] == [False, False, False]
    # ignored folders (dependencies, tool caches) are not inputs
    (source / "svc" / "node_modules").mkdir()
    (source / "svc" / "node_modules" / "pkg.js").write_text("1")
    assert [r.cached for r in run_once()] == [True, True, True]


def test_failures_are_never_reused_and_missing_outputs_rerun(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "svc").mkdir(parents=True)
    install = Task(
        "svc",
        "install",
        Tool.UV,
        "",
        "svc",
        ("python", "-c", "import os; os.makedirs('.venv', exist_ok=True)"),
        outputs=(".venv",),
    )
    test = Task("svc", "test", Tool.UV, "", "svc", ("python", "-c", "raise SystemExit(1)"))
    plan = Plan("p", (ServicePlan("svc", ServiceKind.PYTHON, "svc", (install, test)),))

    def run_once() -> list[TaskResult]:
        return run_reusing(plan, source, tmp_path)

    run_once()
    again = run_once()
    assert (again[0].cached, again[1].cached, again[1].status) == (True, False, Status.FAILED)
    (source / "svc" / ".venv").rmdir()
    rerun = run_once()
    assert rerun[0].cached is False
    assert (source / "svc" / ".venv").is_dir()
