"""`wormhole-ci migrate --dry-run` on a real password-protected loopback PostgreSQL.

What a real run would do — pending migrations in order, each statement's gate verdict, the
lock's holder, the backup's name — and proof that the database is untouched: the schema
(`pg_dump --schema-only`) and every `_prisma_migrations` row are byte-for-byte the same, no
advisory lock was ever taken (watched from another connection while it ran), the dry run's
transaction was read-only and got no transaction id, and no backup was written.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PgDatabase, copy_example
from tests.migrate.test_migrate_job import (
    MIGRATIONS,
    add_migration,
    assert_no_secret,
    cli,
    migrate,
    rows,
    seed,
)
from wormhole_ci.migrate.job import (
    DRY_RUN_APPLICATION,
    MigrateOptions,
    dry_run_migrate,
)
from wormhole_ci.migrate.lock import lock_key, migration_lock
from wormhole_ci.migrate.sqlgate import provision_squawk
from wormhole_ci.pgtemp import find_bindir
from wormhole_ci.toolchains import default_cache_dir

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
SHA = "4f3c2b1" + "0" * 33
ADDITIVE = "20260301000000_add_nickname"
DESTRUCTIVE = "20260302000000_drop_error"
ADDITIVE_SQL = 'ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n'
DESTRUCTIVE_SQL = (
    '-- the runs keep their status only\nALTER TABLE "workflow_runs" DROP COLUMN "error";\n'
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def dry_run(repo: Path, db: PgDatabase, *extra: str) -> subprocess.CompletedProcess[str]:
    done = cli("migrate", "--source", str(repo), "--tag", SHA, "--dry-run", *extra, url=db.raw)
    assert_no_secret(db, done.stdout, done.stderr)
    return done


def schema_dump(db: PgDatabase) -> bytes:
    """`pg_dump --schema-only` of the database, as bytes (credentials via libpq variables).

    Only the `\\restrict KEY` / `\\unrestrict KEY` lines are dropped: pg_dump (15.14+) writes a
    fresh random KEY into them on every dump (CVE-2025-8714), so two dumps of one unchanged
    database differ there and nowhere else."""
    bindir = find_bindir()
    assert bindir is not None
    done = subprocess.run(
        [str(bindir / "pg_dump"), "--schema-only", "--no-password"],
        capture_output=True,
        env={**os.environ, **db.url.libpq_env()},
        timeout=120,
        check=True,
    )
    assert b"PostgreSQL database dump" in done.stdout
    return b"".join(
        line
        for line in done.stdout.splitlines(keepends=True)
        if not line.startswith((b"\\restrict ", b"\\unrestrict "))
    )


def history(db: PgDatabase) -> list[tuple[object, ...]]:
    """Every column of every `_prisma_migrations` row (none when the table does not exist)."""
    if rows(db.url, "SELECT to_regclass('_prisma_migrations') IS NULL") == [(True,)]:
        return []
    return rows(db.url, "SELECT * FROM _prisma_migrations ORDER BY id")


def state(db: PgDatabase) -> tuple[bytes, list[tuple[object, ...]]]:
    return schema_dump(db), history(db)


class LockWatch:
    """Polls pg_locks and pg_stat_activity from its own (superuser-free) connection while a
    dry run runs: every advisory lock seen, and whether the dry run's session was seen."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self.advisory: list[tuple[object, ...]] = []
        self.dry_run_seen = 0
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + 600
        with psycopg.connect(self.db.url.conninfo(), autocommit=True) as conn:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self.advisory += conn.execute(
                    "SELECT pid, classid, objid FROM pg_locks WHERE locktype = 'advisory'"
                ).fetchall()
                seen = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (DRY_RUN_APPLICATION,),
                ).fetchone()
                self.dry_run_seen += int(str(seen[0])) if seen else 0
                self.polls += 1
                time.sleep(0.005)


