"""The per-PR database on the preview PostgreSQL: its name, creation, and drop."""

from __future__ import annotations

import re
from collections.abc import Generator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.preview.errors import PreviewError

_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated
_UNSAFE = re.compile(r"[^a-z0-9_]+")
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A session-level advisory lock on the preview server, held while a PR's database URL is
# set and its deployments run: Coolify keeps one preview value per application (not per
# PR), so two PRs setting it at once could deploy each other's URL.
PREVIEW_LOCK_KEY = 0x77_70_72_76  # "wprv"


def database_name(project: str, pr: int) -> str:
    """`<project>_pr_<N>`: lower-case letters, digits and `_` only, at most 63 characters.

    The project part is folded (anything else becomes `_`) and shortened so the PR number is
    never the part PostgreSQL truncates; the result is still quoted as an identifier."""
    if isinstance(pr, bool) or pr <= 0:
        raise PreviewError(f"preview: the pull request number must be positive (got {pr!r})")
    suffix = f"_pr_{pr}"
    stem = _UNSAFE.sub("_", project.lower()).strip("_") or "project"
    if stem[0].isdigit():
        stem = f"p_{stem}"
    name = stem[: _MAX_IDENTIFIER - len(suffix)] + suffix
    if not _NAME_RE.match(name):  # unreachable by construction; the guard keeps it that way
        raise PreviewError(f"preview: derived database name {name!r} is not a safe identifier")
    return name


class PreviewDatabases:
    """Creates and drops PR databases on the server `admin` points at (its role needs CREATEDB).

    Statements run on the admin URL's own database; the names are passed as quoted
    identifiers, never formatted into SQL text."""

    def __init__(self, admin: DatabaseUrl, *, lock_timeout: float = 600.0) -> None:
        self.admin = admin
        self.lock_timeout = lock_timeout

    def url(self, name: str) -> DatabaseUrl:
        """The PR database's URL: the same server and credentials, the PR's database."""
        return self.admin.with_database(name)

    def exists(self, name: str) -> bool:
        with self._connect() as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            return row is not None

    def create(self, name: str) -> bool:
        """Create the database unless it exists; True when this call created it."""
        with self._connect() as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if found:
                return False
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                return False  # another run created it between the check and the CREATE
            except psycopg.Error as exc:
                raise PreviewError(
                    f"preview database {name} on {self.admin.display}: CREATE DATABASE failed "
                    f"({type(exc).__name__}); the preview role needs CREATEDB"
                ) from None
            return True

    def drop(self, name: str) -> bool:
        """Drop the database (disconnecting its sessions); True when it existed."""
        with self._connect() as conn:
            existed = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            # WITH (FORCE) (PostgreSQL 13+): the preview apps still hold connections to it.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            return existed is not None

    @contextmanager
    def serialised(self) -> Generator[None]:
        """Hold the preview lock (see PREVIEW_LOCK_KEY), waiting at most `lock_timeout`."""
        with self._connect() as conn:
            conn.execute(
                sql.SQL("SET lock_timeout = {}").format(
                    sql.Literal(f"{int(self.lock_timeout * 1000)}ms")
                )
            )
            try:
                # pg_advisory_lock honours lock_timeout: the wait is bounded.
                conn.execute("SELECT pg_advisory_lock(%s)", (PREVIEW_LOCK_KEY,))
            except psycopg.errors.LockNotAvailable:
                raise PreviewError(
                    f"preview: another preview deploy held the lock on {self.admin.display} for "
                    f"{self.lock_timeout:g} s; retry when it has finished"
                ) from None
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (PREVIEW_LOCK_KEY,))

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(self.admin.conninfo(), autocommit=True)
        except psycopg.Error as exc:
            raise PreviewError(
                f"preview PostgreSQL {self.admin.display}: cannot connect "
                f"({type(exc).__name__}); check the preview database URL secret and that the "
                "server is reachable"
            ) from None
