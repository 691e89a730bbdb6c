"""Open and close one PR's preview, written once over `PreviewSteps` (native or Dagger).

Open: publish `pr-N-<sha7>` → create (or reuse) the PR database → migrate it → under the
preview lock, set each app's preview database URL and deploy the PR with that tag → verify
every preview URL reports the SHA. A failure undoes what this run created (the database on a
first open, the variables it created, the previews it started) and says so. Close: delete
each app's preview, then drop the database. Around both, the optional GitHub reports
(notify/preview.py): the PR's transient Deployment and the comment's previews section.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

import anyio
import httpx

from wormhole_ci.deploy.coolify import NotAllQueued
from wormhole_ci.deploy.rollout import reported_version
from wormhole_ci.errors import CoolifyError, WormholeCiError
from wormhole_ci.manifest import Environment, PreviewTarget
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.preview.coolify import EnvSet, PreviewCoolify
from wormhole_ci.preview.database import PreviewDatabases, database_name
from wormhole_ci.preview.errors import PreviewError

if TYPE_CHECKING:
    from wormhole_ci.notify.preview import PreviewStatus

Say = Callable[[str], None]


class PreviewSteps(Protocol):
    """What differs between runtimes: pushing the images and running the migrate job."""

    async def publish(self, tag: str) -> str:
        """Build and push every image tagged `tag` only; a one-line summary."""
        ...

    async def migrate(self, url: DatabaseUrl) -> str:
        """Run the release's migrate job against the PR database; a one-line summary."""
        ...


@dataclass
class PreviewService:
    service: str
    application: str
    url: str
    """The preview's /healthz (the manifest's template with the PR number)."""
    status: str = "pending"
    """pending | deployed | verified | failed | deleted | absent"""


