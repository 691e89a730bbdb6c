"""The release state machine, written once: refuse while Coolify is busy, then each gate in
order, stopping at the first red one; both runtimes supply only the steps' executors."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio.to_thread

from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.deploy.rollout import DeployFailed, DeployOptions, deploy_environment
from wormhole_ci.errors import CoolifyError, WormholeCiError
from wormhole_ci.hasura.apply import HasuraApplyFailed
from wormhole_ci.hasura.environment import HasuraRun, apply_environment
from wormhole_ci.manifest import Environment
from wormhole_ci.notify.release import ReleaseStatus
from wormhole_ci.observability.push import Command, Pushgateway, RunSignal, push_signals
from wormhole_ci.release.record import STEPS, ReleaseOutcome, ReleaseRecord
from wormhole_ci.secretref import redact

Say = Callable[[str], None]


class ReleaseSteps(Protocol):
    """How a runtime checks, builds, scans, publishes and migrates. Each step fills its part
    of the record and returns a one-line detail, or raises `WormholeCiError` (a red gate);
    engine errors are the executor's to turn into one."""

    async def check(self, record: ReleaseRecord) -> str: ...

    async def build(self, record: ReleaseRecord) -> str: ...

    async def scan(self, record: ReleaseRecord) -> str: ...

    async def publish(self, record: ReleaseRecord) -> str: ...

    async def migrate(self, record: ReleaseRecord) -> str: ...


@dataclass(frozen=True)
class Rollout:
    """How the deploy step runs (it is the same in both runtimes: Coolify's API over HTTP)."""

    sha: str
    image_tag: str
    rollback: bool = True
    poll_interval: float = 2.0


