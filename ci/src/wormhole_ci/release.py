"""`release`: the ordered gates check → build → scan → publish → migrate → deploy (+verify).

It stops at the first red gate and writes the release manifest after every step.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wormhole_ci.check.native import DEFAULT_TASK_TIMEOUT, NativeOptions, run_plan
from wormhole_ci.check.progress import PlainReporter
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.deploy.rollout import DeployFailed, DeployOptions, deploy_environment
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.images.engine import Engine
from wormhole_ci.images.native import (
    BuildOptions,
    BuiltImage,
    Target,
    build_images,
    publish_images,
)
from wormhole_ci.images.spec import Revision, image_specs, reference, tags
from wormhole_ci.manifest import Environment, Manifest
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.migrate.job import MigrateFailed, database_service, run_migrate
from wormhole_ci.migrate.native import prepare_migrate
from wormhole_ci.plan import build_plan
from wormhole_ci.results import summary
from wormhole_ci.secretref import Secret, redact
from wormhole_ci.security.policy import FailOn
from wormhole_ci.security.scan import ScanOptions, run_scan
from wormhole_ci.security.tasks import Family
from wormhole_ci.toolchains import host_fingerprint

STEPS = ("check", "build", "scan", "publish", "migrate", "deploy")
Say = Callable[[str], None]


@dataclass
class StepRecord:
    name: str
    status: str = "pending"
    """pending | passed | failed | skipped"""
    seconds: float = 0.0
    detail: str = ""


@dataclass
class ReleaseManifest:
    """What a release did: written after every step, so a stopped release says where."""

    sha: str
    environment: str
    started: str
    outcome: str = "running"
    """running | released | stopped | dry-run"""
    stopped_at: str | None = None
    steps: list[StepRecord] = field(default_factory=lambda: [StepRecord(s) for s in STEPS])
    images: list[dict[str, object]] = field(default_factory=list[dict[str, object]])
    scan: dict[str, object] = field(default_factory=dict[str, object])
    migrations: dict[str, object] = field(default_factory=dict[str, object])
    deployments: list[dict[str, object]] = field(default_factory=list[dict[str, object]])

    def step(self, name: str) -> StepRecord:
        return next(s for s in self.steps if s.name == name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass(frozen=True)
class ReleaseSecrets:
    coolify_token: Secret
    database_url: Secret
    registry_password: Secret | None

    def values(self) -> tuple[str, ...]:
        out = [self.coolify_token.reveal(), self.database_url.reveal()]
        if self.registry_password:
            out.append(self.registry_password.reveal())
        out.extend(DatabaseUrl.parse(self.database_url.reveal()).secrets)
        return tuple(out)


@dataclass(frozen=True)
class ReleaseOptions:
    revision: Revision
    output: Path
    """The release manifest (JSON)."""
    work_dir: Path
    """Image tarballs, scan reports, backups, logs of this release."""
    cache_dir: Path
    jobs: int = 2
    build_args: tuple[tuple[str, str], ...] = ()
    allow_unavailable_scanners: bool = False
    allow_destructive: bool = False
    rollback: bool = True
    lock_timeout: float = 600.0
    poll_interval: float = 2.0


def environment_secrets(env: Environment, environ: dict[str, str] | None = None) -> ReleaseSecrets:
    """The environment's secrets from the variables the manifest names; a clear error per
    missing one (its name only, never a value)."""
    source = os.environ if environ is None else environ
    missing = [f"{role} (${var})" for role, var in env.secrets.items() if not source.get(var)]
    if missing:
        raise WormholeCiError(
            f"release {env.name}: missing secrets: {', '.join(missing)}; set these environment "
            "variables (GitHub Actions: environment secrets mapped into the step's env)"
        )

    def secret(role: str) -> Secret:
        var = env.secrets[role]
        return Secret(f"env:{var}", source[var])

    DatabaseUrl.parse(source[env.secrets["database_url"]])  # a malformed URL fails here, unprinted
    return ReleaseSecrets(
        coolify_token=secret("coolify_token"),
        database_url=secret("database_url"),
        registry_password=secret("registry_password")
        if "registry_password" in env.secrets
        else None,
    )


def dry_run(
    manifest: Manifest, env: Environment, rev: Revision, secrets: ReleaseSecrets | None
) -> list[str]:
    """Every step with its targets; reads local files only (no network, no change)."""
    specs = image_specs(manifest)
    plan = build_plan(manifest)
    db_service = database_service(manifest, None)
    database = "(unknown: $" + env.secrets["database_url"] + " not set)"
    if secrets is not None:
        database = DatabaseUrl.parse(secrets.database_url.reveal()).display
    return [
        f"release {rev.short} to {env.name} (dry run: nothing is built, pushed, migrated or deployed)",
        f"1. check    {len(plan.tasks)} tasks: " + ", ".join(s.service for s in plan.services),
        "2. build    " + ", ".join(f"{s.repository}:{rev.short}" for s in specs),
        "3. scan     sast, audit, sbom, and a CVE scan of each image",
        "4. publish  "
        + ", ".join(reference(env.registry, s, t) for s in specs for t in tags(rev, None)),
        f"5. migrate  {db_service.name}'s pending Prisma migrations on {database} (backup first)",
        f"6. deploy   Coolify {env.coolify_url}: "
        + ", ".join(
            f"{t.service} -> {'application ' + t.application if t.application else 'tag ' + (t.tag or '')}"
            for t in env.targets
        ),
        "   verify   "
        + ", ".join(f"{t.service} {t.health_url} reports {rev.short}" for t in env.targets),
    ]


class Release:
    """The ordered state machine; `run` stops at the first failed step."""

    def __init__(
        self,
        manifest: Manifest,
        env: Environment,
        engine: Engine,
        secrets: ReleaseSecrets,
        *,
        options: ReleaseOptions,
        say: Say,
        coolify: Coolify | None = None,
    ) -> None:
        self.manifest, self.env, self.engine = manifest, env, engine
        self.secrets, self.options = secrets, options
        self._say = say
        self.coolify = coolify or Coolify(
            env.coolify_url, secrets.coolify_token.reveal(), poll_interval=options.poll_interval
        )
        self.record = ReleaseManifest(
            sha=options.revision.sha,
            environment=env.name,
            started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.specs = image_specs(manifest)
        # every secret value, once: redaction runs on each line said, not a URL parse each time
        self._hidden = secrets.values()
        self.built: list[BuiltImage] = []

    def say(self, line: str) -> None:
        self._say(redact(line, *self._hidden))

    def run(self) -> ReleaseManifest:
        steps: dict[str, Callable[[], str]] = {
            "check": self._check,
            "build": self._build,
            "scan": self._scan,
            "publish": self._publish,
            "migrate": self._migrate,
            "deploy": self._deploy,
        }
        # One release per environment: nothing starts while Coolify is deploying these apps.
        busy = self.coolify.busy([t.application for t in self.env.targets if t.application])
        if busy:
            raise WormholeCiError(
                f"release {self.env.name}: a Coolify deployment is in progress for "
                f"{', '.join(busy)}; another release is running. Nothing was done."
            )
        for name, step in steps.items():
            record = self.record.step(name)
            self.say(f"== {name}")
            started = time.monotonic()
            try:
                record.detail = step()
                record.status = "passed"
            except WormholeCiError as exc:
                record.status = "failed"
                record.detail = redact(str(exc), *self._hidden)
                self.record.outcome = "stopped"
                self.record.stopped_at = name
                for later in STEPS[STEPS.index(name) + 1 :]:
                    self.record.step(later).status = "skipped"
                raise ReleaseStopped(name, record.detail, self.record) from None
            finally:
                record.seconds = round(time.monotonic() - started, 2)
                self._write()
        self.record.outcome = "released"
        self._write()
        return self.record

    def _write(self) -> None:
        self.options.output.parent.mkdir(parents=True, exist_ok=True)
        self.options.output.write_text(
            redact(self.record.to_json(), *self._hidden) + "\n", encoding="utf-8"
        )

    # -- steps -------------------------------------------------------------------------------

    def _check(self) -> str:
        options = NativeOptions(
            source=self.manifest.root,
            log_dir=self.options.work_dir / "logs",
            cache_dir=self.options.cache_dir,
            jobs=self.options.jobs,
            task_timeout=DEFAULT_TASK_TIMEOUT,
            reuse=True,
            toolchain=host_fingerprint(),
        )
        report = run_plan(build_plan(self.manifest), options, PlainReporter(sys.stderr), self.say)
        if not report.ok:
            raise WormholeCiError(summary(report, "check"))
        return f"{len(report.results)} tasks passed"

    def _build_options(self) -> BuildOptions:
        return BuildOptions(
            revision=self.options.revision,
            extra_args=self.options.build_args,
            log_dir=self.options.work_dir / "logs",
            save_dir=self.options.work_dir / "images",
            jobs=self.options.jobs,
        )

    def _build(self) -> str:
        built = build_images(
            self.manifest, self.specs, self.engine, self._build_options(), self.say
        )
        self.built = list(built)
        self.record.images = [
            {"service": b.service, "name": b.name, "config_digest": b.config_digest, "size": b.size}
            for b in built
        ]
        return ", ".join(b.name for b in built)

    def _scan(self) -> str:
        images = tuple((b.service, Path(b.tarball)) for b in self.built if b.tarball)
        result = run_scan(
            self.manifest,
            ScanOptions(
                fail_on=FailOn(self.manifest.security.fail_on),
                allow_unavailable=self.options.allow_unavailable_scanners,
                output_dir=self.options.work_dir / "scan",
                families=frozenset(Family),
                jobs=self.options.jobs,
                cache_dir=self.options.cache_dir,
                today=dt.date.today(),
                images=images,
            ),
        )
        verdict = result.verdict
        self.record.scan = {
            "passed": verdict.passed,
            "fail_on": str(verdict.fail_on),
            "blocking": len(verdict.blocking),
            "outcomes": {f"{o.tool}:{o.target}": str(o.status) for o in verdict.outcomes},
            "allow_unavailable": self.options.allow_unavailable_scanners,
            "reports": [str(p) for p in result.reports],
        }
        if not verdict.passed:
            raise WormholeCiError("scan failed: " + "; ".join(verdict.reasons()))
        return f"passed ({len(verdict.outcomes)} scans, fail on {verdict.fail_on})"

    def _publish(self) -> str:
        result = publish_images(
            self.manifest,
            self.specs,
            self.engine,
            self._build_options(),
            target=Target(
                self.env.registry, self.env.registry_username, self.secrets.registry_password
            ),
            say=self.say,
            built=self.built,
        )
        by_service = {p.service: p for p in result.published}
        for image in self.record.images:
            published = by_service.get(str(image["service"]))
            if published:
                image["reference"] = published.reference
                image["digest"] = published.digest
                image["action"] = published.action
        return ", ".join(p.reference for p in result.published)

    def _migrate(self) -> str:
        url = DatabaseUrl.parse(self.secrets.database_url.reveal())
        spec = database_service(self.manifest, None)
        options = prepare_migrate(
            self.manifest,
            spec,
            self.options.cache_dir,
            self.say,
            lock_timeout=self.options.lock_timeout,
            allow_destructive=self.options.allow_destructive,
            backup_dir=self.options.work_dir / "backups",
            sha=self.options.revision.sha,
        )
        try:
            result = run_migrate(url, options, self.say)
        except MigrateFailed as exc:
            self.record.migrations = json.loads(exc.result.to_json())
            raise
        self.record.migrations = json.loads(result.to_json())
        return f"{result.outcome}: {', '.join(result.applied) or 'nothing pending'}"

    def _deploy(self) -> str:
        options = DeployOptions(
            sha=self.options.revision.sha,
            image_tag=self.options.revision.short,
            rollback=self.options.rollback,
            deploy_timeout=self.env.deploy_timeout,
            verify_timeout=self.env.verify_timeout,
            poll_interval=self.options.poll_interval,
        )
        try:
            result = deploy_environment(self.env, self.coolify, options, self.say)
        except DeployFailed as exc:
            self.record.deployments = [asdict(s) for s in exc.result.services]
            raise
        self.record.deployments = [asdict(s) for s in result.services]
        return "verified: " + ", ".join(f"{s.service} {s.deployment}" for s in result.services)


class ReleaseStopped(WormholeCiError):
    """A gate was red; `record` (also written to disk) says which and what happened before."""

    def __init__(self, step: str, detail: str, record: ReleaseManifest) -> None:
        super().__init__(f"release stopped at {step}: {detail}")
        self.step = step
        self.record = record
