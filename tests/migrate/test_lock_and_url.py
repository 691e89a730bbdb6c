"""The migration lock on a real PostgreSQL (waiting, timing out, released) and DatabaseUrl."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import PgDatabase
from wormhole_ci.errors import MigrateError
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.migrate.lock import APPLICATION_NAME, lock_key, migration_lock


def advisory_locks(db: PgDatabase) -> int:
    with psycopg.connect(db.url.conninfo()) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.postgres
def test_lock_waits_names_the_holder_then_times_out(database_url: PgDatabase) -> None:
    said: list[str] = []
    with migration_lock(database_url.url, "wormhole", 5, said.append) as held:
        assert not held.contended and advisory_locks(database_url) == 1
        with (
            pytest.raises(MigrateError) as info,
            migration_lock(database_url.url, "wormhole", 1.0, said.append),
        ):
            pytest.fail("a second holder must not get the lock")
        message = str(info.value)
        assert message.startswith("gave up after 1 s waiting for the migration lock on 127.0.0.1:")
        assert f"({APPLICATION_NAME}" in message and "raise --lock-timeout" in message
        assert any(line.startswith("waiting for the migration lock") for line in said)
        # another project on the same server is not serialised with this one
        with migration_lock(database_url.url, "other-project", 1.0, said.append) as other:
            assert not other.contended
    assert advisory_locks(database_url) == 0  # released, nothing left behind
    for text in (*said, message):
        assert database_url.password not in text


@pytest.mark.postgres
def test_lock_is_released_when_the_block_fails(database_url: PgDatabase) -> None:
    with pytest.raises(RuntimeError), migration_lock(database_url.url, "wormhole", 5, print):
        raise RuntimeError("job failed")
    assert advisory_locks(database_url) == 0


def test_lock_key_is_stable_per_project_and_not_prismas() -> None:
    assert lock_key("wormhole") == lock_key("wormhole") != lock_key("other")
    assert -(2**63) <= lock_key("wormhole") < 2**63 and lock_key("wormhole") != 72707369


def test_database_url_never_shows_credentials() -> None:
    raw = "postgresql://app:p%40ss%2Fw0rd@db.example.internal:6543/wormhole?sslmode=require"
    url = DatabaseUrl.parse(raw)
    assert url.display == "db.example.internal:6543/wormhole" == str(url)
    assert "p@ss/w0rd" not in repr(url) and "app" not in url.display
    assert url.libpq_env()["PGPASSWORD"] == "p@ss/w0rd"
    assert url.libpq_env()["PGSSLMODE"] == "require"
    assert set(url.secrets) == {raw, "p@ss/w0rd"}
    assert url.with_database("restore_target").reveal().endswith("/restore_target?sslmode=require")


@pytest.mark.parametrize(
    "raw",
    [
        "mysql://u:p@h/db",
        "postgresql://u:p@/db",
        "postgresql://u:p@host",
        "postgresql://h:99999/db",
    ],
)
def test_bad_database_urls_are_refused_without_echoing_them(raw: str) -> None:
    with pytest.raises(MigrateError) as info:
        DatabaseUrl.parse(raw)
    assert raw not in str(info.value) and ":p@" not in str(info.value)
