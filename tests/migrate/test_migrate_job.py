"""`wormhole-ci migrate` and `restore` for real, on a password-protected loopback PostgreSQL.

The example's Prisma and real squawk: concurrency, gates, backups, failures, and no secret
in any output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PgDatabase, copy_example
from wormhole_ci.migrate.dburl import DatabaseUrl

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
MIGRATIONS = ("20260101000000_init", "20260201000000_workflow_runs")
API_MIGRATIONS = Path("api") / "prisma" / "migrations"


def cli(*args: str, url: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wormhole_ci", *args, "--database-url", "env:DATABASE_URL"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**_env(), "DATABASE_URL": url},
        check=False,
    )


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}


def migrate(repo: Path, db: PgDatabase, *extra: str) -> subprocess.CompletedProcess[str]:
    done = cli("migrate", "--source", str(repo), "--tag", "4f3c2b1" + "0" * 33, *extra, url=db.raw)
    assert_no_secret(db, done.stdout, done.stderr)
    return done


def assert_no_secret(db: PgDatabase, *texts: str) -> None:
    for text in texts:
        assert db.password not in text and db.raw not in text
        assert db.url.reveal() not in text


def rows(url: DatabaseUrl, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url.conninfo()) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def applied(url: DatabaseUrl) -> list[tuple[object, ...]]:
    return rows(
        url,
        "SELECT migration_name, count(*) FROM _prisma_migrations "
        "WHERE finished_at IS NOT NULL GROUP BY 1 ORDER BY 1",
    )


def snapshot(url: DatabaseUrl) -> dict[str, object]:
    """Schema (columns, indexes, constraints, enums) and every row of the example's tables."""
    out: dict[str, object] = {
        "columns": rows(
            url,
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
        ),
        "indexes": rows(
            url, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ),
        "constraints": rows(
            url,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace ORDER BY 1",
        ),
        "enums": rows(url, "SELECT enumlabel FROM pg_enum ORDER BY enumsortorder"),
    }
    for table in ("tenants", "users", "workflows", "workflow_runs", "_prisma_migrations"):
        columns = "migration_name, checksum" if table == "_prisma_migrations" else "*"
        out[table] = rows(url, f"SELECT {columns} FROM {table} ORDER BY 1")
    return out


def seed(url: DatabaseUrl) -> None:
    with psycopg.connect(url.conninfo()) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name, slug) VALUES "
            "('00000000-0000-0000-0000-000000000001', 'Acme', 'acme')"
        )
        conn.execute(
            "INSERT INTO users (id, tenant_id, email, display_name) VALUES "
            "('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000001', 'a@acme.test', 'Sam'),"
            "('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-000000000001', 'b@acme.test', 'Sam')"
        )