@dataclass
class ReleaseMachine:
    """Runs one release of `env`: `run` always returns the record (never raises for a red
    gate); `save` is called after every change so a crash still leaves the last state."""

    env: Environment
    steps: ReleaseSteps
    coolify: Coolify
    rollout: Rollout
    say: Say
    save: Callable[[ReleaseRecord], None]
    hidden: tuple[str, ...] = ()
    """Secret values, redacted from every detail."""
    hasura: HasuraRun | None = None
    """The environment's Hasura engine; None when it has none (the step is skipped)."""
    pushgateway: Pushgateway | None = None
    """Where the run's outcome is pushed at the end ([observability]); None: nowhere."""
    status: ReleaseStatus | None = None
    """The GitHub Deployment and [notify] webhook; None: no status is reported anywhere."""
    _deployed: str = field(default="", init=False)
    """How the deploy step ended (its rollout's outcome), once it ran."""

    async def run(self, record: ReleaseRecord) -> ReleaseRecord:
        """The release between its GitHub deployment statuses, then its signals pushed and
        its outcome announced (best-effort: never changes the record)."""
        started = time.monotonic()
        status = self.status
        if status is not None:  # best-effort, like the push: a GitHub outage never stops this
            await anyio.to_thread.run_sync(lambda: status.started(record))
        record = await self._run(record)
        if status is not None:
            await anyio.to_thread.run_sync(lambda: status.finished(record))
            status.close()
        if self.pushgateway is not None:
            signals = release_signals(record, self._deployed, time.monotonic() - started)
            gateway = self.pushgateway
            await anyio.to_thread.run_sync(lambda: push_signals(gateway, signals, self.say))
        return record

    async def _run(self, record: ReleaseRecord) -> ReleaseRecord:
        refused = await self._busy()
        if refused:
            record.outcome, record.refused = ReleaseOutcome.REFUSED, redact(refused, *self.hidden)
            for step in record.steps:
                step.status = "skipped"
            self.save(record)
            return record
        gates: dict[str, Callable[[ReleaseRecord], Awaitable[str]]] = {
            "check": self.steps.check,
            "build": self.steps.build,
            "scan": self.steps.scan,
            "publish": self.steps.publish,
            "migrate": self.steps.migrate,
            "hasura": self._hasura,
            "deploy": self._deploy,
        }
        for name, gate in gates.items():
            entry = record.step(name)
            if name == "hasura" and self.hasura is None:
                entry.status = "skipped"
                entry.detail = f"no [environments.{self.env.name}.hasura] in wormhole-ci.toml"
                continue
            self.say(f"== {name}")
            started = time.monotonic()
            try:
                entry.detail = redact(await gate(record), *self.hidden)
                entry.status = "passed"
            except WormholeCiError as exc:
                entry.status, entry.detail = "failed", redact(str(exc), *self.hidden)
                record.outcome, record.stopped_at = ReleaseOutcome.STOPPED, name
                for later in STEPS[STEPS.index(name) + 1 :]:
                    record.step(later).status = "skipped"
                return record
            finally:
                entry.seconds = round(time.monotonic() - started, 2)
                self.save(record)
        record.outcome = ReleaseOutcome.RELEASED
        self.save(record)
        return record

    async def _busy(self) -> str | None:
        """One release per environment: nothing starts while Coolify deploys these apps."""
        apps = [t.application for t in self.env.targets if t.application]
        try:
            busy = await anyio.to_thread.run_sync(self.coolify.busy, apps)
        except CoolifyError as exc:
            return f"release {self.env.name}: asking Coolify whether it is deploying failed: {exc}"
        if not busy:
            return None
        return (
            f"release {self.env.name}: a Coolify deployment is in progress for "
            f"{', '.join(busy)}; another release is running. Nothing was done: wait for it "
            "(or cancel it in Coolify) and run again"
        )

    async def _hasura(self, record: ReleaseRecord) -> str:
        """After the migration (new columns exist), before the deploy (new code may query
        them): the same HTTP calls from either runtime."""
        run = self.hasura
        if run is None:  # the loop skips the step; kept for the type checker
            return "skipped"
        say = self.say
        try:
            result = await anyio.to_thread.run_sync(
                lambda: apply_environment(
                    run,
                    coolify=self.coolify,
                    say=say,
                    deploy_timeout=self.env.deploy_timeout,
                    health_timeout=self.env.verify_timeout,
                )
            )
        except HasuraApplyFailed as exc:
            record.hasura = exc.result.to_dict()
            raise
        record.hasura = result.to_dict()
        return f"{result.outcome} on {run.target.url}: {result.detail}"

    async def _deploy(self, record: ReleaseRecord) -> str:
        options = DeployOptions.for_environment(
            self.env,
            sha=self.rollout.sha,
            image_tag=self.rollout.image_tag,
            rollback=self.rollout.rollback,
            poll_interval=self.rollout.poll_interval,
        )
        say = self.say
        try:
            result = await anyio.to_thread.run_sync(
                lambda: deploy_environment(self.env, self.coolify, options, say)
            )
        except DeployFailed as exc:
            record.deployments, self._deployed = exc.result.services, exc.result.outcome
            # The step's detail starts with how the deploy ended (rolled-back, refused, …).
            raise DeployFailed(f"deploy {exc.result.outcome}: {exc}", exc.result) from None
        record.deployments, self._deployed = result.services, result.outcome
        return f"{result.outcome}: " + ", ".join(
            f"{s.service} {s.deployment}" for s in result.services
        )


def release_signals(record: ReleaseRecord, deployed: str, seconds: float) -> list[RunSignal]:
    """What a release pushes: its own run, and the migrate and deploy steps it ran as runs of
    those commands (the same groups `wormhole-ci migrate|deploy` push to), so repeated
    migration or deploy failures show whichever way they ran."""
    short = record.sha[:7]
    signals = [
        RunSignal(
            Command.RELEASE,
            record.environment,
            str(record.outcome),
            record.outcome is ReleaseOutcome.RELEASED,
            short,
            round(seconds, 2),
        )
    ]
    migrate, deploy = record.step("migrate"), record.step("deploy")
    if migrate.status in ("passed", "failed"):
        outcome = record.migrations.get("outcome")
        signals.append(
            RunSignal(
                Command.MIGRATE,
                record.environment,
                outcome if isinstance(outcome, str) and outcome else migrate.status,
                migrate.status == "passed",
                short,
                migrate.seconds,
            )
        )
    if deploy.status in ("passed", "failed"):
        signals.append(
            RunSignal(
                Command.DEPLOY,
                record.environment,
                deployed or deploy.status,
                deploy.status == "passed",
                short,
                deploy.seconds,
            )
        )
    return signals
