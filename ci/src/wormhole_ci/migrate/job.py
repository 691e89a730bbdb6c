"""One migration job: lock → pending → lint and gate → backup → deploy → verify → result.

And its dry run (`dry_run_migrate`): the same steps, read-only — what a real run would do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from wormhole_ci.errors import MigrateError
from wormhole_ci.manifest import Manifest, ServiceSpec
from wormhole_ci.migrate.backup import ServerInfo, backup_name, dump, find_client
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.migrate.lock import connect, lock_holder, lock_key, migration_lock
from wormhole_ci.migrate.prisma import (
    DEPLOY_DONE,
    DEPLOY_TIMEOUT,
    MIGRATIONS_DIR,
    STATUS_DONE,
    STATUS_TIMEOUT,
    MigrationState,
    migrations_on_disk,
    query_state,
    read_state,
    recovery_steps,
    run_prisma,
)
from wormhole_ci.migrate.sqlgate import (
    Finding,
    GateReport,
    blocked_message,
    gate,
    split_statements,
)
from wormhole_ci.secretref import redact

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
    dry_run: DryRun | None = None
    """Set by `dry_run_migrate`: what a real run would do; then nothing was changed."""

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
            options.prisma,
            ("migrate", "deploy"),
            options.service_dir,
            url,
            DEPLOY_TIMEOUT,
            done=DEPLOY_DONE,
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
            options.prisma,
            ("migrate", "status"),
            options.service_dir,
            url,
            STATUS_TIMEOUT,
            done=STATUS_DONE,
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


# -- the dry run ------------------------------------------------------------------------------

DRY_RUN_APPLICATION = "wormhole-ci migrate --dry-run"
"""The dry run's application_name: a DBA looking at pg_stat_activity sees it is harmless."""

Observe = Callable[[str], None]
"""Called after each dry-run step, its read-only transaction still open (tests look then)."""


@dataclass
class StatementVerdict:
    """One statement of a pending migration and what the gate says about it."""

    file: str
    """relative to the service, e.g. prisma/migrations/20260301000000_x/migration.sql"""
    line: int
    statement: str
    verdict: str
    """ok | warn | block (destructive) | allowed (destructive, --allow-destructive)"""
    findings: list[str] = field(default_factory=list[str])
    """`rule: message` of every finding on this statement (squawk's and the gate's)."""


@dataclass
class PendingMigration:
    name: str
    statements: list[StatementVerdict] = field(default_factory=list[StatementVerdict])


@dataclass
class LockState:
    """The job's advisory lock as pg_locks shows it; the dry run never takes it."""

    key: int
    free: bool
    holder_pid: int | None = None
    holder_application: str | None = None
    holder_client_addr: str | None = None
    holder_since: str | None = None
    """ISO 8601: when the holding session connected."""
    holder: str | None = None


@dataclass
class DryRun:
    """What a real run would do, read in one read-only transaction that wrote nothing."""

    lock: LockState
    read_only: bool = False
    """The server said `transaction_read_only = on` for every query of the dry run."""
    wrote_nothing: bool = False
    """At the end, the transaction had no transaction id: it changed nothing."""
    failed: list[str] = field(default_factory=list[str])
    migrations: list[PendingMigration] = field(default_factory=list[PendingMigration])
    backup: str | None = None
    """The file a real run's backup would be written to (not written)."""
    backup_detail: str = ""
    stops: list[str] = field(default_factory=list[str])
    """Why a real run would stop; empty when it would proceed."""


def dry_run_migrate(
    url: DatabaseUrl,
    options: MigrateOptions,
    say: Say,
    *,
    now: dt.datetime | None = None,
    observe: Observe | None = None,
) -> MigrateResult:
    """The job's steps without their effects: the lock's holder (read, never taken), the
    pending migrations from `_prisma_migrations` (plain SELECTs in one REPEATABLE READ, READ
    ONLY transaction, rolled back), every pending statement's gate verdict and the backup's
    name (nothing dumped). `prisma migrate status/deploy` never run: Prisma would take its own
    advisory lock. Outcome: up-to-date | would-apply | would-block | would-fail. Raises
    `MigrateFailed` when it cannot tell (no connection, no squawk)."""
    result = MigrateResult(database=url.display, service=options.service)
    try:
        on_disk = migrations_on_disk(options.service_dir)
        conn = connect(
            url, "migrate dry run", application_name=DRY_RUN_APPLICATION, autocommit=False
        )
        try:
            # Every statement runs in this one transaction: BEGIN ISOLATION LEVEL REPEATABLE
            # READ READ ONLY (one consistent snapshot), rolled back at the end.
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            _DryRun(conn, url, options, result, say, now or dt.datetime.now(dt.UTC)).run(
                on_disk, observe or (lambda _: None)
            )
        except psycopg.Error as exc:
            detail = redact(" ".join(str(exc).split()), *url.secrets)
            raise MigrateError(f"migrate dry run on {url.display}: {detail}") from None
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            conn.close()
    except MigrateError as exc:
        result.outcome = "failed"
        result.error = str(exc)
        raise MigrateFailed(str(exc), result) from None
    return result


