"""The native executor: a plan's tasks as host subprocesses (slots, result reuse, logs, timeouts)."""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import anyio.to_thread

from wormhole_ci.check import DEFAULT_TASK_TIMEOUT, explain
from wormhole_ci.check.explain import KeyInputs, Record, RunRecords
from wormhole_ci.check.scheduler import Ran, Reporter, schedule
from wormhole_ci.check.taskcache import (
    CachedPass,
    ResultCache,
    input_manifest,
    manifest_digest,
    task_key,
)
from wormhole_ci.jsonish import as_dict
from wormhole_ci.plan import Plan, ServicePlan, Task
from wormhole_ci.results import Explanation, RunReport, Status, TaskResult, tail_of
from wormhole_ci.toolchains import HostTools, Provisioner

# Expected duration of a task never timed before: only orders the first run.
_UNKNOWN_TASK_SECONDS = 5.0


@dataclass(frozen=True)
class NativeOptions:
    """Where the native runtime keeps logs and caches, and how much it runs at once."""

    source: Path
    log_dir: Path
    cache_dir: Path
    jobs: int
    task_timeout: float = DEFAULT_TASK_TIMEOUT
    reuse: bool = True
    """Reuse passed results whose inputs are unchanged (see taskcache)."""
    toolchain: str = ""
    """Host toolchain fingerprint (e.g. Node and Python versions), part of cache keys."""


class PrioritySlots:
    """At most `size` holders; a freed slot goes to the waiter with the highest priority.

    The runtime gives priority to the service with the most expected work left, which
    keeps the longest chain moving (critical-path-first list scheduling). A holder that
    has another task to run keeps its slot unless a waiter has more work left
    (`reacquire`), so the critical chain is not overtaken merely by asking first.
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: list[tuple[float, int, int, anyio.Event]] = []
        self._counter = 0

    def open(self, size: int) -> None:
        """Add `size` slots, handing them to the highest-priority waiters first."""
        for _ in range(size):
            self.release()

    async def acquire(self, priority: float, rank: int = 0) -> None:
        """Take a slot, waiting behind waiters of higher priority (ties: lower rank first)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        await self._wait(priority, rank)

    async def reacquire(self, priority: float, rank: int = 0) -> None:
        """Keep the slot already held, unless a waiter has a higher priority."""
        if self._waiters and -self._waiters[0][0] > priority:
            self.release()
            await self._wait(priority, rank)

    def release(self) -> None:
        """Give the slot to the highest-priority waiter, or free it."""
        if self._waiters:
            heapq.heappop(self._waiters)[-1].set()  # hand the slot over directly
        else:
            self._free += 1

    @contextlib.asynccontextmanager
    async def hold(self, priority: float) -> AsyncGenerator[None]:
        """Hold one slot for the duration of the block."""
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    async def _wait(self, priority: float, rank: int) -> None:
        event = anyio.Event()
        entry = (-priority, rank, self._counter, event)
        self._counter += 1
        heapq.heappush(self._waiters, entry)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # the slot was already handed to us: pass it on
            else:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            raise


class _Chain:
    """One service's progress through its tasks: the slot it holds, whether it ran anything."""

    def __init__(self, service: ServicePlan, slots: PrioritySlots, rank: int) -> None:
        self.service = service
        self.slots = slots
        self.rank = rank
        """The service's position in the plan: breaks ties between equal priorities."""
        self.holding = False
        self.executed = False
        """Once a task of the service ran, the rest run too (their inputs may have changed)."""
        self.ran = ""
        """The first task of the service that ran (what `--explain` blames for the rest)."""

    async def acquire(self, priority: float) -> None:
        if self.holding:
            await self.slots.reacquire(priority, self.rank)
        else:
            await self.slots.acquire(priority, self.rank)
            self.holding = True

    def release(self) -> None:
        if self.holding:
            self.slots.release()
            self.holding = False


