"""One migration job: lock → pending → lint and gate → backup → deploy → verify → result."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wormhole_ci.errors import MigrateError
from wormhole_ci.manifest import Manifest, ServiceSpec
from wormhole_ci.migrate.backup import dump
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.migrate.lock import migration_lock
from wormhole_ci.migrate.prisma import (
    DEPLOY_TIMEOUT,
    MIGRATIONS_DIR,
    STATUS_TIMEOUT,
    migrations_on_disk,
    read_state,
    recovery_steps,
    run_prisma,
)
from wormhole_ci.migrate.sqlgate import blocked_message, gate

Say = Callable[[str], None]


@dataclass(frozen=True)
class MigrateOptions:
    project: str
    service: str
    service_dir: Path
    prisma: tuple[str, ...]
    """The Prisma CLI's argv prefix (e.g. `node_modules/.bin/prisma`)."""
    squawk: str | None
    lock_timeout: float = 600.0
    allow_destructive: bool = False
    backup_dir: Path | None = None
    """None: no backup (`--no-backup`)."""
    sha: str | None = None


@dataclass
class Step:
    name: str
    status: str
    seconds: float
    detail: str = ""


@dataclass
class MigrateResult:
    database: str
    """host:port/db, never credentials."""
    service: str
    outcome: str = "running"
    """up-to-date | applied | blocked | failed"""
    pending: list[str] = field(default_factory=list[str])
    applied: list[str] = field(default_factory=list[str])
    backup: str | None = None
    lock_waited: float = 0.0
    squawk: str | None = None
    warnings: list[str] = field(default_factory=list[str])
    steps: list[Step] = field(default_factory=list[Step])
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class _Timer:
    def __init__(self, result: MigrateResult, name: str, say: Say) -> None:
        self.result, self.name, self.say = result, name, say
        self.started = time.monotonic()

    def done(self, status: str = "ok", detail: str = "") -> None:
        seconds = time.monotonic() - self.started
        self.result.steps.append(Step(self.name, status, round(seconds, 2), detail))
        self.say(f"{self.name}: {status}{f' — {detail}' if detail else ''} ({seconds:.1f} s)")


def database_service(manifest: Manifest, name: str | None) -> ServiceSpec:
    """The service whose Prisma migrations to apply: `name`, else the one a Hasura service
    names as its database, else the only service with a Prisma migrations folder."""
    if name:
        spec = manifest.service(name)
        migrations_on_disk(manifest.root / spec.path)  # a clear error when it has none
        return spec
    named = {s.database for s in manifest.services if s.database}
    with_migrations = [
        s for s in manifest.services if (manifest.root / s.path / MIGRATIONS_DIR).is_dir()
    ]
    candidates = [s for s in with_migrations if s.name in named] or with_migrations
    if len(candidates) != 1:
        found = ", ".join(s.name for s in candidates) or "none"
        raise MigrateError(
            f"migrate: cannot tell which service's migrations to apply (services with "
            f"{MIGRATIONS_DIR}/: {found}); pass --service NAME"
        )
    return candidates[0]


def run_migrate(url: DatabaseUrl, options: MigrateOptions, say: Say) -> MigrateResult:
    """Run the job; on failure raise `MigrateFailed`, whose `.result` says how far it got."""
    result = MigrateResult(database=url.display, service=options.service)
    try:
        _run(url, options, result, say)
    except MigrateError as exc:
        if result.outcome == "running":
            result.outcome = "failed"
        result.error = str(exc)
        raise MigrateFailed(str(exc), result) from None
    return result


class MigrateFailed(MigrateError):
    """The job stopped; `result` says how far it got."""

    def __init__(self, message: str, result: MigrateResult) -> None:
        super().__init__(message)
        self.result = result


def _run(url: DatabaseUrl, options: MigrateOptions, result: MigrateResult, say: Say) -> None:
    timer = _Timer(result, "lock", say)
    with migration_lock(url, options.project, options.lock_timeout, say) as held:
        result.lock_waited = round(held.waited, 2)
        timer.done("ok", f"waited {held.waited:.1f} s" if held.contended else "uncontended")

        timer = _Timer(result, "status", say)
        state = read_state(url, options.service_dir)
        if state.unknown:
            result.warnings.append(
                "applied in the database but not in this source: " + ", ".join(state.unknown)
            )
        if state.failed:
            timer.done("failed", f"failed migration recorded: {', '.join(state.failed)}")
            raise MigrateError(
                f"{url.display} has a failed migration from an earlier run: {state.failed[0]}.\n"
                + recovery_steps(state.failed[0], None, options.service)
            )
        result.pending = list(state.pending)
        if not state.pending:
            timer.done("ok", f"nothing pending ({len(state.applied)} applied)")
            result.outcome = "up-to-date"
            return
        timer.done("ok", f"{len(state.pending)} pending: {', '.join(state.pending)}")

        timer = _Timer(result, "lint", say)
        files = [
            options.service_dir / MIGRATIONS_DIR / name / "migration.sql" for name in state.pending
        ]
        report = gate(files, options.service_dir, options.squawk)
        result.squawk = report.squawk_version
        result.warnings.extend(
            f"{f.file}:{f.line} {f.rule}: {f.message}" for f in report.findings if not f.destructive
        )
        if report.blocking and not options.allow_destructive:
            timer.done("blocked", f"{len(report.blocking)} destructive statement(s)")
            result.outcome = "blocked"
            raise MigrateError(blocked_message(report))
        timer.done(
            "ok",
            f"{len(report.findings)} finding(s)"
            + (", destructive allowed by --allow-destructive" if report.blocking else ""),
        )

        if options.backup_dir is not None:
            timer = _Timer(result, "backup", say)
            backup = dump(url, options.backup_dir, options.sha, now=dt.datetime.now(dt.UTC))
            result.backup = str(backup.path)
            timer.done("ok", f"{backup.path.name}, {backup.size} bytes")
        else:
            result.steps.append(Step("backup", "skipped", 0.0, "--no-backup"))
            say("backup: skipped (--no-backup)")

        timer = _Timer(result, "deploy", say)
        deployed = run_prisma(
            options.prisma, ("migrate", "deploy"), options.service_dir, url, DEPLOY_TIMEOUT
        )
        after = read_state(url, options.service_dir)
        result.applied = [m for m in state.pending if m in after.applied]
        if deployed.exit_code != 0 or after.failed or after.pending:
            culprit = (after.failed or after.pending or state.pending)[0]
            timer.done("failed", f"{culprit} did not apply")
            raise MigrateError(
                f"`prisma migrate deploy` failed on {url.display} at migration {culprit} "
                f"(applied before it: {', '.join(result.applied) or 'none'}):\n"
                + _tail(deployed.output)
                + "\n\n"
                + recovery_steps(culprit, result.backup, options.service)
            )
        timer.done("ok", f"applied {', '.join(result.applied)}")

        timer = _Timer(result, "verify", say)
        status = run_prisma(
            options.prisma, ("migrate", "status"), options.service_dir, url, STATUS_TIMEOUT
        )
        if status.exit_code != 0 or "up to date" not in status.output:
            timer.done("failed", "prisma migrate status is not clean")
            raise MigrateError(
                f"after deploying, `prisma migrate status` on {url.display} is not clean:\n"
                + _tail(status.output)
            )
        timer.done("ok", "prisma migrate status: up to date")
        result.outcome = "applied"


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