@dataclass
class _DryRun:
    conn: psycopg.Connection[tuple[object, ...]]
    url: DatabaseUrl
    options: MigrateOptions
    result: MigrateResult
    say: Say
    now: dt.datetime

    def run(self, on_disk: tuple[str, ...], observe: Observe) -> None:
        mode = self.conn.execute("SHOW transaction_read_only").fetchone()
        if mode is None or mode[0] != "on":  # fail closed: never read on a writable transaction
            raise MigrateError(
                f"migrate dry run: {self.url.display} did not start a read-only transaction"
            )
        key = lock_key(self.options.project)
        dry = self.result.dry_run = DryRun(lock=LockState(key=key, free=True), read_only=True)
        dry.lock = self.lock(key)
        observe("lock")
        state = self.status(dry, on_disk)
        observe("status")
        self.lint(dry, state.pending)
        observe("lint")
        backup_fails = self.backup(dry, state.pending)
        observe("backup")
        assigned = self.conn.execute("SELECT txid_current_if_assigned() IS NULL").fetchone()
        dry.wrote_nothing = assigned is not None and assigned[0] is True
        if not dry.wrote_nothing:  # cannot happen in a READ ONLY transaction: never claim it
            raise MigrateError(
                f"migrate dry run: the transaction on {self.url.display} wrote something"
            )
        self.result.steps.append(
            Step("deploy", "skipped", 0.0, "dry run: prisma migrate deploy not run")
        )
        if dry.failed or backup_fails:
            self.result.outcome = "would-fail"
        elif dry.stops:
            self.result.outcome = "would-block"
        else:
            self.result.outcome = "would-apply" if state.pending else "up-to-date"

    def lock(self, key: int) -> LockState:
        timer = _Timer(self.result, "lock", self.say)
        holder = lock_holder(self.conn, key)
        if holder is None:
            timer.done("free", "not taken: a dry run never takes the migration lock")
            return LockState(key=key, free=True)
        timer.done(
            "held",
            f"held by {holder.describe()}; a real run would wait for it up to "
            f"{self.options.lock_timeout:.0f} s (--lock-timeout)",
        )
        return LockState(
            key=key,
            free=False,
            holder_pid=holder.pid,
            holder_application=holder.application_name,
            holder_client_addr=holder.client_addr,
            holder_since=holder.since.isoformat() if holder.since else None,
            holder=holder.describe(),
        )

    def status(self, dry: DryRun, on_disk: tuple[str, ...]) -> MigrationState:
        timer = _Timer(self.result, "status", self.say)
        state = query_state(self.conn, self.url, on_disk)
        self.result.pending = list(state.pending)
        if state.unknown:
            self.result.warnings.append(
                "applied in the database but not in this source: " + ", ".join(state.unknown)
            )
        dry.failed = list(state.failed)
        if state.failed:
            dry.stops.append(
                f"{self.url.display} has a failed migration from an earlier run: "
                f"{state.failed[0]} (a real run stops at `status`).\n"
                + recovery_steps(state.failed[0], None, self.options.service)
            )
            timer.done("failed", f"failed migration recorded: {', '.join(state.failed)}")
        else:
            timer.done("ok", f"{len(state.pending)} pending ({len(state.applied)} applied)")
        return state

    def lint(self, dry: DryRun, pending: tuple[str, ...]) -> None:
        timer = _Timer(self.result, "lint", self.say)
        if not pending:
            timer.done("skipped", "nothing pending")
            return
        service_dir = self.options.service_dir
        files = [service_dir / MIGRATIONS_DIR / name / "migration.sql" for name in pending]
        report = gate(files, service_dir, self.options.squawk)
        self.result.squawk = report.squawk_version
        dry.migrations = _verdicts(self.options, pending, report)
        if report.blocking and not self.options.allow_destructive:
            dry.stops.append(blocked_message(report))
            timer.done("blocked", f"{len(report.blocking)} destructive statement(s)")
            return
        timer.done(
            "ok",
            f"{len(report.findings)} finding(s)"
            + (", destructive allowed by --allow-destructive" if report.blocking else ""),
        )

    def backup(self, dry: DryRun, pending: tuple[str, ...]) -> bool:
        """Name the backup a real run would take; True when it would fail (no usable pg_dump)."""
        timer = _Timer(self.result, "backup", self.say)
        if not pending:
            dry.backup_detail = "none: nothing pending, a real run takes no backup"
            timer.done("skipped", "nothing pending")
            return False
        if self.options.backup_dir is None:
            dry.backup_detail = "none: --no-backup"
            timer.done("skipped", "--no-backup")
            return False
        path = self.options.backup_dir / backup_name(self.url, self.options.sha, self.now)
        dry.backup = str(path)
        try:
            client = find_client("pg_dump", _server(self.conn), f"backup of {self.url.display}")
        except MigrateError as exc:
            dry.stops.append(f"the backup would fail: {exc}")
            dry.backup_detail = str(exc)
            timer.done("failed", str(exc))
            return True
        dry.backup_detail = f"pg_dump {client.version}; not written"
        timer.done("ok", f"would write {path} with pg_dump {client.version} (not written)")
        return False


