"""Backups before a migration: pg_dump custom-format archives, and restoring one into a database."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from wormhole_ci.errors import MigrateError
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.pgtemp import find_bindir
from wormhole_ci.secretref import redact

MAGIC = b"PGDMP"
"""The first bytes of every pg_dump custom-format archive."""
_VERSION_TIMEOUT = 10
# pg_dump takes ACCESS SHARE locks up front; behind a migration's exclusive lock it would
# otherwise wait until the overall timeout. Milliseconds: every pg_dump version reads those.
_LOCK_WAIT_MS = 120_000
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(?:\.(\d+))?")


@dataclass(frozen=True)
class ServerInfo:
    """What the server reports about itself (`SHOW server_version[_num]`)."""

    version: str
    version_num: int


@dataclass(frozen=True)
class PgClient:
    """A pg_dump or pg_restore binary and its version."""

    path: Path
    version: str
    version_num: int


@dataclass(frozen=True)
class Backup:
    """A finished dump: a complete custom-format archive at `path` (mode 0600)."""

    path: Path
    size: int
    seconds: float
    server_version: str
    dump_version: str


@dataclass(frozen=True)
class Restored:
    """A finished restore of `backup` into the database `target` (host:port/db) names."""

    backup: Path
    target: str
    seconds: float
    server_version: str
    restore_version: str


def backup_name(url: DatabaseUrl, sha: str | None, now: datetime) -> str:
    """`<db>-<YYYYmmddTHHMMSSZ>-<sha7 or nosha>.dump`; the database name is the only part of
    the URL in it (never host, user or password), reduced to file-name-safe characters."""
    if now.tzinfo is None:
        raise ValueError("backup_name: `now` must be timezone-aware (datetime.now(UTC))")
    if sha and not _SHA.match(sha):
        raise MigrateError(f"backup: {sha[:64]!r} is not a commit SHA (7-64 hex digits)")
    db = _UNSAFE_NAME.sub("_", url.dbname).lstrip(".") or "db"
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{db}-{stamp}-{sha[:7].lower() if sha else 'nosha'}.dump"


def dump(
    url: DatabaseUrl,
    out_dir: Path,
    sha: str | None,
    *,
    now: datetime | None = None,
    timeout: float = 1800,
) -> Backup:
    """Dump the database `url` names to `out_dir/backup_name(...)` with pg_dump.

    Custom format, with owners and privileges kept in the archive: `--no-owner` means
    nothing for an archive at dump time, and restore decides (it passes `--no-owner`).
    pg_dump writes to a hidden temporary name that is renamed only once it succeeded, so
    a failure or timeout never leaves a partial `.dump`. An existing backup of the same
    name (same database, second and commit) is never overwritten.
    """
    started = time.monotonic()
    what = f"backup of {url.display}"
    server = server_info(url, what)
    client = find_client("pg_dump", server, what)
    name = backup_name(url, sha, now or datetime.now(UTC))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        # mkstemp: private (0600) because the archive holds all of the data.
        fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".partial")
    except OSError as exc:
        raise MigrateError(f"{what}: cannot write to {out_dir}: {exc.strerror}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    final = out_dir / name
    try:
        _run_tool(
            url,
            [
                str(client.path),
                "--format=custom",
                "--no-password",
                f"--lock-wait-timeout={_LOCK_WAIT_MS}",
                f"--file={tmp}",
                f"--dbname={_dbname_conninfo(url.dbname)}",
            ],
            what,
            timeout,
        )
        with tmp.open("rb") as archive:
            if archive.read(len(MAGIC)) != MAGIC:
                raise MigrateError(f"{what}: pg_dump succeeded but wrote no custom-format archive")
        _publish(tmp, final, what)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Backup(
        path=final,
        size=final.stat().st_size,
        seconds=time.monotonic() - started,
        server_version=server.version,
        dump_version=client.version,
    )


def restore(url: DatabaseUrl, backup: Path, *, timeout: float = 1800) -> Restored:
    """Restore a custom-format `backup` into the database `url` names, in one transaction.

    `--clean --if-exists` drops and recreates every object the archive holds (objects
    created after the backup, and not in it, stay); `--no-owner` makes the URL's role
    own them; `--single-transaction --exit-on-error` leaves the database untouched if
    any statement fails.
    """
    started = time.monotonic()
    what = f"restore of {backup.name} into {url.display}"
    check_archive(backup)
    server = server_info(url, what)
    client = find_client("pg_restore", None, what)
    _run_tool(
        url,
        [
            str(client.path),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={_dbname_conninfo(url.dbname)}",
            str(backup),
        ],
        what,
        timeout,
    )
    return Restored(
        backup=backup,
        target=url.display,
        seconds=time.monotonic() - started,
        server_version=server.version,
        restore_version=client.version,
    )


def check_archive(backup: Path) -> None:
    """Refuse a missing file or one that is not a pg_dump custom-format archive."""
    try:
        with backup.open("rb") as archive:
            head = archive.read(len(MAGIC))
    except FileNotFoundError:
        raise MigrateError(f"restore: backup {backup} does not exist") from None
    except OSError as exc:
        raise MigrateError(f"restore: cannot read backup {backup}: {exc.strerror}") from None
    if head != MAGIC:
        raise MigrateError(
            f"restore: {backup} is not a pg_dump custom-format archive (no PGDMP header); "
            "backups are made with `pg_dump --format=custom`"
        )


def server_info(url: DatabaseUrl, what: str) -> ServerInfo:
    """The server's version, which also proves the URL's credentials work (bounded connect)."""
    try:
        with psycopg.connect(make_conninfo("", **url.connect_kwargs())) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            version_num = conn.execute("SHOW server_version_num").fetchone()
    except psycopg.Error as exc:
        detail = redact(" ".join(str(exc).split()), *url.secrets)
        raise MigrateError(f"{what}: cannot connect: {detail}") from None
    if version is None or version_num is None:  # SHOW always returns a row
        raise MigrateError(f"{what}: the server did not report its version")
    return ServerInfo(str(version[0]), int(str(version_num[0])))


def find_client(tool: str, server: ServerInfo | None, what: str) -> PgClient:
    """The newest `tool` among the server binaries' directory, every installed
    /usr/lib/postgresql/*/bin and PATH; with `server`, refuse one older than the server
    (pg_dump cannot dump a newer server)."""
    clients = [c for c in (_probe(path) for path in _candidates(tool)) if c is not None]
    if not clients:
        hint = (
            f" (apt-get install postgresql-client-{_major_text(server.version_num)})"
            if server
            else " (apt-get install postgresql-client)"
        )
        raise MigrateError(f"{what}: {tool} is not installed{hint}")
    best = max(clients, key=lambda c: _major(c.version_num))
    if server is not None and _major(best.version_num) < _major(server.version_num):
        major = _major_text(server.version_num)
        raise MigrateError(
            f"{what}: {tool} {best.version} ({best.path}) is older than the server "
            f"(PostgreSQL {server.version}) and cannot dump it; install a matching client: "
            f"apt-get install postgresql-client-{major}"
        )
    return best


def _candidates(tool: str) -> list[Path]:
    dirs: list[Path] = []
    bindir = find_bindir()
    if bindir is not None:
        dirs.append(bindir)
    # Client-only packages (postgresql-client-NN) have pg_dump here but no server binaries.
    dirs.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    found = [d / tool for d in dirs if (d / tool).is_file()]
    on_path = shutil.which(tool)
    # Debian's pg_wrapper picks a version per call from the environment: use real binaries.
    if on_path and Path(on_path).resolve().name != "pg_wrapper":
        found.append(Path(on_path))
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _probe(path: Path) -> PgClient | None:
    try:
        done = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(done.stdout)
    if done.returncode != 0 or match is None:
        return None
    return PgClient(path, _version_text(match.groups()), _version_num(match.groups()))


def _version_text(groups: Sequence[str | None]) -> str:
    return ".".join(g for g in groups if g is not None)


def _version_num(groups: Sequence[str | None]) -> int:
    """`server_version_num` style: 15.18 -> 150018, 9.6.24 -> 90624."""
    major, second, third = (int(g) if g else 0 for g in groups)
    return major * 10000 + second if major >= 10 else major * 10000 + second * 100 + third


def _major(version_num: int) -> tuple[int, int]:
    """The major release, comparable across the 10.0 numbering change: (15, 0) for
    150018, (9, 6) for 90624 (9.6 was a major release)."""
    if version_num >= 100000:
        return (version_num // 10000, 0)
    return (version_num // 10000, version_num // 100 % 100)


def _major_text(version_num: int) -> str:
    """The major release as Debian's package names spell it: `15`, `9.6`."""
    major, minor = _major(version_num)
    return str(major) if version_num >= 100000 else f"{major}.{minor}"


def _dbname_conninfo(dbname: str) -> str:
    """`dbname='…'`: a database name in argv is not a secret, and quoting it keeps a name
    with `=` or a URL prefix from being read as connection parameters."""
    escaped = dbname.replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{escaped}'"


def _tool_env(url: DatabaseUrl) -> dict[str, str]:
    # Inherited PG* variables (PGHOSTADDR, PGSERVICE, PGOPTIONS…) could redirect or alter
    # the connection: only the URL's own settings reach the tool.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(url.libpq_env())
    env["PGAPPNAME"] = "wormhole-ci"
    return env


def _run_tool(url: DatabaseUrl, argv: list[str], what: str, timeout: float) -> None:
    tool = Path(argv[0]).name
    try:
        done = subprocess.run(
            argv,
            env=_tool_env(url),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MigrateError(f"{what}: {tool} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise MigrateError(f"{what}: cannot run {argv[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        tail = redact(" | ".join(lines[-5:]), *url.secrets) or f"exit status {done.returncode}"
        raise MigrateError(f"{what}: {tool} failed: {tail}")


def _publish(tmp: Path, final: Path, what: str) -> None:
    """Move the finished archive to its name, refusing to replace an existing backup."""
    try:
        os.link(tmp, final)  # atomic and fails if `final` exists, unlike a rename
    except FileExistsError:
        raise MigrateError(f"{what}: {final} already exists; not overwriting a backup") from None
    except OSError:
        # A file system without hard links: check, then rename (not atomic against a race).
        if final.exists():
            raise MigrateError(
                f"{what}: {final} already exists; not overwriting a backup"
            ) from None
        tmp.replace(final)
        return
    tmp.unlink()
