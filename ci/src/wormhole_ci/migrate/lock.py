"""The job-wide migration lock: a PostgreSQL advisory lock held on its own connection."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import psycopg

from wormhole_ci.errors import MigrateError
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.secretref import redact

APPLICATION_NAME = "wormhole-ci migrate"
POLL_SECONDS = 0.5
SAY_EVERY = 10.0


def lock_key(project: str) -> int:
    """A stable signed 64-bit key per project: releases of one project serialise, other
    projects sharing the server do not (and Prisma's own key 72707369 is never used)."""
    digest = hashlib.sha256(f"wormhole-ci:migrate:{project}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class Held:
    """What holding the lock cost: how long we waited, and whether anyone was ahead."""

    waited: float = 0.0
    contended: bool = False


def connect(
    url: DatabaseUrl,
    what: str,
    *,
    application_name: str = APPLICATION_NAME,
    autocommit: bool = True,
) -> psycopg.Connection[tuple[object, ...]]:
    """A psycopg connection with a bounded connect timeout; errors say what to check."""
    try:
        return psycopg.connect(
            url.conninfo(), autocommit=autocommit, application_name=application_name
        )
    except psycopg.OperationalError as exc:
        detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "", *url.secrets)
        hint = (
            "check the user and the password secret"
            if "password" in detail or "authentication" in detail
            else "check the host, the port and that the database accepts connections"
        )
        raise MigrateError(f"{what}: cannot connect to {url.display}: {detail}; {hint}") from None


@dataclass(frozen=True)
class LockHolder:
    """The session holding a project's migration lock, as pg_locks/pg_stat_activity show it
    (another role's application, address and start are hidden without pg_read_all_stats)."""

    pid: int
    application_name: str | None
    client_addr: str | None
    since: dt.datetime | None
    """When that session connected (a session lock is held from then at the latest)."""

    def describe(self) -> str:
        since = self.since
        when = f", connected {since:%Y-%m-%d %H:%M:%S %Z}" if since is not None else ""
        origin = f" from {self.client_addr}" if self.client_addr else ""
        return f"pid {self.pid} ({self.application_name or 'unknown application'}{origin}{when})"


def lock_holder(conn: psycopg.Connection[tuple[object, ...]], key: int) -> LockHolder | None:
    """Who holds the advisory lock `key` (read from pg_locks; never takes or waits for it)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = conn.execute(
        "SELECT a.pid, a.application_name, a.backend_start, host(a.client_addr) "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
        "AND l.objsubid = 1",
        (unsigned >> 32, unsigned & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return None
    pid, app, since, addr = row
    return LockHolder(
        pid=int(str(pid)),
        application_name=str(app) if app else None,
        client_addr=str(addr) if addr else None,
        since=since if isinstance(since, dt.datetime) else None,
    )


def _holder(conn: psycopg.Connection[tuple[object, ...]], key: int) -> str:
    """Who holds the lock, for the waiting message (pid, application, since)."""
    holder = lock_holder(conn, key)
    return "a session that just released it" if holder is None else holder.describe()


@contextlib.contextmanager
def migration_lock(
    url: DatabaseUrl,
    project: str,
    timeout: float,
    say: Callable[[str], None],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Generator[Held]:
    """Hold the project's migration lock for the whole block, waiting at most `timeout` s.

    The lock lives on a connection of its own (a session lock survives only on a direct
    connection, never through a transaction pooler) and is released on exit — and by the
    server when the connection drops, so a killed job never leaves it behind.
    """
    key = lock_key(project)
    conn = connect(url, "migration lock")
    held = Held()
    try:
        started = clock()
        next_say = started
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row is not None and row[0] is True:
                break
            now = clock()
            held.contended = True
            if now - started >= timeout:
                raise MigrateError(
                    f"gave up after {timeout:.0f} s waiting for the migration lock on "
                    f"{url.display}: held by {_holder(conn, key)}. Another release is "
                    "migrating this database; let it finish and run again, or raise --lock-timeout"
                )
            if now >= next_say:
                say(
                    f"waiting for the migration lock on {url.display}: held by "
                    f"{_holder(conn, key)} (waited {now - started:.0f} s of {timeout:.0f} s)"
                )
                next_say = now + SAY_EVERY
            time.sleep(POLL_SECONDS)
        held.waited = clock() - started
        if held.contended:
            say(f"migration lock acquired on {url.display} after waiting {held.waited:.1f} s")
        yield held
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock_all()")
        conn.close()