def _server(conn: psycopg.Connection[tuple[object, ...]]) -> ServerInfo:
    version = conn.execute("SHOW server_version").fetchone()
    number = conn.execute("SHOW server_version_num").fetchone()
    if version is None or number is None:  # SHOW always returns a row
        raise MigrateError("the server did not report its version")
    return ServerInfo(str(version[0]), int(str(number[0])))


def _verdicts(
    options: MigrateOptions, pending: tuple[str, ...], report: GateReport
) -> list[PendingMigration]:
    """Each pending migration's statements (as PostgreSQL splits them) with the findings that
    fall on them; a finding on no statement is listed on its own line."""
    out: list[PendingMigration] = []
    for name in pending:
        rel = (MIGRATIONS_DIR / name / "migration.sql").as_posix()
        sql = (options.service_dir / rel).read_text(encoding="utf-8")
        mine = [f for f in report.findings if f.file == rel]
        placed: set[int] = set()
        migration = PendingMigration(name)
        for stmt in split_statements(sql):
            on = [i for i, f in enumerate(mine) if stmt.line <= f.line <= stmt.end_line]
            placed.update(on)
            migration.statements.append(_verdict(rel, stmt.line, stmt.text, [mine[i] for i in on]))
        for i, f in enumerate(mine):
            if i not in placed:
                migration.statements.append(_verdict(rel, f.line, f.statement, [f]))
        migration.statements.sort(key=lambda s: s.line)
        out.append(migration)
    # the gate's verdicts are per statement: "allowed" only where --allow-destructive
    if options.allow_destructive:
        for migration in out:
            for stmt in migration.statements:
                if stmt.verdict == "block":
                    stmt.verdict = "allowed"
    return out


def _verdict(file: str, line: int, text: str, findings: list[Finding]) -> StatementVerdict:
    verdict = "block" if any(f.destructive for f in findings) else "warn" if findings else "ok"
    return StatementVerdict(file, line, text, verdict, [f"{f.rule}: {f.message}" for f in findings])


def dry_run_lines(result: MigrateResult) -> list[str]:
    """The dry run's report for a terminal: lock, failed migrations, every pending statement
    with its verdict, the backup, and what a real run would do."""
    dry = result.dry_run
    if dry is None:
        return []
    marks = {"ok": "ok   ", "warn": "warn ", "block": "BLOCK", "allowed": "allow"}
    out = [
        f"dry run of migrate {result.service} on {result.database}: nothing was changed "
        "(one read-only transaction, no lock taken, no backup written, Prisma not run)",
        "lock: free"
        if dry.lock.free
        else f"lock: held by {dry.lock.holder}; a real run would wait for it",
        f"failed migrations recorded: {', '.join(dry.failed) or 'none'}",
        f"pending: {len(result.pending)}{', in order:' if result.pending else ''}",
    ]
    if dry.migrations:
        out.append(
            "  (ok: clean; warn: squawk warnings, does not stop a run; BLOCK: destructive, "
            "stops it; allow: destructive, --allow-destructive)"
        )
    for number, migration in enumerate(dry.migrations, 1):
        out.append(f"  {number}. {migration.name}")
        for stmt in migration.statements:
            out.append(f"     {marks[stmt.verdict]} {stmt.file}:{stmt.line}  {stmt.statement}")
            out.extend(f"           {finding}" for finding in stmt.findings)
    out.append(
        f"backup: {dry.backup} ({dry.backup_detail})"
        if dry.backup
        else f"backup: {dry.backup_detail}"
    )
    if result.squawk:
        out.append(f"linted with {result.squawk} + the destructive-change gate")
    verdicts = {
        "up-to-date": "a real run would do nothing: nothing pending",
        "would-apply": f"a real run would apply {len(result.pending)} migration(s)",
        "would-block": "a real run would stop at lint: destructive statement(s) need "
        "--allow-destructive",
        "would-fail": "a real run would fail: "
        + ("a failed migration is recorded" if dry.failed else "the backup cannot be taken"),
    }
    out.append(f"verdict: {verdicts.get(result.outcome, result.outcome)}")
    out.extend(f"  {line}" for stop in dry.stops for line in stop.splitlines())
    return out
