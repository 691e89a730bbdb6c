"""PostgreSQL connection URLs: parsed once, shown without credentials, handed to tools safely."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from psycopg.conninfo import make_conninfo

from wormhole_ci.errors import MigrateError

_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class DatabaseUrl:
    """A `postgresql://user:password@host:port/db?…` URL. `str()`/`repr()` never show the
    password or the user; `.display` is what messages and reports print."""

    host: str
    port: int
    dbname: str
    user: str
    _password: str = field(repr=False)
    params: tuple[tuple[str, str], ...] = ()
    _raw: str = field(default="", repr=False)

    @classmethod
    def parse(cls, raw: str) -> DatabaseUrl:
        try:
            parts = urlsplit(raw.strip())
            port = parts.port or 5432
        except ValueError:
            raise MigrateError(
                "database URL: not a valid URL (postgresql://USER:PASSWORD@HOST:PORT/DB)"
            ) from None
        if parts.scheme not in _SCHEMES or not parts.hostname or not parts.path.strip("/"):
            raise MigrateError(
                "database URL: expected postgresql://USER:PASSWORD@HOST:PORT/DB "
                f"(scheme {parts.scheme or 'missing'!r}, host "
                f"{'present' if parts.hostname else 'missing'}, database "
                f"{'present' if parts.path.strip('/') else 'missing'})"
            )
        return cls(
            host=parts.hostname,
            port=port,
            dbname=unquote(parts.path.strip("/")),
            user=unquote(parts.username or ""),
            _password=unquote(parts.password or ""),
            params=tuple(parse_qsl(parts.query)),
            _raw=raw.strip(),
        )

    @property
    def display(self) -> str:
        """`host:port/db`: safe for logs, errors, reports and file names' context."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.dbname}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Everything that must never be printed (for `secretref.redact`)."""
        return tuple(s for s in (self._raw, self._password) if s)

    def reveal(self) -> str:
        """The URL itself, for a child process's environment only (Prisma reads DATABASE_URL)."""
        return self._raw

    def libpq_env(self) -> dict[str, str]:
        """PG* variables for pg_dump/pg_restore/psql: the password never goes into argv."""
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGDATABASE": self.dbname,
            "PGCONNECT_TIMEOUT": "10",
        }
        if self.user:
            env["PGUSER"] = self.user
        if self._password:
            env["PGPASSWORD"] = self._password
        sslmode = dict(self.params).get("sslmode")
        if sslmode:
            env["PGSSLMODE"] = sslmode
        return env

    def connect_kwargs(self, dbname: str | None = None) -> dict[str, str | int]:
        """Keyword arguments for psycopg.connect (bounded connect timeout)."""
        kwargs: dict[str, str | int] = {
            "host": self.host,
            "port": self.port,
            "dbname": dbname or self.dbname,
            "connect_timeout": 10,
        }
        if self.user:
            kwargs["user"] = self.user
        if self._password:
            kwargs["password"] = self._password
        sslmode = dict(self.params).get("sslmode")
        if sslmode:
            kwargs["sslmode"] = sslmode
        return kwargs

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq connection string (psycopg.connect's first argument)."""
        return make_conninfo(**{k: str(v) for k, v in self.connect_kwargs(dbname).items()})

    def with_database(self, dbname: str) -> DatabaseUrl:
        """The same server and credentials, another database (restore targets, tests)."""
        raw = self._raw
        if raw:
            parts = urlsplit(raw)
            raw = parts._replace(path="/" + dbname).geturl()
        return DatabaseUrl(
            self.host, self.port, dbname, self.user, self._password, self.params, raw
        )

    def __str__(self) -> str:
        return self.display
