"""What Prisma has applied and what is pending, and the `prisma migrate` commands themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from wormhole_ci.delivery.runbooks import FAILED_MIGRATION
from wormhole_ci.errors import MigrateError
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.migrate.lock import connect
from wormhole_ci.secretref import redact

MIGRATIONS_DIR = Path("prisma") / "migrations"
DEPLOY_TIMEOUT = 1800.0
STATUS_TIMEOUT = 300.0
DEPLOY_DONE = ("All migrations have been successfully applied.", "No pending migrations to apply.")
STATUS_DONE = ("Database schema is up to date!",)
"""The last line each command prints when it succeeded (Prisma 6.19's wording)."""
LINGER_GRACE = 2.0
"""How long a CLI that printed its last line may take to exit before it is ended. Prisma
6.19.3's Wasm schema engine leaves a 10 s timer behind (a `setTimeout` from its Rust side,
never cleared), which kept every `migrate deploy` and `migrate status` alive 10 s after its
work. The job never trusts the exit alone: it reads `_prisma_migrations` afterwards."""


@dataclass(frozen=True)
class MigrationState:
    """The database's `_prisma_migrations` table compared with the migration folders."""

    on_disk: tuple[str, ...]
    applied: tuple[str, ...]
    failed: tuple[str, ...]
    """Started and neither finished nor marked rolled back: `migrate deploy` refuses to run."""
    unknown: tuple[str, ...]
    """Applied in the database but absent from the folder (a deploy from another branch?)."""

    @property
    def pending(self) -> tuple[str, ...]:
        done = set(self.applied)
        return tuple(m for m in self.on_disk if m not in done)


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    exit_code: int
    output: str
    seconds: float
    ended_after_done: bool = False
    """The CLI printed its success line but had not exited `LINGER_GRACE` s later, so it was
    ended (SIGTERM): `exit_code` is then 0."""


def migrations_on_disk(service_dir: Path) -> tuple[str, ...]:
    """Migration names in the order `migrate deploy` applies them (folder name order)."""
    folder = service_dir / MIGRATIONS_DIR
    if not folder.is_dir():
        raise MigrateError(f"{folder}: no Prisma migrations folder; run `prisma migrate dev` first")
    return tuple(sorted(d.name for d in folder.iterdir() if (d / "migration.sql").is_file()))


def read_state(url: DatabaseUrl, service_dir: Path) -> MigrationState:
    """Read `_prisma_migrations` directly: exact, and no Prisma start-up per question."""
    on_disk = migrations_on_disk(service_dir)
    with connect(url, "reading the migration history") as conn:
        return query_state(conn, url, on_disk)


def query_state(
    conn: psycopg.Connection[tuple[object, ...]], url: DatabaseUrl, on_disk: tuple[str, ...]
) -> MigrationState:
    """`_prisma_migrations` (plain SELECTs, also inside a read-only transaction) compared with
    the migrations `on_disk`; no such table means nothing was ever applied."""
    exists = conn.execute("SELECT to_regclass('_prisma_migrations') IS NOT NULL").fetchone()
    rows: list[tuple[object, ...]] = []
    if exists is not None and exists[0] is True:
        try:
            rows = conn.execute(
                "SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL "
                "FROM _prisma_migrations ORDER BY started_at"
            ).fetchall()
        except psycopg.Error as exc:
            raise MigrateError(
                f"{url.display}: cannot read _prisma_migrations: {exc.diag.message_primary}"
            ) from None
    applied = tuple(str(r[0]) for r in rows if r[1] is True and r[2] is not True)
    failed = tuple(
        str(r[0])
        for r in rows
        if r[1] is not True and r[2] is not True and str(r[0]) not in applied
    )
    known = set(on_disk)
    return MigrationState(
        on_disk=on_disk,
        applied=applied,
        failed=tuple(dict.fromkeys(failed)),
        unknown=tuple(m for m in applied if m not in known),
    )


def run_prisma(
    prisma: Sequence[str],
    args: Sequence[str],
    service_dir: Path,
    url: DatabaseUrl,
    timeout: float,
    *,
    done: Sequence[str] = (),
) -> Run:
    """`prisma ARGS` in the service directory with DATABASE_URL in its environment only.

    The output is returned with every form of the URL and password redacted. The process
    group is killed at the deadline, so a hung CLI never holds the job (or the lock) forever.
    Once it printed one of the `done` lines (its own success line), it gets `LINGER_GRACE`
    seconds to exit before it is ended (see LINGER_GRACE).
    """
    argv = (*prisma, *args)
    env = {
        **os.environ,
        "DATABASE_URL": url.reveal(),
        "CHECKPOINT_DISABLE": "1",
        "PRISMA_HIDE_UPDATE_MESSAGE": "1",
        "NO_COLOR": "1",
    }
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            argv,
            cwd=service_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise MigrateError(f"{argv[0]} not found: install the service's dependencies") from None
    lines: list[str] = []
    finished = threading.Event()
    reader = threading.Thread(
        target=_read_lines, args=(process, lines, frozenset(done), finished), daemon=True
    )
    reader.start()
    deadline = started + timeout
    ended_after_done = False
    try:
        while process.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                reader.join(timeout=5)
                raise MigrateError(
                    f"`prisma {' '.join(args)}` did not finish within {timeout:.0f} s and was "
                    "killed:\n" + _tail(redact("".join(lines), *url.secrets))
                )
            if finished.wait(min(remaining, 0.1)):
                ended_after_done = _end_lingering(process)
        reader.join(timeout=5)
    finally:
        if process.stdout is not None:
            process.stdout.close()
    code = 0 if ended_after_done else process.returncode
    output = redact("".join(lines), *url.secrets)
    return Run(argv, code, output, time.monotonic() - started, ended_after_done)


def _end_lingering(process: subprocess.Popen[str]) -> bool:
    """Give a CLI that printed its success line LINGER_GRACE s to exit, then end it; whether
    it had to be ended."""
    try:
        process.wait(timeout=LINGER_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return True
    return False


def _read_lines(
    process: subprocess.Popen[str],
    lines: list[str],
    done: frozenset[str],
    finished: threading.Event,
) -> None:
    """Collect the CLI's output; set `finished` when it prints one of its `done` lines."""
    stream = process.stdout
    if stream is None:
        return
    for line in stream:
        lines.append(line)
        if line.strip() in done:
            finished.set()


def recovery_steps(migration: str, backup: str | None, service: str) -> str:
    """What to do when `migration` failed half-way (P3009 / P3018): exact commands."""
    restore = (
        f"wormhole-ci restore --backup {backup} --database-url env:DATABASE_URL"
        if backup
        else "restore the database from your latest backup (this job took none: --no-backup)"
    )
    return (
        f"Migration {migration} failed and is recorded as failed in _prisma_migrations; Prisma "
        "will not apply anything until it is resolved. Either:\n"
        f"  A. roll back: 1) {restore}\n"
        f"     2) cd {service} && DATABASE_URL=… pnpm exec prisma migrate resolve --rolled-back {migration}\n"
        "     3) fix the migration (or the data it trips on), commit, and run the release again;\n"
        "  B. roll forward: fix the data or the database by hand so the migration's remaining\n"
        f"     statements hold, then `pnpm exec prisma migrate resolve --applied {migration}` and\n"
        "     add any missing change as a new migration.\n"
        f"See {FAILED_MIGRATION}."
    )


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
