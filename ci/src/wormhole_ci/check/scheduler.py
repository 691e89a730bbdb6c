"""The per-service scheduler, written once for both runtimes (no Dagger runtime required).

It decides what runs and when: a service's tasks in plan order, a failed setup task
blocking the rest of its service, `Task.after` dependencies across services awaited (a
dependency that did not pass blocks the task), services concurrently, every task
reported, siblings never cancelled. An `Executor` only runs one task: the native one as
a host subprocess, the Dagger one as an exec on the service's container chain.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import anyio

from wormhole_ci.plan import Plan, ServicePlan, Task
from wormhole_ci.results import RunReport, Status, TaskResult, blocked_reason

S = TypeVar("S")


class Reporter(Protocol):
    """Receives progress; implementations print lines or drive a live display."""

    def started(self, task: Task) -> None: ...

    def finished(self, result: TaskResult) -> None: ...


class Silent:
    """A reporter that reports nothing (the Dagger engine shows progress itself)."""

    def started(self, task: Task) -> None:
        pass

    def finished(self, result: TaskResult) -> None:
        pass


@dataclass(frozen=True)
class Ran(Generic[S]):
    """One task's result, and the state the service's later tasks continue from."""

    result: TaskResult
    state: S
    """Used only when the task is a setup task that passed (e.g. the container after its
    exec); otherwise later tasks keep the state they had."""


class Executor(Protocol[S]):
    """Runs single tasks for the scheduler; `S` is its per-service state.

    The native executor's state is the service's claim on a job slot; the Dagger
    executor's is the service's container, which each passed setup exec extends.
    """

    @property
    def concurrent_checks(self) -> bool:
        """Whether a service's checks run side by side, each from the state its setup
        left (Dagger: branches of one container), or one after another (native: they
        share a working tree and job slots)."""
        ...

    def begin(self, service: ServicePlan, rank: int) -> S:
        """The state of `service` before its first task; `rank` is its place in the plan."""
        ...

    async def ready(self) -> None:
        """Every service has begun (the native executor opens its job slots here)."""
        ...

    async def run(self, task: Task, state: S, reporter: Reporter) -> Ran[S]:
        """Run `task` from `state`, calling `reporter.started` when it really starts.

        A task's failure is a result, never an exception.
        """
        ...

    def waiting(self, state: S) -> None:
        """The service is about to wait for another service's task (release what it holds)."""
        ...

    def end(self, state: S) -> None:
        """The service has no task left."""
        ...


async def schedule(plan: Plan, executor: Executor[S], reporter: Reporter) -> RunReport:
    """Run every task of `plan` with `executor`; all results in plan order."""
    started = time.monotonic()
    run = _Run(executor, reporter, {t.key: anyio.Event() for t in plan.tasks})
    async with anyio.create_task_group() as group:
        for rank, service in enumerate(plan.services):
            group.start_soon(run.service, service, executor.begin(service, rank))
        await executor.ready()
    return RunReport(
        results=tuple(run.results[t.key] for t in plan.tasks),
        wall_time=time.monotonic() - started,
    )


class _Run(Generic[S]):
    """One plan's run: every task's result, and an event per task for `after`."""

    def __init__(
        self, executor: Executor[S], reporter: Reporter, done: Mapping[str, anyio.Event]
    ) -> None:
        self.executor = executor
        self.reporter = reporter
        self.done = done
        self.results: dict[str, TaskResult] = {}

    async def service(self, service: ServicePlan, state: S) -> None:
        """Setup tasks in order; checks in order too, or side by side when the executor can."""
        setup_failed: list[str] = []

        async def one(task: Task) -> None:
            nonlocal state
            if task.after:
                # never sit on a resource (a job slot) while waiting for another service
                self.executor.waiting(state)
            for dep in task.after:
                await self.done[dep].wait()
            blockers = setup_failed + [
                dep for dep in task.after if self.results[dep].status is not Status.PASSED
            ]
            if blockers:
                result = TaskResult(
                    task.service, task.name, Status.BLOCKED, tail=blocked_reason(blockers)
                )
            else:
                ran = await self.executor.run(task, state, self.reporter)
                result = ran.result
                if task.is_setup and result.status is Status.PASSED:
                    state = ran.state
            self.results[task.key] = result
            self.done[task.key].set()
            self.reporter.finished(result)
            if task.is_setup and result.status is not Status.PASSED:
                setup_failed.append(task.key)

        try:
            # A check started side by side runs from the state of every setup task before
            # it (the planner puts setup tasks first).
            async with anyio.create_task_group() as checks:
                for task in service.tasks:
                    if self.executor.concurrent_checks and not task.is_setup:
                        checks.start_soon(one, task)
                    else:
                        await one(task)
        finally:
            self.executor.end(state)
