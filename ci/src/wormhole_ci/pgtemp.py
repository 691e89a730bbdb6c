"""A throwaway PostgreSQL cluster from the installed binaries, reachable by Unix socket only."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from wormhole_ci.errors import ProvisionError

_PORT = 5432  # only names the socket file: the cluster listens on no TCP address
_START_TIMEOUT = 60


@dataclass(frozen=True)
class TempPostgres:
    """Connection facts of a running throwaway cluster."""

    socket_dir: Path
    port: int
    user: str = "postgres"
    dbname: str = "postgres"

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq connection string for the socket (no password: trust auth, local only)."""
        return f"host={self.socket_dir} port={self.port} user={self.user} dbname={dbname or self.dbname}"


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
def temp_postgres(bindir: Path) -> Generator[TempPostgres]:
    """Start a cluster in a temporary directory; stop it and delete everything on exit.

    As root the server runs as the `postgres` user, since PostgreSQL refuses root.
    """
    user = _server_user()
    base = Path(tempfile.mkdtemp(prefix="wormhole-ci-pg-"))
    data = base / "data"
    try:
        if user is not None:
            os.chown(base, user.pw_uid, user.pw_gid)
        _run(
            user,
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        _run(
            user,
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                str(_START_TIMEOUT),
                "-o",
                f"-k {base} -p {_PORT} -c listen_addresses='' -c fsync=off",
                "start",
            ],
            "pg_ctl start",
        )
        try:
            yield TempPostgres(socket_dir=base, port=_PORT)
        finally:
            _run(
                user,
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                "pg_ctl stop",
                check=False,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


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
