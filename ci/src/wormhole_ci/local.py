"""The native runtime: runs a plan's tasks as host subprocesses, services concurrently."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

from wormhole_ci.jsonish import as_dict
from wormhole_ci.plan import Plan, ServicePlan, Task
from wormhole_ci.results import RunReport, Status, TaskResult, blocked_reason, tail_of
from wormhole_ci.toolchains import HostTools

DEFAULT_TASK_TIMEOUT = 1800.0


class Reporter(Protocol):
    """Receives progress; implementations print lines or drive a live display."""

    def started(self, task: Task) -> None: ...

    def finished(self, result: TaskResult) -> None: ...


@dataclass(frozen=True)
class LocalOptions:
    """Where the native runtime keeps logs and caches, and how much it runs at once."""

    source: Path
    log_dir: Path
    cache_dir: Path
    jobs: int
    task_timeout: float = DEFAULT_TASK_TIMEOUT


class LocalRuntime:
    """Runs tasks of one service in order and services concurrently, at most `jobs` at once.

    A failed setup task blocks the rest of its service; a failed check does not stop
    the next check of that service, nor any other service (siblings are never cancelled).
    """

    def __init__(self, options: LocalOptions, tools: HostTools, reporter: Reporter) -> None:
        self.options = options
        self.tools = tools
        self.reporter = reporter
        self._timings_path = options.cache_dir / "timings.json"

    async def run(self, plan: Plan) -> RunReport:
        """Run every task and return all results in plan order."""
        started = time.monotonic()
        results: dict[str, TaskResult] = {}
        done = {t.key: anyio.Event() for t in plan.tasks}
        limiter = anyio.CapacityLimiter(max(1, self.options.jobs))
        timings = self._load_timings()
        # Longest chains first: with fewer slots than services, that bounds the makespan.
        ordered = sorted(
            plan.services,
            key=lambda s: -sum(timings.get(t.key, 0.0) for t in s.tasks),
        )
        async with anyio.create_task_group() as group:
            for service in ordered:
                group.start_soon(self._run_service, service, limiter, results, done)
        report = RunReport(
            results=tuple(results[t.key] for t in plan.tasks),
            wall_time=time.monotonic() - started,
        )
        self._save_timings(timings, report)
        return report

    async def _run_service(
        self,
        service: ServicePlan,
        limiter: anyio.CapacityLimiter,
        results: dict[str, TaskResult],
        done: Mapping[str, anyio.Event],
    ) -> None:
        setup_failed: list[str] = []
        for task in service.tasks:
            for dep in task.after:
                await done[dep].wait()
            blockers = setup_failed + [
                dep for dep in task.after if results[dep].status is not Status.PASSED
            ]
            if blockers:
                result = TaskResult(
                    task.service, task.name, Status.BLOCKED, tail=blocked_reason(blockers)
                )
            else:
                async with limiter:
                    self.reporter.started(task)
                    result = await self._run_task(task)
            results[task.key] = result
            done[task.key].set()
            self.reporter.finished(result)
            if task.is_setup and result.status is not Status.PASSED:
                setup_failed.append(task.key)

    async def _run_task(self, task: Task) -> TaskResult:
        log_path = self.options.log_dir / task.service / f"{task.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = self.tools.resolve(task.argv)
        env = self._env(task)
        cwd = self.options.source / task.workdir
        started = time.monotonic()
        with log_path.open("wb") as log:
            log.write(f"$ {' '.join(task.argv)}\n".encode())
            log.flush()
            try:
                process = await anyio.open_process(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # so a timeout can kill the whole tree
                )
            except OSError as exc:
                message = f"could not start {argv[0]}: {exc.strerror or exc}"
                log.write(f"{message}\n".encode())
                return TaskResult(
                    task.service,
                    task.name,
                    Status.FAILED,
                    time.monotonic() - started,
                    None,
                    message,
                    str(log_path),
                )
            code: int | None = None
            try:
                with anyio.fail_after(self.options.task_timeout):
                    code = await process.wait()
            except TimeoutError:
                log.write(f"\ntimed out after {self.options.task_timeout:.0f}s\n".encode())
            finally:
                if process.returncode is None:
                    _kill_group(process.pid)
                    with anyio.CancelScope(shield=True):
                        await process.wait()
                await process.aclose()
        duration = time.monotonic() - started
        tail = tail_of(log_path.read_text(encoding="utf-8", errors="replace"))
        status = Status.PASSED if code == 0 else Status.FAILED
        return TaskResult(task.service, task.name, status, duration, code, tail, str(log_path))

    def _env(self, task: Task) -> dict[str, str]:
        env = dict(os.environ)
        # An activated virtualenv (e.g. the one running us) must not leak into uv projects.
        env.pop("VIRTUAL_ENV", None)
        env.update(task.env)
        for cache in task.caches:
            path = self.options.cache_dir / cache.name
            path.mkdir(parents=True, exist_ok=True)
            env[cache.env] = str(path)
        # Provisioned tools' directories first, so scripts that call `pnpm` find the pin.
        extra = [
            str(Path(head[0]).parent)
            for name, head in self.tools.executables.items()
            if name != "wormhole-ci" and Path(head[0]).is_absolute()
        ]
        env["PATH"] = os.pathsep.join([*dict.fromkeys(extra), env.get("PATH", "")])
        return env

    def _load_timings(self) -> dict[str, float]:
        try:
            raw: object = json.loads(self._timings_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: float(v) for k, v in (as_dict(raw) or {}).items() if isinstance(v, (int, float))}

    def _save_timings(self, timings: dict[str, float], report: RunReport) -> None:
        for result in report.results:
            if result.status is Status.PASSED:
                timings[f"{result.service}:{result.task}"] = round(result.duration, 3)
        try:
            self._timings_path.parent.mkdir(parents=True, exist_ok=True)
            self._timings_path.write_text(json.dumps(timings, sort_keys=True), encoding="utf-8")
        except OSError:
            pass  # timings only order the next run; losing them is harmless


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