class NativeExecutor:
    """Runs plan tasks as host subprocesses, at most `jobs` at once (a scheduler.Executor).

    The scheduler runs a service's tasks one after another (they share a working tree);
    here a task is reused when it passed before with identical inputs, else it waits for
    a job slot, given by priority to the service with the most expected work left.
    """

    concurrent_checks = False

    def __init__(self, options: NativeOptions, tools: HostTools) -> None:
        self.options = options
        self.tools = tools
        self._timings_path = options.cache_dir / "timings.json"
        self._results = ResultCache(options.cache_dir / "results")
        self._records = RunRecords(options.cache_dir / "explain", options.source)
        self._timings: dict[str, float] = {}
        # Input manifests per input-path set, hashed once per run (tasks do not edit inputs).
        self._manifests: dict[tuple[str, ...], tuple[dict[str, str], str]] = {}
        # Closed until every service has asked for its first slot, so the first slots go
        # by priority too rather than by which coroutine happened to run first.
        self._slots = PrioritySlots(0)

    async def execute(self, plan: Plan, reporter: Reporter) -> RunReport:
        """Run every task and return all results in plan order."""
        self._slots = PrioritySlots(0)
        timings = self._timings = self._load_timings()
        report = await schedule(plan, self, reporter)
        self._save_timings(timings, report)
        return report

    # -- scheduler.Executor -------------------------------------------------------------

    def begin(self, service: ServicePlan, rank: int) -> _Chain:
        return _Chain(service, self._slots, rank)

    async def ready(self) -> None:
        await anyio.wait_all_tasks_blocked()
        self._slots.open(max(1, self.options.jobs))

    async def run(self, task: Task, state: _Chain, reporter: Reporter) -> Ran[_Chain]:
        """Reuse an earlier pass of `task` when allowed, else run it in a slot."""
        key, inputs = await self._key(task)
        reused = None if state.executed else self._reusable(task, key)
        last = self._records.get(task) if inputs is not None else None
        if reused is not None:
            if key is not None and inputs is not None and (last is None or last.key != key):
                self._records.put(task, Record(key, True, inputs))
            return Ran(replace(reused, explanation=Explanation(True)), state)
        why = self._why(task, key, inputs, last, state)
        tasks = state.service.tasks
        await state.acquire(sum(self._expected(t) for t in tasks[tasks.index(task) :]))
        reporter.started(task)
        result = await self._run_task(task)
        state.executed = True
        state.ran = state.ran or task.key
        passed = result.status is Status.PASSED
        if key is not None and passed:
            self._results.put(key, CachedPass(result.duration, result.tail))
        if key is not None and inputs is not None:
            self._records.put(task, Record(key, passed, inputs))
        return Ran(replace(result, explanation=why), state)

    def waiting(self, state: _Chain) -> None:
        state.release()

    def end(self, state: _Chain) -> None:
        state.release()

    # -- running one task -----------------------------------------------------------------

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

    def _expected(self, task: Task) -> float:
        return self._timings.get(task.key, _UNKNOWN_TASK_SECONDS)

    async def _key(self, task: Task) -> tuple[str | None, KeyInputs | None]:
        """The task's result-cache key and what it was computed from (None: reuse is off)."""
        if not self.options.reuse:
            return None, None
        paths = task.inputs or (task.workdir,)
        if paths not in self._manifests:
            files = await anyio.to_thread.run_sync(input_manifest, self.options.source, paths)
            self._manifests[paths] = (files, manifest_digest(files))
        files, digest = self._manifests[paths]
        inputs = explain.key_inputs(task, files, self.options.toolchain)
        return task_key(task, digest, self.options.toolchain), inputs

    def _why(
        self,
        task: Task,
        key: str | None,
        inputs: KeyInputs | None,
        last: Record | None,
        state: _Chain,
    ) -> Explanation:
        """Why `task` is not reused: the first input that differs from its last run, else
        what else stopped the reuse."""
        if key is None or inputs is None:
            return Explanation(False, explain.CACHE_OFF, "--no-cache")
        if last is None:
            return Explanation(False, explain.NO_EARLIER_RUN)
        changed = explain.first_difference(last.inputs, inputs, task)
        return changed or self._why_unchanged(task, key, last, state)

    def _why_unchanged(self, task: Task, key: str, last: Record, state: _Chain) -> Explanation:
        """Why `task` is not reused though its inputs are those of its last run."""
        if state.executed:
            return Explanation(False, explain.EARLIER_TASK_RAN, state.ran)
        if last.key == key and not last.passed:
            return Explanation(False, explain.LAST_RUN_FAILED)
        if self._results.get(key) is not None:
            missing = [
                o for o in task.outputs if not (self.options.source / task.workdir / o).exists()
            ]
            return Explanation(False, explain.OUTPUTS_MISSING, ", ".join(missing))
        return Explanation(False, explain.NOT_STORED)

    def _reusable(self, task: Task, key: str | None) -> TaskResult | None:
        """An earlier pass of `task` with the same key and its outputs present, or None."""
        hit = self._results.get(key) if key else None
        workdir = self.options.source / task.workdir
        if hit is None or not all((workdir / o).exists() for o in task.outputs):
            return None
        tail = f"passed earlier in {hit.duration:.1f}s with identical inputs (--no-cache reruns)"
        return TaskResult(task.service, task.name, Status.PASSED, 0.0, 0, tail, None, cached=True)

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
            if result.status is Status.PASSED and not result.cached:
                timings[f"{result.service}:{result.task}"] = round(result.duration, 3)
        try:
            self._timings_path.parent.mkdir(parents=True, exist_ok=True)
            self._timings_path.write_text(json.dumps(timings, sort_keys=True), encoding="utf-8")
        except OSError:
            pass  # timings only order the next run; losing them is harmless


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def run_plan(
    plan: Plan, options: NativeOptions, reporter: Reporter, say: Callable[[str], None]
) -> RunReport:
    """Provision the plan's tools under `options.cache_dir`, then run it natively.

    `say` receives the provisioner's messages (what was installed); a tool that cannot
    be provisioned raises ProvisionError naming the services that need it.
    """
    provisioner = Provisioner(options.cache_dir)
    needs: dict[str, list[str]] = {}
    for task in plan.tasks:
        needs.setdefault(task.tool.value, []).append(task.service)
    tools = provisioner.provision(((t.tool.value, t.tool_version) for t in plan.tasks), needs)
    for message in provisioner.messages:
        say(message)
    return anyio.run(NativeExecutor(options, tools).execute, plan, reporter)
