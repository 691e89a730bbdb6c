"""The native release: the steps as host processes (engine builds, scanners, the migrate job)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from wormhole_ci.check import DEFAULT_TASK_TIMEOUT
from wormhole_ci.check.native import NativeOptions, run_plan
from wormhole_ci.check.progress import PlainReporter
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.hasura.environment import apply_environment, hasura_run
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
from wormhole_ci.migrate.job import MigrateFailed, MigrateResult, database_service, run_migrate
from wormhole_ci.migrate.native import prepare_migrate
from wormhole_ci.notify.github import actions_run_url, github_target
from wormhole_ci.notify.release import release_status
from wormhole_ci.observability.push import pushgateway_with
from wormhole_ci.plan import build_plan
from wormhole_ci.release.machine import ReleaseMachine, Rollout
from wormhole_ci.release.record import (
    ImageRecord,
    ReleaseRecord,
    check_detail,
    scan_detail,
    scan_record,
    utc_now,
)
from wormhole_ci.secretref import Secret, redact
from wormhole_ci.security.policy import FailOn
from wormhole_ci.security.scan import ScanOptions, run_scan
from wormhole_ci.security.tasks import Family
from wormhole_ci.toolchains import host_fingerprint

Say = Callable[[str], None]


@dataclass(frozen=True)
class ReleaseSecrets:
    coolify_token: Secret
    database_url: Secret
    registry_password: Secret | None
    hasura_admin_secret: Secret | None = None
    pushgateway_auth: Secret | None = None
    """The Pushgateway's credential ([observability] pushgateway_auth), when it names one."""
    notify_url: Secret | None = None
    """The [notify] webhook URL (a credential), when its variable is set."""
    github_token: Secret | None = None
    """The token for the release's GitHub Deployment (--github-token); None: no GitHub calls."""

    def values(self) -> tuple[str, ...]:
        out = [self.coolify_token.reveal(), self.database_url.reveal()]
        out.extend(s.reveal() for s in (self.notify_url, self.github_token) if s is not None)
        if self.pushgateway_auth:
            out.append(self.pushgateway_auth.reveal())
        if self.registry_password:
            out.append(self.registry_password.reveal())
        if self.hasura_admin_secret:
            out.append(self.hasura_admin_secret.reveal())
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
    github_repository: str = ""
    """owner/name for the GitHub Deployment (default: $GITHUB_REPOSITORY)."""


def environment_secrets(env: Environment, environ: dict[str, str] | None = None) -> ReleaseSecrets:
    """The environment's secrets from the variables the manifest names; a clear error per
    missing one (its name only, never a value)."""
    source = os.environ if environ is None else environ
    named = dict(env.secrets)
    if env.hasura is not None:
        named["hasura admin_secret"] = env.hasura.admin_secret
    missing = [f"{role} (${var})" for role, var in named.items() if not source.get(var)]
    if missing:
        raise WormholeCiError(
            f"release {env.name}: missing secrets: {', '.join(missing)}; set these environment "
            "variables (GitHub Actions: environment secrets mapped into the step's env)"
        )

    def secret(role: str) -> Secret:
        var = env.secrets[role]
        return Secret(f"env:{var}", source[var])

    DatabaseUrl.parse(source[env.secrets["database_url"]])  # a malformed URL fails here, unprinted
    gateway_var = env.observability.pushgateway_auth if env.observability else None
    notify_var = env.notify.url_secret if env.notify else None
    return ReleaseSecrets(
        coolify_token=secret("coolify_token"),
        database_url=secret("database_url"),
        registry_password=secret("registry_password")
        if "registry_password" in env.secrets
        else None,
        hasura_admin_secret=Secret(
            f"env:{env.hasura.admin_secret}", source[env.hasura.admin_secret]
        )
        if env.hasura is not None
        else None,
        # optional: without it the release runs and only the push is skipped (with a warning)
        pushgateway_auth=Secret(f"env:{gateway_var}", source[gateway_var])
        if gateway_var and source.get(gateway_var)
        else None,
        # optional too: without it the outcome is not announced (one warning)
        notify_url=Secret(f"env:{notify_var}", source[notify_var])
        if notify_var and source.get(notify_var)
        else None,
    )


def dry_run(
    manifest: Manifest,
    env: Environment,
    rev: Revision,
    secrets: ReleaseSecrets | None,
    *,
    probe: bool = False,
) -> list[str]:
    """Every step with its targets, from local files only; with `probe`, the live Hasura
    metadata is also read to list what would change (no change anywhere)."""
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
        "6. hasura   " + hasura_dry_run(manifest, env, secrets, probe=probe),
        f"7. deploy   Coolify {env.coolify_url}: "
        + ", ".join(
            f"{t.service} -> {'application ' + t.application if t.application else 'tag ' + (t.tag or '')}"
            for t in env.targets
        ),
        "   verify   "
        + ", ".join(f"{t.service} {t.health_url} reports {rev.short}" for t in env.targets),
    ]


def hasura_dry_run(
    manifest: Manifest, env: Environment, secrets: ReleaseSecrets | None, *, probe: bool
) -> str:
    """The hasura step's line of a dry run: the URL and, when probing with the admin secret,
    the changes (a plain dry run contacts nothing)."""
    if env.hasura is None:
        return f"skipped (no [environments.{env.name}.hasura])"
    where = f"metadata to {env.hasura.url}"
    if not probe:
        return f"{where} (not contacted; --probe lists what would change)"
    admin = secrets.hasura_admin_secret if secrets else None
    if admin is None:
        return f"{where} (set ${env.hasura.admin_secret} to list what would change)"
    run = hasura_run(manifest, env, admin.reveal())
    if run is None:  # env.hasura is set: hasura_run returns a run or raises
        return where
    try:
        result = apply_environment(run, coolify=None, say=lambda _line: None, dry_run=True)
    except WormholeCiError as exc:
        return f"{where}: cannot read the live metadata: {exc}"
    changes = "; ".join(f"{c.action} {c.object}" for c in result.changes) or "no change"
    return f"{where}: {changes}"


