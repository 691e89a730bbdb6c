"""The database area of drift: Prisma's migration history and the live schema, read-only.

Two comparisons, both over one read-only connection to the live database
(`default_transaction_read_only` on the session and a `READ ONLY` repeatable-read
transaction, so one consistent snapshot and no write can succeed):

1. `_prisma_migrations` against the service's `prisma/migrations/*/migration.sql`: pending,
   unknown (applied, not in the repository), edited (checksum differs) and failed or
   rolled-back migrations.
2. The live schema against the schema the applied migrations produce on a throwaway
   PostgreSQL from the installed binaries, object by object from pg_catalog (tables and
   views, columns with type/nullability/default, indexes, constraints, enums).

Why not `prisma migrate diff --from-migrations DIR --to-url LIVE --shadow-database-url
THROWAWAY --exit-code`: measured with the example (Prisma 6.19.3, `engine: "js"` and an
adapter in prisma.config.ts, the only set-up whose migrate commands run here) it exits 1
before connecting: "Passing the --to-url flag to the prisma migrate diff command is not
supported when defining an adapter in Prisma config file" (the same for
--to-schema-datasource, --from-schema-datasource and --shadow-database-url); and without
that config it needs the native schema engine, whose download fails
("request to https://binaries.prisma.sh/.../schema-engine.gz.sha256 failed ... ENOTFOUND").
So no Prisma CLI runs here and `cache_dir` is unused; the catalogs compared are rendered by
PostgreSQL's own deparsers, so both sides read the same way when the throwaway and the
live server are the same major version (the `checked` lines name both).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import LiteralString

import psycopg
from psycopg import sql

from wormhole_ci.delivery.runbooks import FAILED_MIGRATION
from wormhole_ci.drift.catalog import Difference, Schema, compare, read_schema
from wormhole_ci.drift.report import Area, AreaResult, DriftItem
from wormhole_ci.errors import MigrateError, ProvisionError
from wormhole_ci.manifest import Manifest, ServiceSpec
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.migrate.prisma import MIGRATIONS_DIR, migrations_on_disk
from wormhole_ci.pgtemp import TempPostgres, find_bindir, temp_postgres
from wormhole_ci.secretref import REDACTED, redact

_RUNBOOK = FAILED_MIGRATION
_CONNECT_TIMEOUT = 10
# Catalog reads take no lock a migration would wait on, but a live database can be slow:
# bounded, so a drift run never hangs a CI job.
_SESSION: tuple[LiteralString, ...] = (
    "SET default_transaction_read_only = on",
    "SET statement_timeout = '60s'",
    "SET lock_timeout = '10s'",
)
_HISTORY_SQL = """
SELECT migration_name, checksum, finished_at IS NOT NULL, rolled_back_at IS NOT NULL,
       coalesce(logs, '')