@dataclass
class PreviewRecord:
    pr: int
    sha: str
    action: str
    """open | close"""
    tag: str = ""
    database: str = ""
    database_created: bool = False
    outcome: str = "running"
    """verified | failed | closed"""
    services: list[PreviewService] = field(default_factory=list[PreviewService])
    undone: list[str] = field(default_factory=list[str])
    """What a failed open removed again."""
    deploy_requested: bool = False
    """The deploy was sent to Coolify (from then on a preview may exist)."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PreviewTiming:
    deploy_timeout: float = 900.0
    verify_timeout: float = 300.0
    poll_interval: float = 2.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def preview_tag(pr: int, sha: str) -> str:
    """`pr-<N>-<sha7>`: never a bare SHA, so a preview can never shadow a release tag."""
    if isinstance(pr, bool) or pr <= 0:
        raise PreviewError(f"preview: --pr must be a positive pull request number (got {pr!r})")
    if len(sha) < 7 or any(c not in "0123456789abcdef" for c in sha):
        raise PreviewError(f"preview: {sha!r} is not a commit SHA (40 hex digits)")
    return f"pr-{pr}-{sha[:7]}"


def preview_of(env: Environment) -> PreviewTarget:
    if env.preview is None:
        raise PreviewError(
            f"wormhole-ci.toml: environment {env.name} has no [environments.{env.name}.preview] "
            "table; add one (database_url and services.<name>.health_url, docs/preview.md)"
        )
    return env.preview


def _services(env: Environment, pr: int) -> list[PreviewService]:
    target = preview_of(env)
    apps = {t.service: t.application for t in env.targets if t.application}
    return [
        PreviewService(service, apps[service], template.replace("{pr}", str(pr)))
        for service, template in target.services.items()
    ]


class PreviewRun:
    """One open or close of one PR's preview."""

    def __init__(
        self,
        *,
        project: str,
        env: Environment,
        coolify: PreviewCoolify,
        databases: PreviewDatabases,
        say: Say,
        health: httpx.Client,
        timing: PreviewTiming | None = None,
        status: PreviewStatus | None = None,
    ) -> None:
        self.project, self.env, self.coolify, self.databases = project, env, coolify, databases
        self.say, self.health = say, health
        self.status = status
        """GitHub's reports (None: GitHub is not configured); they never raise."""
        self.timing = timing or PreviewTiming(
            deploy_timeout=env.deploy_timeout, verify_timeout=env.verify_timeout
        )

    async def open(self, pr: int, sha: str, steps: PreviewSteps) -> PreviewRecord:
        """Publish, create/migrate the database, deploy and verify; undo this run's creations
        on failure (and raise PreviewError with the record on `.record`)."""
        record = PreviewRecord(pr=pr, sha=sha, action="open", tag=preview_tag(pr, sha))
        record.database = database_name(self.project, pr)
        record.services = _services(self.env, pr)
        await self._report(lambda status: status.opening(record))
        try:
            await self._open(record, steps)
        except Exception:
            if record.outcome == "running":  # it stopped before the database (the publish)
                record.outcome = "failed"
            await self._report(lambda status: status.finished(record))
            raise
        await self._report(lambda status: status.finished(record))
        return record

    async def _open(self, record: PreviewRecord, steps: PreviewSteps) -> None:
        target, pr = preview_of(self.env), record.pr
        self.say(f"preview PR {pr}: publishing images tagged {record.tag}")
        self.say(f"preview PR {pr}: published {await steps.publish(record.tag)}")
        created_envs: list[EnvSet] = []
        try:
            record.database_created = await anyio.to_thread.run_sync(
                self.databases.create, record.database
            )
            url = self.databases.url(record.database)
            self.say(
                f"preview PR {pr}: database {url.display} "
                + ("created" if record.database_created else "exists (reused)")
            )
            self.say(f"preview PR {pr}: migrate {await steps.migrate(url)}")
            await anyio.to_thread.run_sync(
                lambda: self._deploy(record, target.database_env, url, created_envs)
            )
            await anyio.to_thread.run_sync(lambda: self._verify(record))
        except WormholeCiError as exc:
            record.outcome = "failed"
            await anyio.to_thread.run_sync(lambda: self._undo(record, created_envs))
            undone = "; undone: " + ", ".join(record.undone) if record.undone else ""
            kept = (
                f"; kept the existing database {record.database} and previews"
                if not record.database_created
                else ""
            )
            raise PreviewFailed(
                f"preview PR {pr} failed: {exc}{undone}{kept}; re-run the same command once "
                "the cause is fixed",
                record,
            ) from None
        record.outcome = "verified"

    async def close(self, pr: int, sha: str) -> PreviewRecord:
        """Delete every app's preview of `pr`, then drop its database (idempotent)."""
        record = PreviewRecord(pr=pr, sha=sha, action="close")
        record.database = database_name(self.project, pr)
        record.services = _services(self.env, pr)
        try:
            await anyio.to_thread.run_sync(lambda: self._close(record))
        except Exception:
            record.outcome = "failed"
            await self._report(lambda status: status.closed(record))
            raise
        await self._report(lambda status: status.closed(record))
        return record

    async def _report(self, call: Callable[[PreviewStatus], None]) -> None:
        """One GitHub report, in a worker thread (the client blocks); it never raises."""
        status = self.status
        if status is not None:
            await anyio.to_thread.run_sync(lambda: call(status))

    # -- steps (in a worker thread: the Coolify client and psycopg block) -------------------

    def _deploy(
        self, record: PreviewRecord, key: str, url: DatabaseUrl, created: list[EnvSet]
    ) -> None:
        apps = [s.application for s in record.services]
        with self.databases.serialised():
            for service in record.services:
                done = self.coolify.set_preview_env(service.application, key, url.reveal())
                if done.created_uuid:
                    created.append(done)
                self.say(f"preview PR {record.pr}: {service.service}: preview {key} set")
            record.deploy_requested = True
            try:
                deployments = self.coolify.deploy_preview(apps, pr=record.pr, docker_tag=record.tag)
            except NotAllQueued as exc:
                # The ones it did queue run anyway: wait for them so the undo finds them ended.
                self.coolify.wait_all(exc.queued, timeout=self.timing.deploy_timeout)
                raise
            outcomes = self.coolify.wait_all(deployments, timeout=self.timing.deploy_timeout)
        failures: list[str] = []
        by_app = {s.application: s for s in record.services}
        for deployment, outcome in zip(deployments, outcomes, strict=True):
            entry = by_app[deployment.resource_uuid]
            if isinstance(outcome, CoolifyError):
                entry.status = "failed"
                failures.append(f"{entry.service}: {outcome}")
            else:
                entry.status = "deployed"
        if failures:
            raise PreviewError("deployment failed: " + "; ".join(failures))

    def _verify(self, record: PreviewRecord) -> None:
        deadline = self.timing.clock() + self.timing.verify_timeout
        waiting = list(record.services)
        while True:
            for service in list(waiting):
                reported = reported_version(service.url, self.health)
                if reported and len(reported) >= 7 and record.sha.startswith(reported):
                    service.status = "verified"
                    self.say(
                        f"preview PR {record.pr}: {service.service} {service.url} reports {reported[:7]}"
                    )
                    waiting.remove(service)
            remaining = deadline - self.timing.clock()
            if not waiting or remaining <= 0:
                break
            self.timing.sleep(min(self.timing.poll_interval, remaining))
        if waiting:
            for service in waiting:
                service.status = "failed"
            raise PreviewError(
                "not verified within "
                f"{self.timing.verify_timeout:g} s: "
                + ", ".join(f"{s.service} ({s.url})" for s in waiting)
                + f" does not report {record.sha[:7]}; check the preview's logs in Coolify"
            )

    def _undo(self, record: PreviewRecord, created: list[EnvSet]) -> None:
        problems: list[str] = []
        for env_set in created:
            try:
                self.coolify.delete_env(env_set.application, env_set.created_uuid or "")
                record.undone.append(f"preview variable on {env_set.application}")
            except WormholeCiError as exc:
                problems.append(str(exc))
        if record.database_created and record.deploy_requested:
            # A first open: any preview Coolify holds for this PR was started by this run.
            for service in record.services:
                try:
                    if self.coolify.delete_preview(service.application, record.pr):
                        record.undone.append(f"{service.service} preview")
                except WormholeCiError as exc:
                    problems.append(str(exc))
        if record.database_created:
            try:
                self.databases.drop(record.database)
                record.undone.append(f"database {record.database}")
            except WormholeCiError as exc:
                problems.append(str(exc))
        if problems:
            record.undone.append("NOT undone: " + "; ".join(problems))

    def _close(self, record: PreviewRecord) -> None:
        problems: list[str] = []
        for service in record.services:
            try:
                deleted = self.coolify.delete_preview(service.application, record.pr)
            except WormholeCiError as exc:
                problems.append(f"{service.service}: {exc}")
                continue
            service.status = "deleted" if deleted else "absent"
            self.say(
                f"preview PR {record.pr}: {service.service} preview "
                + ("deleted" if deleted else "was already gone")
            )
        if problems:
            record.outcome = "failed"
            raise PreviewFailed(
                f"preview PR {record.pr}: close failed: {'; '.join(problems)}; the database "
                f"{record.database} is kept until every preview is deleted: re-run "
                "`wormhole-ci preview --close`",
                record,
            )
        dropped = self.databases.drop(record.database)
        self.say(
            f"preview PR {record.pr}: database {record.database} "
            + ("dropped" if dropped else "was already gone")
        )
        record.outcome = "closed"


class PreviewFailed(PreviewError):
    """A preview open or close failed; `record` says what ran and what was undone."""

    def __init__(self, message: str, record: PreviewRecord) -> None:
        super().__init__(message)
        self.record = record