def test_pending_in_order_with_verdicts_and_a_fresh_database_untouched(
    repo: Path, database_url: PgDatabase, tmp_path: Path
) -> None:
    """A database no migration ever ran on: everything is pending and `_prisma_migrations`
    must still not exist afterwards (Prisma's `migrate status/deploy` would create it)."""
    add_migration(repo, ADDITIVE, ADDITIVE_SQL)
    add_migration(repo, DESTRUCTIVE, DESTRUCTIVE_SQL)
    before = state(database_url)
    backups, out = tmp_path / "backups", tmp_path / "dry.json"
    with LockWatch(database_url) as watch:
        done = dry_run(repo, database_url, "--backup-dir", str(backups), "--output", str(out))
    assert watch.dry_run_seen > 0, "the watcher never saw the dry run's session: it proves nothing"
    assert watch.advisory == []

    assert done.returncode == 1, done.stderr
    stdout = done.stdout
    # pending, in the order `migrate deploy` would apply them
    names = [*MIGRATIONS, ADDITIVE, DESTRUCTIVE]
    positions = [stdout.index(f". {name}") for name in names]
    assert positions == sorted(positions) and "pending: 4, in order:" in stdout
    # each statement's verdict, with file:line
    # additive: squawk's warnings only (no lock_timeout), which never stop a run
    assert f"warn  prisma/migrations/{ADDITIVE}/migration.sql:1  ALTER TABLE" in stdout
    assert f"BLOCK prisma/migrations/{DESTRUCTIVE}/migration.sql:2  ALTER TABLE" in stdout
    assert 'drop-column: drops column(s) "workflow_runs"."error"' in stdout
    assert "verdict: a real run would stop at lint: destructive statement(s)" in stdout
    assert "--allow-destructive" in stdout and "expand-contract" in stdout
    assert "lock: free" in stdout and "failed migrations recorded: none" in stdout
    result = json.loads(out.read_text())
    assert result["outcome"] == "would-block" and result["pending"] == names
    dry = result["dry_run"]
    assert dry["read_only"] is True and dry["wrote_nothing"] is True
    verdicts = {m["name"]: [s["verdict"] for s in m["statements"]] for m in dry["migrations"]}
    assert verdicts[ADDITIVE] == ["warn"] and verdicts[DESTRUCTIVE] == ["block"]
    (drop,) = next(m for m in dry["migrations"] if m["name"] == DESTRUCTIVE)["statements"]
    assert (drop["file"], drop["line"]) == (f"prisma/migrations/{DESTRUCTIVE}/migration.sql", 2)
    assert [s["name"] for s in result["steps"]] == ["lock", "status", "lint", "backup", "deploy"]
    assert result["steps"][-1]["status"] == "skipped"
    # named, not written
    assert dry["backup"].startswith(f"{backups}/{database_url.url.dbname}-")
    assert dry["backup"].endswith("-4f3c2b1.dump") and not backups.exists()
    assert_no_secret(database_url, out.read_text())

    assert state(database_url) == before
    assert history(database_url) == []  # not even an empty _prisma_migrations was created

    # with --allow-destructive the same run would proceed: exit 0, the statement "allowed"
    allowed = dry_run(repo, database_url, "--no-backup", "--allow-destructive")
    assert allowed.returncode == 0, allowed.stderr
    assert f"allow prisma/migrations/{DESTRUCTIVE}/migration.sql:2" in allowed.stdout
    assert "a real run would apply 4 migration(s)" in allowed.stdout
    assert "backup: none: --no-backup" in allowed.stdout
    assert state(database_url) == before


def test_additive_only_exits_0_and_changes_nothing_then_the_real_run_agrees(
    repo: Path, database_url: PgDatabase, tmp_path: Path
) -> None:
    assert migrate(repo, database_url, "--no-backup").returncode == 0
    seed(database_url.url)
    add_migration(repo, ADDITIVE, ADDITIVE_SQL)
    before = state(database_url)
    data = rows(database_url.url, "SELECT * FROM users ORDER BY id")
    assert len(history(database_url)) == len(MIGRATIONS)
    backups = tmp_path / "backups"

    with LockWatch(database_url) as watch:
        done = dry_run(repo, database_url, "--backup-dir", str(backups))
    assert watch.dry_run_seen > 0 and watch.advisory == []
    assert done.returncode == 0, done.stderr
    assert "pending: 1, in order:" in done.stdout and f"1. {ADDITIVE}" in done.stdout
    assert "verdict: a real run would apply 1 migration(s)" in done.stdout
    assert f"backup: {backups}/{database_url.url.dbname}-" in done.stdout
    assert "-4f3c2b1.dump (pg_dump " in done.stdout
    assert not backups.exists()
    assert state(database_url) == before
    assert rows(database_url.url, "SELECT * FROM users ORDER BY id") == data
    # no install is needed for a dry run: it never runs Prisma
    assert "install" not in done.stderr

    # the prediction holds: the real run applies exactly that migration
    real = migrate(repo, database_url, "--no-backup")
    assert real.returncode == 0, real.stderr
    assert f"applied {ADDITIVE}" in real.stdout

    # nothing pending now: exit 0, and no backup would be taken
    again = dry_run(repo, database_url, "--backup-dir", str(backups))
    assert again.returncode == 0, again.stderr
    assert "pending: 0" in again.stdout and "a real run would do nothing" in again.stdout
    assert "none: nothing pending" in again.stdout and not backups.exists()


