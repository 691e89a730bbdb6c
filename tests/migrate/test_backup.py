"""Backups: pg_dump/pg_restore round trips on a real password-protected PostgreSQL, and refusals."""

from __future__ import annotations

import re
import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from tests.conftest import PgDatabase
from wormhole_ci.errors import MigrateError
from wormhole_ci.migrate.backup import (
    ServerInfo,
    _major,
    _major_text,
    _version_num,
    backup_name,
    dump,
    find_client,
    restore,
)
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.pgtemp import TempPostgres

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SHA = "AbCdEf0123456789abcdef0123456789abcdef01"

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE tenants (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    settings jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE users (
    id uuid PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email text NOT NULL,
    mood mood NOT NULL DEFAULT 'ok',
    score numeric(10, 2),
    active boolean NOT NULL DEFAULT true,
    avatar bytea,
    tags text[],
    CHECK (score IS NULL OR score >= 0)
);
CREATE UNIQUE INDEX users_tenant_email_key ON users (tenant_id, lower(email));
CREATE INDEX users_mood_idx ON users (mood) WHERE active;
INSERT INTO tenants (name, created_at, settings) VALUES
    ('acme', '2026-01-01 10:00:00+00', '{"plan": "pro", "seats": 5}'),
    ('globex', '2026-01-01 11:30:00+00', '{}'),
    ('o''brien & sons', '2026-01-02 00:00:00+00', '{"quote": "it''s"}');
INSERT INTO users VALUES
    ('00000000-0000-0000-0000-000000000001', 1, 'Ann@Acme.test', 'happy', 12.50, true,
     '\\x00ff10', '{admin,"with space"}'),
    ('00000000-0000-0000-0000-000000000002', 1, 'bob@acme.test', 'sad', NULL, false, NULL, '{}'),
    ('00000000-0000-0000-0000-000000000003', 2, 'eve@globex.test', 'ok', 0, true, '', NULL);
"""

_COLUMNS = """
SELECT table_name, column_name, ordinal_position, data_type, udt_name, is_nullable,
       column_default, numeric_precision, numeric_scale
FROM information_schema.columns WHERE table_schema = 'public'
ORDER BY table_name, ordinal_position
"""
_INDEXES = (
    "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 2"
)
_CONSTRAINTS = """
SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2
"""
_ENUM = "SELECT enumlabel FROM pg_enum WHERE enumtypid = 'mood'::regtype ORDER BY enumsortorder"

Snapshot = dict[str, list[tuple[object, ...]]]


def connect(db: PgDatabase) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(db.raw, autocommit=True, connect_timeout=10)


def populate(db: PgDatabase) -> None:
    with connect(db) as conn:
        conn.execute(SCHEMA)


def snapshot(db: PgDatabase) -> Snapshot:
    """Schema (columns, indexes, constraints, enum) and every row, comparable across databases."""
    with connect(db) as conn:
        return {
            "columns": conn.execute(_COLUMNS).fetchall(),
            "indexes": conn.execute(_INDEXES).fetchall(),
            "constraints": conn.execute(_CONSTRAINTS).fetchall(),
            "enum": conn.execute(_ENUM).fetchall(),
            "tenants": conn.execute("SELECT * FROM tenants ORDER BY id").fetchall(),
            "users": conn.execute("SELECT * FROM users ORDER BY id").fetchall(),
            "sequence": conn.execute("SELECT last_value, is_called FROM tenants_id_seq").fetchall(),
        }


def assert_secret_free(text: str, db: PgDatabase) -> None:
    for secret in (db.password, quote(db.password, safe=""), db.raw):
        assert secret not in text


# ---------------------------------------------------------------- names (no database needed)


def test_backup_name_is_db_time_and_short_sha_only() -> None:
    url = DatabaseUrl.parse("postgresql://admin:hunter2@db.internal.example:6543/app")
    assert backup_name(url, SHA, NOW) == "app-20260102T030405Z-abcdef0.dump"
    assert backup_name(url, None, NOW) == "app-20260102T030405Z-nosha.dump"
    assert backup_name(url, "", NOW) == "app-20260102T030405Z-nosha.dump"
    for name in (backup_name(url, SHA, NOW), backup_name(url, None, NOW)):
        assert not any(s in name for s in ("admin", "hunter2", "db.internal", "6543"))
    # Another zone is converted to UTC; a naive time is ambiguous and refused.
    plus2 = NOW.astimezone(timezone(timedelta(hours=2)))
    assert backup_name(url, SHA, plus2) == "app-20260102T030405Z-abcdef0.dump"
    with pytest.raises(ValueError, match=r"timezone-aware"):
        backup_name(url, SHA, NOW.replace(tzinfo=None))


def test_backup_name_sanitises_the_database_name_and_checks_the_sha() -> None:
    url = DatabaseUrl.parse("postgresql://u:p@localhost/..%2Fetc%2Fpass wd")
    assert backup_name(url, None, NOW) == "_etc_pass_wd-20260102T030405Z-nosha.dump"
    with pytest.raises(MigrateError, match=r"'HEAD' is not a commit SHA"):
        backup_name(url, "HEAD", NOW)


def test_server_version_numbers() -> None:
    assert _version_num(("15", "18", None)) == 150018
    assert _version_num(("9", "6", "24")) == 90624
    assert _major(90624) < _major(100001) < _major(150018) < _major(170000)
    assert _major(150000) == _major(150018)
    assert (_major_text(90624), _major_text(150018)) == ("9.6", "15")


# ---------------------------------------------------------------- refusals before any connection

UNREACHABLE = "postgresql://someone:s3cret-pw%40x@127.0.0.1:1/app"


def test_a_missing_backup_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrateError, match=r"backup .*/nope\.dump does not exist"):
        restore(DatabaseUrl.parse(UNREACHABLE), tmp_path / "nope.dump")


@pytest.mark.parametrize("content", [b"", b"PGDM", b"-- PostgreSQL database dump\n", b"\x1f\x8b"])
def test_a_file_that_is_not_a_custom_format_dump_is_refused(tmp_path: Path, content: bytes) -> None:
    garbage = tmp_path / "app.dump"
    garbage.write_bytes(content)
    with pytest.raises(MigrateError, match=r"is not a pg_dump custom-format archive"):
        restore(DatabaseUrl.parse(UNREACHABLE), garbage)


# ---------------------------------------------------------------- against the real server

pg = pytest.mark.postgres


@pg
def test_dump_then_restore_into_a_fresh_database_is_identical(
    database_url: PgDatabase, make_database: Callable[[], PgDatabase], tmp_path: Path
) -> None:
    populate(database_url)
    before = snapshot(database_url)
    out = tmp_path / "backups"  # created on demand
    backup = dump(database_url.url, out, SHA, now=NOW)

    assert backup.path == out / f"{database_url.url.dbname}-20260102T030405Z-abcdef0.dump"
    assert backup.path.read_bytes()[:5] == b"PGDMP"
    assert backup.size == backup.path.stat().st_size > 0
    assert stat.S_IMODE(backup.path.stat().st_mode) == 0o600  # the data is in it
    assert [p.name for p in out.iterdir()] == [backup.path.name]
    assert re.match(r"\d+\.\d+", backup.server_version)
    assert re.fullmatch(r"\d+\.\d+", backup.dump_version)
    assert 0 < backup.seconds < 60

    target = make_database()  # another role owns it: --no-owner makes it the owner
    restored = restore(target.url, backup.path)
    assert restored.target == target.url.display and restored.backup == backup.path
    assert snapshot(target) == before
    with connect(target) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace"
        ).fetchall()
    assert owners == [(target.role,)]


@pg
def test_restore_over_a_modified_database_brings_it_back(
    database_url: PgDatabase, tmp_path: Path
) -> None:
    populate(database_url)
    before = snapshot(database_url)
    backup = dump(database_url.url, tmp_path, None)
    with connect(database_url) as conn:
        conn.execute("DELETE FROM users WHERE mood = 'sad'")
        conn.execute("UPDATE tenants SET name = 'renamed', settings = '{\"x\": 1}' WHERE id = 1")
        conn.execute("INSERT INTO tenants (name) VALUES ('new one')")
        conn.execute("ALTER TABLE users ADD COLUMN nickname text")
        conn.execute("ALTER TABLE users DROP CONSTRAINT users_score_check")
        conn.execute("DROP INDEX users_mood_idx")
        conn.execute("ALTER TYPE mood ADD VALUE 'angry'")
    assert snapshot(database_url) != before

    restore(database_url.url, backup.path)
    assert snapshot(database_url) == before


@pg
def test_a_failed_restore_leaves_the_database_as_it_was(
    database_url: PgDatabase, make_database: Callable[[], PgDatabase], tmp_path: Path
) -> None:
    populate(database_url)
    backup = dump(database_url.url, tmp_path, None)
    target = make_database()
    with connect(target) as conn:
        # Same name, other shape: the dump's CREATE TABLE succeeds after --clean drops it,
        # but a view depending on it makes the DROP fail: all or nothing.
        conn.execute("CREATE TABLE users (id int); INSERT INTO users VALUES (42)")
        conn.execute("CREATE VIEW keep AS SELECT id FROM users")
    with pytest.raises(MigrateError, match=r"pg_restore failed: .*(depend|cannot drop)") as info:
        restore(target.url, backup.path)
    assert_secret_free(str(info.value), target)
    with connect(target) as conn:
        assert conn.execute("SELECT * FROM keep").fetchall() == [(42,)]
        assert conn.execute("SELECT to_regclass('tenants')").fetchone() == (None,)


@pg
@pytest.mark.parametrize("operation", ["dump", "restore"])
def test_a_wrong_password_fails_fast_without_printing_it(
    database_url: PgDatabase, tmp_path: Path, operation: str
) -> None:
    good = database_url.url
    wrong_raw = database_url.raw.replace(quote(database_url.password, safe=""), "Wr0ng%40pw")
    wrong = DatabaseUrl.parse(wrong_raw)
    assert wrong.host == good.host and wrong.user == good.user
    populate(database_url)
    backup = dump(good, tmp_path / "ok", None)
    run: Callable[[], object] = (
        (lambda: dump(wrong, tmp_path / "out", None))
        if operation == "dump"
        else (lambda: restore(wrong, backup.path))
    )
    started = time.monotonic()
    with pytest.raises(
        MigrateError, match=r"cannot connect: .*password authentication failed"
    ) as info:
        run()
    assert time.monotonic() - started < 15
    message = str(info.value)
    assert good.display in message
    assert_secret_free(message, database_url)
    assert "Wr0ng" not in message and wrong_raw not in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_unreachable_server_fails_fast_without_the_url(tmp_path: Path) -> None:
    url = DatabaseUrl.parse(UNREACHABLE)
    started = time.monotonic()
    with pytest.raises(
        MigrateError, match=r"^backup of 127\.0\.0\.1:1/app: cannot connect: "
    ) as info:
        dump(url, tmp_path, SHA)
    assert time.monotonic() - started < 15
    assert "s3cret" not in str(info.value) and "someone:" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pg
def test_pg_dump_failing_midway_leaves_no_partial_file(
    pg_server: TempPostgres, database_url: PgDatabase, tmp_path: Path
) -> None:
    populate(database_url)
    # A table the URL's role may not read: pg_dump connects, starts writing, then fails.
    with psycopg.connect(
        pg_server.conninfo(database_url.url.dbname), autocommit=True, connect_timeout=10
    ) as conn:
        conn.execute(
            "CREATE TABLE zz_secret_audit (id int); INSERT INTO zz_secret_audit VALUES (1)"
        )
    with pytest.raises(MigrateError, match=r"pg_dump failed: .*permission denied") as info:
        dump(database_url.url, tmp_path, SHA)
    assert_secret_free(str(info.value), database_url)
    assert list(tmp_path.iterdir()) == []


@pg
def test_pg_dump_past_its_timeout_is_stopped_and_leaves_no_file(
    database_url: PgDatabase, tmp_path: Path
) -> None:
    populate(database_url)
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:  # what a running migration does to a table
        with connect(database_url) as conn, conn.transaction():
            conn.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        with pytest.raises(MigrateError, match=r"pg_dump did not finish within 2 s"):
            dump(database_url.url, tmp_path, SHA, timeout=2)
        assert time.monotonic() - started < 10
    finally:
        release.set()
        holder.join(30)
    assert list(tmp_path.iterdir()) == []


@pg
def test_an_existing_backup_is_never_overwritten(database_url: PgDatabase, tmp_path: Path) -> None:
    populate(database_url)
    first = dump(database_url.url, tmp_path, SHA, now=NOW)
    content = first.path.read_bytes()
    with pytest.raises(MigrateError, match=r"already exists; not overwriting a backup"):
        dump(database_url.url, tmp_path, SHA, now=NOW)
    assert first.path.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]


@pg
def test_a_pg_dump_older_than_the_server_is_refused_with_the_fix(pg_bindir: Path) -> None:
    newer = ServerInfo("99.1 (future)", 990001)
    with pytest.raises(MigrateError) as info:
        find_client("pg_dump", newer, "backup of h:1/db")
    message = str(info.value)
    assert re.search(r"pg_dump \d+\.\d+ \(.*pg_dump\) is older than the server", message)
    assert "PostgreSQL 99.1 (future)" in message
    assert message.endswith("apt-get install postgresql-client-99")
    client = find_client("pg_dump", ServerInfo("9.6.24", 90624), "backup")
    assert client.path.name == "pg_dump" and _major(client.version_num) > (9, 6)