def add_migration(repo: Path, name: str, sql: str) -> Path:
    folder = repo / API_MIGRATIONS / name
    folder.mkdir()
    (folder / "migration.sql").write_text(sql)
    return folder


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh copy of the example (its api is installed by the first job, from the pnpm store)."""
    return copy_example(tmp_path)


def test_fresh_database_then_nothing_pending(
    repo: Path, database_url: PgDatabase, tmp_path: Path
) -> None:
    out = tmp_path / "first.json"
    first = migrate(repo, database_url, "--backup-dir", str(tmp_path / "b"), "--output", str(out))
    assert first.returncode == 0, first.stderr
    assert f"applied {', '.join(MIGRATIONS)}" in first.stdout
    assert applied(database_url.url) == [(m, 1) for m in MIGRATIONS]
    result = json.loads(out.read_text())
    assert result["outcome"] == "applied" and result["applied"] == list(MIGRATIONS)
    assert [s["name"] for s in result["steps"]] == [
        "lock",
        "status",
        "lint",
        "backup",
        "deploy",
        "verify",
    ]
    (backup,) = (tmp_path / "b").iterdir()
    assert backup.name.startswith(f"{database_url.url.dbname}-") and backup.name.endswith(
        "-4f3c2b1.dump"
    )
    assert_no_secret(database_url, out.read_text(), backup.name)

    before = snapshot(database_url.url)
    second = migrate(repo, database_url, "--backup-dir", str(tmp_path / "b2"))
    assert second.returncode == 0, second.stderr
    assert "nothing to migrate" in second.stdout
    assert snapshot(database_url.url) == before
    assert not (tmp_path / "b2").exists()  # nothing pending: not even a backup


def test_five_jobs_at_once_apply_each_migration_exactly_once(
    repo: Path, database_url: PgDatabase, tmp_path: Path
) -> None:
    # Install once, so the five jobs only contend for the database lock.
    warm = migrate(repo, database_url, "--no-backup")
    assert warm.returncode == 0, warm.stderr
    add_migration(
        repo, "20260301000000_add_nickname", 'ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n'
    )

    def one(index: int) -> subprocess.CompletedProcess[str]:
        return migrate(repo, database_url, "--backup-dir", str(tmp_path / f"b{index}"))

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(one, range(5)))
    for done in results:
        assert done.returncode == 0, done.stderr
    assert applied(database_url.url) == [
        (m, 1) for m in (*MIGRATIONS, "20260301000000_add_nickname")
    ]
    appliers = [d for d in results if "applied 20260301000000_add_nickname" in d.stdout]
    assert len(appliers) == 1
    assert sum("nothing to migrate" in d.stdout for d in results) == 4
    waited = [
        d
        for d in results
        if "waiting for the migration lock" in d.stderr or "after waiting" in d.stderr
    ]
    assert waited, [d.stderr for d in results]
    assert rows(database_url.url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [
        (0,)
    ]


def test_destructive_migration_is_blocked_until_allowed(
    repo: Path, database_url: PgDatabase
) -> None:
    add_migration(
        repo,
        "20260301000000_drop_error",
        '-- the runs keep their status only\nALTER TABLE "workflow_runs" DROP COLUMN "error";\n',
    )
    blocked = migrate(repo, database_url, "--no-backup")
    assert blocked.returncode == 1
    assert "20260301000000_drop_error/migration.sql:2" in blocked.stderr
    assert 'DROP COLUMN "error"' in blocked.stderr
    assert "--allow-destructive" in blocked.stderr and "expand-contract" in blocked.stderr
    # blocked before anything was applied, even the harmless pending migrations
    assert rows(database_url.url, "SELECT to_regclass('_prisma_migrations') IS NULL") == [(True,)]

    allowed = migrate(repo, database_url, "--no-backup", "--allow-destructive")
    assert allowed.returncode == 0, allowed.stderr
    assert ("20260301000000_drop_error", 1) in applied(database_url.url)


def test_backup_restores_into_a_fresh_database(
    repo: Path, make_database: Callable[[], PgDatabase], tmp_path: Path
) -> None:
    source, target = make_database(), make_database()
    assert migrate(repo, source, "--no-backup").returncode == 0
    seed(source.url)
    before = snapshot(source.url)
    add_migration(
        repo, "20260301000000_add_nickname", 'ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n'
    )
    done = migrate(repo, source, "--backup-dir", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    (backup,) = (tmp_path / "b").iterdir()

    # the backup holds the database as it was just before the deploy
    restored = cli("restore", "--backup", str(backup), "--yes", url=target.raw)
    assert restored.returncode == 0, restored.stderr
    assert_no_secret(target, restored.stdout, restored.stderr)
    assert snapshot(target.url) == before
    refused = cli("restore", "--backup", str(backup), url=target.raw)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr


def test_a_migration_failing_half_way_is_reported_and_recoverable(
    repo: Path, database_url: PgDatabase, tmp_path: Path
) -> None:
    assert migrate(repo, database_url, "--no-backup").returncode == 0
    seed(database_url.url)  # two users named "Sam"
    name = "20260301000000_unique_display_name"
    folder = add_migration(
        repo,
        name,
        'ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n'
        'CREATE UNIQUE INDEX "users_display_name_key" ON "users"("display_name");\n',
    )
    failed = migrate(repo, database_url, "--backup-dir", str(tmp_path / "b"))
    assert failed.returncode == 1
    assert f"at migration {name}" in failed.stderr
    assert "prisma migrate resolve --rolled-back " + name in failed.stderr
    assert "wormhole-ci restore --backup " in failed.stderr
    (backup,) = (tmp_path / "b").iterdir()
    assert str(backup) in failed.stderr

    # a rerun refuses while the failed migration is recorded
    again = migrate(repo, database_url, "--no-backup")
    assert (
        again.returncode == 1
        and f"has a failed migration from an earlier run: {name}" in again.stderr
    )

    # recovery as printed: restore, fix the migration, run again
    assert cli("restore", "--backup", str(backup), "--yes", url=database_url.raw).returncode == 0
    (folder / "migration.sql").write_text(
        'ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n'
        'CREATE INDEX "users_display_name_idx" ON "users"("display_name");\n'
    )
    fixed = migrate(repo, database_url, "--no-backup")
    assert fixed.returncode == 0, fixed.stderr
    assert (name, 1) in applied(database_url.url)
    assert rows(database_url.url, "SELECT count(*) FROM users") == [(2,)]


def test_unreachable_and_wrong_password_fail_fast_and_leave_nothing(
    repo: Path, database_url: PgDatabase
) -> None:
    u = database_url.url
    wrong = f"postgresql://{u.user}:not-the-password@{u.host}:{u.port}/{u.dbname}"
    cases = {
        "unreachable": "postgresql://wormhole:pw-unreach4ble@127.0.0.1:1/wormhole",
        "wrong password": wrong,
    }
    for case, url in cases.items():
        started = time.monotonic()
        done = cli("migrate", "--source", str(repo), "--no-backup", url=url)
        elapsed = time.monotonic() - started
        assert done.returncode == 1, (case, done.stderr)
        assert "cannot connect to 127.0.0.1:" in done.stderr, (case, done.stderr)
        assert (
            url not in done.stderr
            and "pw-unreach4ble" not in done.stderr
            and "not-the-password" not in done.stderr
        )
        assert elapsed < 300, (case, elapsed)  # bounded by the connect timeout, not a hang
    assert rows(database_url.url, "SELECT to_regclass('_prisma_migrations') IS NULL") == [(True,)]
    assert rows(database_url.url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [
        (0,)
    ]


def test_a_literal_url_is_refused(repo: Path, database_url: PgDatabase) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wormhole_ci",
            "migrate",
            "--source",
            str(repo),
            "--database-url",
            database_url.raw,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "expected a secret reference env:NAME or file:PATH" in done.stderr
    assert_no_secret(database_url, done.stdout, done.stderr)