def test_a_recorded_failed_migration_exits_1_naming_it(
    repo: Path, database_url: PgDatabase, tmp_path: Path
) -> None:
    assert migrate(repo, database_url, "--no-backup").returncode == 0
    add_migration(repo, ADDITIVE, ADDITIVE_SQL)
    # what `migrate deploy` leaves when a migration fails half-way: started, never finished
    with psycopg.connect(database_url.url.conninfo()) as conn:
        conn.execute(
            "INSERT INTO _prisma_migrations (id, checksum, migration_name, logs, started_at, "
            "applied_steps_count) VALUES ('f0000000-0000-0000-0000-000000000001', 'x', %s, "
            "'ERROR: could not create unique index', now(), 0)",
            (ADDITIVE,),
        )
    before = state(database_url)
    out = tmp_path / "dry.json"
    done = dry_run(repo, database_url, "--no-backup", "--output", str(out))
    assert done.returncode == 1, done.stderr
    assert f"failed migrations recorded: {ADDITIVE}" in done.stdout
    assert f"has a failed migration from an earlier run: {ADDITIVE}" in done.stdout
    assert f"prisma migrate resolve --rolled-back {ADDITIVE}" in done.stdout
    result = json.loads(out.read_text())
    assert "verdict: a real run would fail: a failed migration is recorded" in done.stdout
    assert result["outcome"] == "would-fail" and result["dry_run"]["failed"] == [ADDITIVE]
    assert state(database_url) == before


def test_a_held_lock_is_reported_with_its_holder_without_waiting(
    repo: Path, database_url: PgDatabase, tmp_path: Path
) -> None:
    key = lock_key("wormhole")
    with psycopg.connect(
        database_url.url.conninfo(), autocommit=True, application_name="release-42 (ci)"
    ) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        pid = holder.info.backend_pid
        out = tmp_path / "dry.json"
        started = time.monotonic()
        done = dry_run(
            repo, database_url, "--no-backup", "--lock-timeout", "600", "--output", str(out)
        )
        elapsed = time.monotonic() - started
        # still held by its holder: the dry run neither took nor freed it
        locks = rows(database_url.url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory'")
    assert locks == [(pid,)]
    assert done.returncode == 0, done.stderr  # a real run would wait, then proceed
    assert elapsed < 120, elapsed  # it did not wait for the lock (600 s)
    assert f"lock: held by pid {pid} (release-42 (ci) from 127.0.0.1, connected " in done.stdout
    lock = json.loads(out.read_text())["dry_run"]["lock"]
    assert lock["free"] is False and lock["holder_pid"] == pid
    assert lock["holder_application"] == "release-42 (ci)" and lock["holder_since"]
    assert lock["key"] == key


def test_in_process_every_step_is_read_only_and_takes_no_lock(
    repo: Path, database_url: PgDatabase, tmp_path: Path
) -> None:
    """`observe` runs after each step with the dry run's transaction still open: from another
    connection, its session holds no advisory lock and has no transaction id (it wrote
    nothing). The same watcher, around the real job's lock, does see a lock: it can fail."""
    add_migration(repo, DESTRUCTIVE, DESTRUCTIVE_SQL)
    service_dir = repo / "api"
    options = MigrateOptions(
        project="wormhole",
        service="api",
        service_dir=service_dir,
        prisma=("prisma",),
        squawk=provision_squawk(default_cache_dir(), "tests"),
        backup_dir=tmp_path / "backups",
        sha=SHA,
    )

    def look() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        with psycopg.connect(database_url.url.conninfo(), autocommit=True) as conn:
            advisory = conn.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
            ).fetchall()
            sessions = conn.execute(
                "SELECT backend_xid::text, state FROM pg_stat_activity WHERE application_name = %s",
                (DRY_RUN_APPLICATION,),
            ).fetchall()
        return advisory, sessions

    seen: dict[str, tuple[list[tuple[object, ...]], list[tuple[object, ...]]]] = {}

    def observe(step: str) -> None:
        seen[step] = look()
        time.sleep(0.2)  # a slow step: the lock, had one been taken, would still be held

    said: list[str] = []
    result = dry_run_migrate(database_url.url, options, said.append, observe=observe)
    assert list(seen) == ["lock", "status", "lint", "backup"]
    for step, (advisory, sessions) in seen.items():
        assert advisory == [], step
        assert sessions == [(None, "idle in transaction")], step
    assert result.outcome == "would-block" and result.dry_run is not None
    assert result.dry_run.read_only and result.dry_run.wrote_nothing
    assert not (tmp_path / "backups").exists()

    # the control: the watcher sees the real job's lock
    with migration_lock(database_url.url, "wormhole", 5, said.append):
        advisory, _ = look()
    assert len(advisory) == 1
    assert_no_secret(database_url, *said)


def test_an_unreachable_database_fails_clearly_without_the_secret(
    repo: Path, database_url: PgDatabase
) -> None:
    u = database_url.url
    wrong = f"postgresql://{u.user}:not-the-password@{u.host}:{u.port}/{u.dbname}"
    done = cli("migrate", "--source", str(repo), "--dry-run", url=wrong)
    assert done.returncode == 1
    assert "migrate dry run failed:" in done.stderr
    assert "cannot connect to 127.0.0.1:" in done.stderr and "check the user" in done.stderr
    assert "not-the-password" not in done.stderr + done.stdout
