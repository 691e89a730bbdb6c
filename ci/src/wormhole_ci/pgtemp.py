"""A throwaway PostgreSQL cluster from the installed binaries: Unix socket, optionally loopback TCP."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from wormhole_ci.errors import ProvisionError

_PORT = 5432  # socket-only mode: only names the socket file, the cluster listens on no TCP address
_START_TIMEOUT = 60
_LOOPBACK = "127.0.0.1"
# A free port can be taken between choosing it and the server binding it: retry, boundedly.
_BIND_ATTEMPTS = 3
_CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class TempPostgres:
    """Connection facts of a running throwaway cluster."""

    socket_dir: Path
    port: int
    user: str = "postgres"
    dbname: str = "postgres"
    host: str | None = None
    """`127.0.0.1` when the cluster also listens on TCP (password auth only there), else None."""

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq connection string for the socket (no password: trust auth, local only)."""
        return f"host={self.socket_dir} port={self.port} user={self.user} dbname={dbname or self.dbname}"

    def url(self, dbname: str, user: str, password: str) -> str:
        """A `postgresql://` URL over loopback TCP (scram-sha-256) for a role made by
        `create_role_and_database`; refused for a socket-only cluster."""
        if self.host is None:
            raise ProvisionError(
                "throwaway PostgreSQL: started without TCP (temp_postgres(tcp=True))"
            )
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{quote(dbname, safe='')}"
        )


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None when not installed.

    `WORMHOLE_CI_PG_BINDIR` names the directory; the value `none` means "do not use
    PostgreSQL binaries" (checks then use their database-less fallback).
    """
    candidates: list[Path] = []
    explicit = os.environ.get("WORMHOLE_CI_PG_BINDIR")
    if explicit == "none":
        return None
    if explicit:
        candidates.append(Path(explicit))
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=10
        )
        if done.returncode == 0:
            candidates.append(Path(done.stdout.strip()))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name)
    )
    candidates.extend(reversed(versions))
    postgres = shutil.which("postgres")
    if postgres:
        candidates.append(Path(postgres).parent)
    for directory in candidates:
        if all((directory / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit())


@contextmanager
def temp_postgres(bindir: Path, *, tcp: bool = False) -> Generator[TempPostgres]:
    """Start a cluster in a temporary directory; stop it and delete everything on exit.

    As root the server runs as the `postgres` user, since PostgreSQL refuses root.
    With `tcp` it also listens on 127.0.0.1 (only) on a free port, where every role
    needs its password (scram-sha-256); the socket stays trust-only for the admin.
    """
    user = _server_user()
    base = Path(tempfile.mkdtemp(prefix="wormhole-ci-pg-"))
    data = base / "data"
    try:
        if user is not None:
            os.chown(base, user.pw_uid, user.pw_gid)
        # Socket-only: trust everywhere (nothing else can reach it). TCP: passwords on TCP.
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256"] if tcp else ["-A", "trust"]
        _run(
            user,
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                *auth,
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        port = _start(user, bindir, base, tcp)
        try:
            yield TempPostgres(socket_dir=base, port=port, host=_LOOPBACK if tcp else None)
        finally:
            _run(
                user,
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                "pg_ctl stop",
                check=False,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _start(user: pwd.struct_passwd | None, bindir: Path, base: Path, tcp: bool) -> int:
    """Start the server; the port it uses (the socket's name, and with `tcp` the TCP port)."""
    log = base / "server.log"
    for attempt in range(1, _BIND_ATTEMPTS + 1):
        port = _free_port() if tcp else _PORT
        listen = _LOOPBACK if tcp else ""
        # PostgreSQL < 14 stores md5 by default, which a scram-sha-256 hba line refuses.
        options = f"-k {base} -p {port} -c listen_addresses='{listen}' -c fsync=off"
        if tcp:
            options += " -c password_encryption=scram-sha-256"
        argv = [
            str(bindir / "pg_ctl"),
            "-D",
            str(base / "data"),
            "-l",
            str(log),
            "-w",
            "-t",
            str(_START_TIMEOUT),
            "-o",
            options,
            "start",
        ]
        try:
            _run(user, argv, "pg_ctl start")
        except ProvisionError:
            lost_race = tcp and "could not bind" in _read(log)
            if not lost_race or attempt == _BIND_ATTEMPTS:
                raise
            continue
        return port
    raise AssertionError("unreachable")  # the loop returns or raises


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def create_role_and_database(server: TempPostgres, role: str, password: str, dbname: str) -> None:
    """A login role with `password` and a database it owns (as the socket's superuser)."""
    with psycopg.connect(
        server.conninfo(), autocommit=True, connect_timeout=_CONNECT_TIMEOUT
    ) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(role)
            )
        )


def drop_role_and_database(server: TempPostgres, role: str, dbname: str) -> None:
    """Undo `create_role_and_database`, disconnecting any session still in the database."""
    with psycopg.connect(
        server.conninfo(), autocommit=True, connect_timeout=_CONNECT_TIMEOUT
    ) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _server_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ProvisionError(
            "running as root and there is no `postgres` user to run a throwaway PostgreSQL; "
            "create one (useradd --system postgres) or run as an unprivileged user"
        ) from None


def _run(user: pwd.struct_passwd | None, argv: list[str], what: str, *, check: bool = True) -> None:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT + 30,
            check=False,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        if check:
            raise ProvisionError(f"throwaway PostgreSQL: {what} failed: {exc}") from None
        return
    if check and done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ProvisionError(f"throwaway PostgreSQL: {what} failed: {tail}")