FROM _prisma_migrations ORDER BY started_at, migration_name
"""
_SCHEMAS = re.compile(r"datasource\s+\w+\s*\{[^}]*?\bschemas\s*=\s*\[([^\]]*)\]", re.S)


@dataclass(frozen=True)
class _Row:
    name: str
    checksum: str
    finished: bool
    rolled_back: bool
    logs: str


def database_drift(
    url: DatabaseUrl,
    manifest: Manifest,
    service: ServiceSpec,
    *,
    cache_dir: Path,
    say: Callable[[str], None],
    environment: str,
    throwaway: TempPostgres | None = None,
) -> AreaResult:
    """Compare the live database at `url` with `service`'s migrations, without writing to it.

    Expected failures (unreachable database, unreadable history, no PostgreSQL binaries, a
    migration that does not apply) end up in `AreaResult.error`, never as an exception.
    `cache_dir` is unused: see the module docstring for why no Prisma CLI runs.
    `throwaway`: a running throwaway cluster to build the reference schema in (a database
    made and dropped on it), instead of starting one (about 1-3 s) for this call.
    """
    del cache_dir
    result = AreaResult(Area.DATABASE)
    service_dir = manifest.root / service.path
    var = manifest.environment(environment).secrets["database_url"]
    try:
        on_disk = migrations_on_disk(service_dir)
    except MigrateError as exc:
        result.error = str(exc)
        return result
    result.checked.append(f"{service.path}/{MIGRATIONS_DIR}: {len(on_disk)} migrations")
    schemas = _managed_schemas(service_dir, url)
    say(f"database: reading {url.display} read-only")
    live_read = _read_live(url, schemas, var, environment)
    if isinstance(live_read, str):
        result.error = live_read
        return result
    rows, live, live_version = live_read

    applied = _history_items(
        result,
        rows=rows,
        service_dir=service_dir,
        on_disk=on_disk,
        service=service,
        var=var,
        environment=environment,
    )
    to_apply = [name for name in on_disk if name in applied]
    try:
        expected, version = _expected_schema(service_dir, to_apply, schemas, say, throwaway)
    except (ProvisionError, MigrateError) as exc:
        result.error = f"schema not compared: {exc}"
        return result
    except psycopg.Error as exc:
        result.error = f"schema not compared: the throwaway PostgreSQL failed: {exc}"
        return result
    differences = compare(expected, live)
    result.checked.append(
        f"schema ({', '.join(schemas)}): {live.tables} live tables compared with the "
        f"{len(to_apply)} applied migrations on a throwaway PostgreSQL {version} "
        f"(live: PostgreSQL {live_version})"
    )
    result.items.extend(_schema_item(d) for d in differences)
    say(f"database: {len(result.items)} difference(s)")
    return result


def _read_live(
    url: DatabaseUrl, schemas: tuple[str, ...], var: str, environment: str
) -> tuple[list[_Row] | None, Schema, str] | str:
    """The history, schema and server version of the live database, or why they could not
    be read."""
    try:
        with read_only_connection(url) as conn:
            rows = _history(conn)
            live = read_schema(conn, schemas)
            live_version = _version(conn)
    except psycopg.errors.QueryCanceled:
        return (
            f"{url.display}: reading the migration history and catalog took longer than "
            "60 s and was cancelled; retry when the database is less busy"
        )
    except psycopg.OperationalError as exc:
        return (
            f"{url.display}: cannot connect ({_reason(exc, url)}); check that this host is "
            f"reachable from here, that {var} holds the direct (not pooled) URL of the "
            f"{environment} database and that its role may log in"
        )
    except psycopg.Error as exc:
        return (
            f"{url.display}: cannot read the migration history or the catalog "
            f"({_reason(exc, url)}); the role in {var} needs read access to "
            "_prisma_migrations and the schema"
        )

    return rows, live, live_version


@contextmanager
def read_only_connection(url: DatabaseUrl) -> Generator[psycopg.Connection[tuple[object, ...]]]:
    """A session that cannot write: read-only by default and inside one READ ONLY
    repeatable-read transaction (one snapshot), rolled back at the end."""
    conn = psycopg.connect(url.conninfo(), autocommit=True, application_name="wormhole-ci drift")
    try:
        for statement in _SESSION:
            conn.execute(statement)
        conn.autocommit = False
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        yield conn
    finally:
        conn.rollback()
        conn.close()


def checksum_matches(script: bytes, checksum: str) -> bool:
    """Whether `script` is the migration `checksum` was recorded for, as Prisma decides it.

    Verified with `prisma migrate deploy` (Prisma 6.19.3, JS engine) on the example: the
    stored checksum is the lowercase hex SHA-256 of migration.sql's bytes as they were,
    with no line-ending normalisation (a CRLF file stored sha256 of its CRLF bytes, not of
    the LF form). When comparing, Prisma's schema engine (schema-engine/core/src/checksum.rs
    `script_matches_checksum`) also accepts the script with CRLF→LF and LF→CRLF (git's
    autocrlf), and for a checksum that is not 64 characters long the pre-2021 rendering
    without zero padding of each byte (prisma/prisma-engines#1887). The same here.
    """
    variants = (script, script.replace(b"\r\n", b"\n"), script.replace(b"\n", b"\r\n"))
    for variant in variants:
        digest = hashlib.sha256(variant).digest()
        rendered = digest.hex() if len(checksum) == 64 else "".join(f"{b:x}" for b in digest)
        if rendered == checksum:
            return True
    return False


def _history(conn: psycopg.Connection[tuple[object, ...]]) -> list[_Row] | None:
    """`_prisma_migrations` rows, or None when the table does not exist."""
    found = conn.execute("SELECT to_regclass('_prisma_migrations') IS NOT NULL").fetchone()
    if found is None or found[0] is not True:
        return None
    return [
        _Row(str(name), str(checksum), finished is True, rolled is True, str(logs))
        for name, checksum, finished, rolled, logs in conn.execute(_HISTORY_SQL).fetchall()
    ]


def _history_items(
    result: AreaResult,
    *,
    rows: list[_Row] | None,
    service_dir: Path,
    on_disk: tuple[str, ...],
    service: ServiceSpec,
    var: str,
    environment: str,
) -> set[str]:
    """Add the migration-history items and `checked` line; the names the live database
    records as applied that are also in the repository."""
    folder = f"{service.path}/{MIGRATIONS_DIR}"
    migrate = f"wormhole-ci migrate --source . --service {service.name} --database-url env:{var}"
    if rows is None:
        result.checked.append(
            "_prisma_migrations: no such table (never migrated): "
            f"all {len(on_disk)} migrations pending"
        )
        rows = []
    applied = {r.name: r for r in rows if r.finished and not r.rolled_back}
    failed = {r.name: r for r in rows if not r.finished and not r.rolled_back}
    failed = {n: r for n, r in failed.items() if n not in applied}
    rolled = {r.name for r in rows if r.rolled_back} - applied.keys() - failed.keys()
    if rows:
        result.checked.append(
            f"_prisma_migrations: {len(applied)} applied, {len(failed)} failed, "
            f"{len(rolled)} rolled back"
        )
    disk = set(on_disk)
    for name in on_disk:
        if name not in applied and name not in failed and name not in rolled:
            result.items.append(
                DriftItem(
                    Area.DATABASE,
                    "pending-migration",
                    name,
                    f"{folder}/{name} is not applied to the {environment} database",
                    migrate,
                )
            )
    for name, row in applied.items():
        if name not in disk:
            result.items.append(
                DriftItem(
                    Area.DATABASE,
                    "unknown-migration",
                    name,
                    f"applied to the {environment} database, but {folder}/{name} is not in "
                    "this repository (deployed from another branch, deleted, or applied by hand)",
                    f"if it was committed once, restore it: git log --all --oneline -- "
                    f"{folder}/{name}, then git checkout <commit> -- {folder}/{name} and "
                    "commit; if it was applied by hand, undo its changes in the database and "
                    f"delete its row: {_delete_row(name)}",
                )
            )
            continue
        script = (service_dir / MIGRATIONS_DIR / name / "migration.sql").read_bytes()
        if not checksum_matches(script, row.checksum):
            result.items.append(
                DriftItem(
                    Area.DATABASE,
                    "edited-migration",
                    name,
                    f"{folder}/{name}/migration.sql changed after it was applied to the "
                    f"{environment} database (checksum {row.checksum[:12]}…, the file's "
                    f"{hashlib.sha256(script).hexdigest()[:12]}…); Prisma never re-applies it",
                    f"restore the applied version (git log -p -- {folder}/{name}/migration.sql "
                    f"shows the edit; git checkout <commit> -- {folder}/{name}/migration.sql) "
                    "and put the change into a new migration",
                )
            )
    for name, row in failed.items():
        logs = " ".join(row.logs.split())
        result.items.append(
            DriftItem(
                Area.DATABASE,
                "failed-migration",
                name,
                f"started on the {environment} database and never finished; Prisma applies "
                "nothing until it is resolved"
                + (f" (log: {logs[:200]})" if logs else "")
                + ("" if name in disk else f"; {folder}/{name} is not in this repository"),
                f"follow {_RUNBOOK}: roll back (restore the backup, then cd {service.path} && "
                f"DATABASE_URL=… pnpm exec prisma migrate resolve --rolled-back {name}) or "
                f"roll forward (finish it by hand, then … prisma migrate resolve --applied "
                f"{name})",
            )
        )
    for name in sorted(rolled):
        result.items.append(
            DriftItem(
                Area.DATABASE,
                "failed-migration",
                name,
                f"marked rolled back on the {environment} database and not applied since"
                + ("" if name in disk else f"; {folder}/{name} is not in this repository"),
                f"fix the migration (see {_RUNBOOK}), then apply it again: {migrate}"
                if name in disk
                else f"nothing to apply: if it is abandoned, no action; see {_RUNBOOK}",
            )
        )
    return {n for n in applied if n in disk}


def _expected_schema(
    service_dir: Path,
    names: list[str],
    schemas: tuple[str, ...],
    say: Callable[[str], None],
    throwaway: TempPostgres | None,
) -> tuple[Schema, str]:
    """The schema `names` (in order) produce on a throwaway PostgreSQL, and its version."""
    say(f"database: applying {len(names)} migrations to a throwaway PostgreSQL")
    if throwaway is not None:
        return _apply_and_read(throwaway, service_dir, names, schemas)
    bindir = find_bindir()
    if bindir is None:
        raise ProvisionError(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; install "
            "postgresql-15 (or set WORMHOLE_CI_PG_BINDIR) to compare the schema"
        )
    with temp_postgres(bindir) as server:
        return _apply_and_read(server, service_dir, names, schemas)


def _apply_and_read(
    server: TempPostgres, service_dir: Path, names: list[str], schemas: tuple[str, ...]
) -> tuple[Schema, str]:
    """Apply `names` in a new database on `server`, read its schema, drop the database."""
    dbname = f"wormhole_ci_drift_{secrets.token_hex(4)}"
    with psycopg.connect(
        server.conninfo(), autocommit=True, connect_timeout=_CONNECT_TIMEOUT
    ) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        try:
            with psycopg.connect(
                server.conninfo(dbname), autocommit=True, connect_timeout=_CONNECT_TIMEOUT
            ) as conn:
                for schema in schemas:
                    conn.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                    )
                for name in names:
                    path = service_dir / MIGRATIONS_DIR / name / "migration.sql"
                    try:
                        conn.execute(path.read_bytes())
                    except psycopg.Error as exc:
                        raise MigrateError(
                            f"{MIGRATIONS_DIR / name}/migration.sql fails on a fresh PostgreSQL: "
                            f"{exc.diag.message_primary or str(exc).strip()}"
                        ) from None
                return read_schema(conn, schemas), _version(conn)
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


def _schema_item(difference: Difference) -> DriftItem:
    obj = difference.object
    return DriftItem(
        Area.DATABASE, "schema-drift", obj.subject, difference.describe(), _schema_fix(difference)
    )


def _schema_fix(difference: Difference) -> str:
    obj = difference.object
    table = f'"{obj.schema}"."{obj.table}"'
    name = f'"{obj.name}"' if obj.name is not None else ""
    capture: str | None = None
    revert: str | None = None
    if difference.expected is None:
        match obj.kind:
            case "column":
                capture = f"ALTER TABLE {table} ADD COLUMN {name} {obj.definition};"
                revert = f"ALTER TABLE {table} DROP COLUMN {name};"
            case "index":
                capture = f"{obj.definition};"
                revert = f'DROP INDEX "{obj.schema}".{name};'
            case "constraint":
                capture = f"ALTER TABLE {table} ADD CONSTRAINT {name} {obj.definition};"
                revert = f"ALTER TABLE {table} DROP CONSTRAINT {name};"
            case "table":
                capture = f"its CREATE statement (pg_dump --schema-only -t {table})"
                revert = f"DROP TABLE {table};"
            case _:
                pass
    captured = capture or "the statement that makes the migrations match"
    reverted = revert or "make it match the migrations again"
    return (
        "either write a migration capturing it (prisma/migrations/<YYYYMMDDHHMMSS>_<name>/"
        f"migration.sql with {captured}, the model updated in schema.prisma, and on this "
        "database prisma migrate resolve --applied <that name> since it is already there), "
        f"or revert the manual change: {reverted}"
    )


def _delete_row(name: str) -> str:
    """The statement a person runs to forget a migration row (shown, never executed here)."""
    literal = name.replace("'", "''")
    return f"DELETE FROM _prisma_migrations WHERE migration_name = '{literal}'"  # noqa: S608


def _managed_schemas(service_dir: Path, url: DatabaseUrl) -> tuple[str, ...]:
    """The schemas Prisma manages: the datasource's `schemas = [...]`, else the URL's
    `?schema=`, else public (others, e.g. Hasura's hdb_catalog, are not compared)."""
    try:
        text = (service_dir / "prisma" / "schema.prisma").read_text(encoding="utf-8")
    except OSError:
        text = ""
    found = _SCHEMAS.search(text)
    if found:
        names = tuple(re.findall(r'"([^"]+)"', found.group(1)))
        if names:
            return names
    return (dict(url.params).get("schema") or "public",)


def _version(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "unknown"


def _reason(exc: psycopg.Error, url: DatabaseUrl) -> str:
    """The driver's message on one line, with no password, URL or user name in it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = redact(text, *url.secrets)
    if url.user:
        text = text.replace(f'user "{url.user}"', f'user "{REDACTED}"')
    return text