class NativeSteps:
    """The gates as host processes: the native runtime, an image engine, the scanners."""

    def __init__(
        self,
        manifest: Manifest,
        env: Environment,
        engine: Engine,
        secrets: ReleaseSecrets,
        *,
        options: ReleaseOptions,
        say: Say,
    ) -> None:
        self.manifest, self.env, self.engine = manifest, env, engine
        self.secrets, self.options, self.say = secrets, options, say
        self.specs = image_specs(manifest)
        self.built: list[BuiltImage] = []

    async def check(self, record: ReleaseRecord) -> str:
        options = NativeOptions(
            source=self.manifest.root,
            log_dir=self.options.work_dir / "logs",
            cache_dir=self.options.cache_dir,
            jobs=self.options.jobs,
            task_timeout=DEFAULT_TASK_TIMEOUT,
            reuse=True,
            toolchain=host_fingerprint(),
        )
        plan = build_plan(self.manifest)
        report = await anyio.to_thread.run_sync(
            lambda: run_plan(plan, options, PlainReporter(sys.stderr), self.say)
        )
        return check_detail(report)

    def _build_options(self) -> BuildOptions:
        return BuildOptions(
            revision=self.options.revision,
            extra_args=self.options.build_args,
            log_dir=self.options.work_dir / "logs",
            save_dir=self.options.work_dir / "images",
            jobs=self.options.jobs,
        )

    async def build(self, record: ReleaseRecord) -> str:
        built = await anyio.to_thread.run_sync(
            lambda: build_images(
                self.manifest, self.specs, self.engine, self._build_options(), self.say
            )
        )
        self.built = list(built)
        record.images = [ImageRecord(b.service, b.name, b.config_digest) for b in built]
        return ", ".join(b.name for b in built)

    async def scan(self, record: ReleaseRecord) -> str:
        images = tuple((b.service, Path(b.tarball)) for b in self.built if b.tarball)
        out = self.options.work_dir / "scan"
        result = await anyio.to_thread.run_sync(
            lambda: run_scan(
                self.manifest,
                ScanOptions(
                    fail_on=FailOn(self.manifest.security.fail_on),
                    allow_unavailable=self.options.allow_unavailable_scanners,
                    output_dir=out,
                    families=frozenset(Family),
                    jobs=self.options.jobs,
                    cache_dir=self.options.cache_dir,
                    today=dt.date.today(),
                    images=images,
                ),
            )
        )
        record.scan = scan_record(
            result.verdict,
            self.options.allow_unavailable_scanners,
            [p.relative_to(self.options.work_dir).as_posix() for p in result.reports],
        )
        return scan_detail(result.verdict)

    async def publish(self, record: ReleaseRecord) -> str:
        result = await anyio.to_thread.run_sync(
            lambda: publish_images(
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
        )
        return record.add_published(result.published)

    async def migrate(self, record: ReleaseRecord) -> str:
        url = DatabaseUrl.parse(self.secrets.database_url.reveal())
        spec = database_service(self.manifest, None)

        def job() -> MigrateResult:
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
            return run_migrate(url, options, self.say)

        try:
            result = await anyio.to_thread.run_sync(job)
        except MigrateFailed as exc:
            record.migrations = json.loads(exc.result.to_json())
            raise
        record.migrations = json.loads(result.to_json())
        return f"{result.outcome}: {', '.join(result.applied) or 'nothing pending'}"


def run_native_release(
    manifest: Manifest,
    env: Environment,
    engine: Engine,
    secrets: ReleaseSecrets,
    *,
    options: ReleaseOptions,
    say: Say,
    coolify: Coolify | None = None,
    environ: Mapping[str, str] | None = None,
) -> ReleaseRecord:
    """One release on this host; release.json is written to `options.output` after every step."""
    hidden = secrets.values()  # every secret value once, not a URL parse per line said

    def said(line: str) -> None:
        say(redact(line, *hidden))

    def save(record: ReleaseRecord) -> None:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(redact(record.to_json(), *hidden) + "\n", encoding="utf-8")

    client = coolify or Coolify(
        env.coolify_url, secrets.coolify_token.reveal(), poll_interval=options.poll_interval
    )
    source = os.environ if environ is None else environ
    status = release_status(
        env,
        github=github_target(secrets.github_token, options.github_repository, source),
        webhook_url=secrets.notify_url,
        warn=said,
        log_url=actions_run_url(source),
    )
    machine = ReleaseMachine(
        env=env,
        steps=NativeSteps(manifest, env, engine, secrets, options=options, say=said),
        coolify=client,
        rollout=Rollout(
            sha=options.revision.sha,
            image_tag=options.revision.short,
            rollback=options.rollback,
            poll_interval=options.poll_interval,
        ),
        say=said,
        save=save,
        hidden=hidden,
        hasura=hasura_run(
            manifest,
            env,
            secrets.hasura_admin_secret.reveal() if secrets.hasura_admin_secret else None,
        ),
        pushgateway=pushgateway_with(
            env,
            secrets.pushgateway_auth.reveal() if secrets.pushgateway_auth else None,
            said,
            "it is not set",
        ),
        status=status,
    )
    record = ReleaseRecord(sha=options.revision.sha, environment=env.name, started=utc_now())
    return anyio.run(machine.run, record)
