"""The check executor for Dagger: the plan's tasks as containers, on the shared scheduler."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import dagger
from dagger import ReturnType, dag

from wormhole_ci.affected import affected_plan
from wormhole_ci.check.container import ContainerSpec, Exec, service_spec
from wormhole_ci.check.explain import ENGINE_EXPLANATION
from wormhole_ci.check.junit import junit_xml
from wormhole_ci.check.scheduler import Ran, Reporter, Silent, schedule
from wormhole_ci.dagger_runtime.github import GitHubInputs
from wormhole_ci.dagger_runtime.source import DaggerSource, with_exec
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.notify.http import NotifyError
from wormhole_ci.notify.status import post_check_summary
from wormhole_ci.plan import Plan, ServicePlan, Task
from wormhole_ci.results import RunReport, Status, TaskResult, status_lines, summary, tail_of
from wormhole_ci.secretref import redact


class DaggerExecutor:
    """The check executor for Dagger (a scheduler.Executor): one container chain per service.

    Its state is the service's container: each passed setup exec extends it, and the
    checks are independent branches of the set-up container, so they run side by side.
    """

    concurrent_checks = True

    def __init__(self, container: Callable[[ContainerSpec], dagger.Container]) -> None:
        self._container = container
        self._execs: dict[str, Exec] = {}

    def begin(self, service: ServicePlan, rank: int) -> dagger.Container:
        spec = service_spec(service)
        self._execs.update((f"{spec.service}:{ex.task}", ex) for ex in spec.execs)
        return self._container(spec)

    async def ready(self) -> None:
        pass

    async def run(
        self, task: Task, state: dagger.Container, reporter: Reporter
    ) -> Ran[dagger.Container]:
        ex = self._execs[task.key]
        reporter.started(task)
        started = time.monotonic()
        # A setup exec must succeed to be built on; a check's non-zero exit is a result.
        step = with_exec(state, ex, ReturnType.SUCCESS if ex.setup else ReturnType.ANY)
        try:
            if ex.setup:
                await step.sync()
                code, output = 0, ""
            else:
                code = await step.exit_code()
                output = (await step.stdout()) + (await step.stderr())
        except dagger.ExecError as exc:
            failure = _exec_failure(task.service, task.name, exc, time.monotonic() - started)
            return Ran(failure, state)
        except dagger.QueryError as exc:
            duration = time.monotonic() - started
            failure = TaskResult(task.service, task.name, Status.FAILED, duration, None, str(exc))
            return Ran(failure, state)
        status = Status.PASSED if code == 0 else Status.FAILED
        result = TaskResult(
            task.service, task.name, status, time.monotonic() - started, code, tail_of(output)
        )
        return Ran(result, step)

    def waiting(self, state: dagger.Container) -> None:
        pass

    def end(self, state: dagger.Container) -> None:
        pass


def _exec_failure(service: str, task: str, exc: dagger.ExecError, duration: float) -> TaskResult:
    return TaskResult(
        service, task, Status.FAILED, duration, exc.exit_code, tail_of(exc.stdout + exc.stderr)
    )


async def execute(source: DaggerSource, plan: Plan) -> RunReport:
    """Every service's container concurrently, on the scheduler the native runtime uses."""
    return await schedule(plan, DaggerExecutor(source.container), Silent())


@dataclass(frozen=True)
class PrComment:
    """`--pr-comment=N`: the checks section of PR N's comment (N 0: none)."""

    pr: int = 0
    sha: str = ""
    """The commit the comment names (the source Directory has no .git to ask)."""
    github: GitHubInputs = field(default_factory=GitHubInputs)

    async def post(self, command: str, report: RunReport) -> None:
        """Write the summary; every problem is one warning on stderr, never an error."""
        if self.pr <= 0:
            return
        token: str | None = None

        def warn(line: str) -> None:  # progress, shown by `dagger call`
            print(redact(line, token), file=sys.stderr, flush=True)

        try:
            target, token = await self.github.target()
        except NotifyError as exc:
            warn(f"warning: {exc}; the pull request's comment was not updated")
            return
        if target is None:
            warn(f"warning: --pr-comment={self.pr} needs --github-token and --github-repository")
            return
        await anyio.to_thread.run_sync(
            lambda: post_check_summary(
                target, self.pr, sha=self.sha, command=command, report=report, warn=warn
            )
        )


async def run_checks(
    source: DaggerSource,
    what: str,
    service: str | None,
    families: Sequence[str],
    *,
    explain: bool = False,
    comment: PrComment | None = None,
) -> str:
    """`check`, `lint`, `typecheck`, `test`: the status lines, or one error naming every failure.

    `explain` adds what decides reuse in Dagger (the engine, not wormhole-ci's result cache);
    `comment` writes the summary into the PR's comment first (failed or not).
    """
    comment = comment or PrComment()
    changes = await source.changes()
    services = [service] if service else []
    plan = await source.planned(lambda m: affected_plan(m, changes, services, families))
    if not plan.services and changes is not None:
        await comment.post(what, RunReport(results=()))
        return "\n".join([*plan.notes, f"{what}: nothing to run (no service is affected)"])
    if not plan.services:
        raise WormholeCiError(f"{what}: nothing to run for {service or 'any service'}")
    report = await execute(source, plan)
    await comment.post(what, report)
    if not report.ok:
        raise WormholeCiError(summary(report, what))
    lines = status_lines(report, what, plan.notes)
    return "\n".join([*lines, ENGINE_EXPLANATION] if explain else lines)


async def check_report_directory(
    source: DaggerSource, comment: PrComment | None = None
) -> dagger.Directory:
    """`check-report`: junit.xml, check.txt and `status`, whether the checks passed or not
    (and the summary in the PR's comment with `comment`)."""
    changes = await source.changes()
    plan = await source.planned(lambda m: affected_plan(m, changes))
    ran = await execute(source, plan)
    await (comment or PrComment()).post("check", ran)
    text = "\n".join(status_lines(ran, "check", plan.notes))
    if not ran.ok:
        text += "\n\n" + summary(ran, "check")
    return (
        dag.directory()
        .with_new_file("junit.xml", junit_xml(ran, notes=plan.notes))
        .with_new_file("check.txt", text + "\n")
        .with_new_file("status", "passed\n" if ran.ok else "failed\n")
    )
