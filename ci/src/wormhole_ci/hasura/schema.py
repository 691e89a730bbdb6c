"""The database schema Hasura is checked against: what the Prisma migrations really produce."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql

from wormhole_ci.errors import HasuraMetadataError, ProvisionError
from wormhole_ci.hasura.model import DbSchema, DbTable, ForeignKey, TableName
from wormhole_ci.jsonish import as_dict, as_list, as_str_list
from wormhole_ci.pgtemp import TempPostgres, find_bindir, temp_postgres

_COLUMNS_SQL = """
select table_schema, table_name, column_name
from information_schema.columns
where table_schema not in ('pg_catalog', 'information_schema')
"""
# information_schema hides multi-column key order; pg_constraint keeps it.
_FKS_SQL = """
select ns.nspname, cl.relname, fns.nspname, fcl.relname,
       array(select a.attname from unnest(c.conkey) with ordinality k(n, i)
             join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.i),
       array(select a.attname from unnest(c.confkey) with ordinality k(n, i)
             join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n order by k.i)
from pg_constraint c
join pg_class cl on cl.oid = c.conrelid join pg_namespace ns on ns.oid = cl.relnamespace
join pg_class fcl on fcl.oid = c.confrelid join pg_namespace fns on fns.oid = fcl.relnamespace
where c.contype = 'f'
"""
_DB = "wormhole_ci_hasura_check"
_CONNECT_TIMEOUT = 10


def migration_files(migrations: Path) -> list[Path]:
    """Prisma's migration scripts in the order `migrate deploy` applies them (by folder name)."""
    if not migrations.is_dir():
        raise HasuraMetadataError(
            f"{migrations}: no Prisma migrations folder; run `prisma migrate dev` first"
        )
    files = sorted(
        p / "migration.sql" for p in migrations.iterdir() if (p / "migration.sql").is_file()
    )
    if not files:
        raise HasuraMetadataError(f"{migrations}: contains no */migration.sql")
    return files


def shown_path(path: Path, root: Path) -> str:
    """`path` relative to `root` (POSIX), or as given when it is outside."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def apply_migrations(
    conn: psycopg.Connection[tuple[object, ...]], files: Sequence[Path], root: Path
) -> None:
    """Run each SQL file in order; the first that PostgreSQL refuses is named (relative to
    `root`) with its error."""
    for file in files:
        try:
            conn.execute(file.read_bytes())
        except psycopg.Error as exc:
            raise HasuraMetadataError(
                f"{shown_path(file, root)}: migration fails on PostgreSQL: "
                f"{str(exc).strip()}; fix the migration before checking Hasura"
            ) from None


def schema_from_migrations(migrations: Path, root: Path, bindir: Path | None = None) -> DbSchema:
    """Apply every migration to a throwaway PostgreSQL and read the resulting schema."""
    bindir = bindir or find_bindir()
    if bindir is None:
        raise ProvisionError("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found")
    files = migration_files(migrations)
    with temp_postgres(bindir) as server:
        create_database(server)
        with psycopg.connect(
            server.conninfo(_DB), autocommit=True, connect_timeout=_CONNECT_TIMEOUT
        ) as conn:
            apply_migrations(conn, files, root)
            return read_schema(
                conn, f"schema produced by {migrations.relative_to(root)} ({len(files)} migrations)"
            )


def create_database(server: TempPostgres, name: str = _DB) -> None:
    """Create the empty database `name` (a plain identifier) on the throwaway cluster."""
    with psycopg.connect(
        server.conninfo(), autocommit=True, connect_timeout=_CONNECT_TIMEOUT
    ) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


def read_schema(conn: psycopg.Connection[tuple[object, ...]], origin: str) -> DbSchema:
    """Every user table's columns and foreign keys in the connected database."""
    columns: dict[TableName, set[str]] = {}
    for schema, table, column in conn.execute(_COLUMNS_SQL).fetchall():
        columns.setdefault((str(schema), str(table)), set()).add(str(column))
    fks: dict[TableName, list[ForeignKey]] = {}
    for schema, table, ref_schema, ref_table, cols, ref_cols in conn.execute(_FKS_SQL).fetchall():
        fks.setdefault((str(schema), str(table)), []).append(
            ForeignKey(_names(cols), (str(ref_schema), str(ref_table)), _names(ref_cols))
        )
    tables = {
        name: DbTable(name, frozenset(cols), tuple(fks.get(name, ())))
        for name, cols in columns.items()
    }
    return DbSchema(tables=tables, origin=origin)


def _names(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in as_list(value) or [])


_GENERATOR = Path(__file__).with_name("dmmf_generator.cjs")
_DMMF_TIMEOUT = 120


def schema_from_prisma(service_dir: Path, root: Path) -> DbSchema:
    """The tables Prisma's own parsed datamodel (DMMF) declares, with @@map/@map names.

    `prisma generate` runs only our tiny generator (dmmf_generator.cjs) over a copy of the
    schema with that generator appended, so nothing in the service is written and no
    hand-written .prisma parser is involved. Needs the service's installed Prisma CLI.
    """
    rel = service_dir.relative_to(root)
    prisma = service_dir / "node_modules" / ".bin" / "prisma"
    schema_file = service_dir / "prisma" / "schema.prisma"
    if shutil.which("node") is None or not prisma.exists():
        raise ProvisionError(
            f"{rel}: neither PostgreSQL server binaries nor an installed Prisma CLI are "
            "available; install PostgreSQL 15 server binaries, or run that service's install first"
        )
    with tempfile.TemporaryDirectory(prefix="wormhole-ci-dmmf-") as tmp:
        copy = Path(tmp) / "schema.prisma"
        out = Path(tmp) / "datamodel.json"
        copy.write_text(
            schema_file.read_text(encoding="utf-8")
            + f'\ngenerator wormhole_ci_dmmf {{\n  provider = "node {_GENERATOR}"\n}}\n',
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "WORMHOLE_CI_DMMF_OUT": str(out),
            "CHECKPOINT_DISABLE": "1",
            # Prisma 6 otherwise fetches a native query engine before running generators.
            "PRISMA_CLIENT_ENGINE_TYPE": "client",
        }
        argv = [str(prisma), "generate", "--schema", str(copy), "--generator", "wormhole_ci_dmmf"]
        try:
            done = subprocess.run(
                argv,
                cwd=service_dir,
                env=env,
                capture_output=True,
                text=True,
                timeout=_DMMF_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HasuraMetadataError(f"{rel}: reading the Prisma datamodel timed out") from None
        if done.returncode != 0 or not out.exists():
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise HasuraMetadataError(
                f"{rel}/prisma/schema.prisma: Prisma could not parse it: {tail}"
            )
        return parse_dmmf(json.loads(out.read_text(encoding="utf-8")), f"Prisma datamodel of {rel}")


def parse_dmmf(raw: object, origin: str, schema: str = "public") -> DbSchema:
    """Tables from a DMMF `datamodel` object (models, fields, relations, db names)."""
    datamodel = as_dict(raw) or {}
    models = [m for m in map(as_dict, as_list(datamodel.get("models")) or []) if m is not None]
    if not models:
        raise HasuraMetadataError(f"{origin}: unexpected DMMF shape (no models)")
    fields_of = {
        str(m["name"]): [f for f in map(as_dict, as_list(m.get("fields")) or []) if f is not None]
        for m in models
    }
    table_of = {str(m["name"]): str(m.get("dbName") or m["name"]) for m in models}
    column_of = {
        model: {str(f["name"]): str(f.get("dbName") or f["name"]) for f in fields}
        for model, fields in fields_of.items()
    }
    tables: dict[TableName, DbTable] = {}
    for model, fields in fields_of.items():
        columns = frozenset(
            column_of[model][str(f["name"])] for f in fields if f.get("kind") != "object"
        )
        fks: list[ForeignKey] = []
        for f in fields:
            from_fields = as_str_list(f.get("relationFromFields")) or []
            to_fields = as_str_list(f.get("relationToFields")) or []
            target = str(f.get("type"))
            if f.get("kind") == "object" and from_fields and target in table_of:
                fks.append(
                    ForeignKey(
                        tuple(column_of[model][x] for x in from_fields),
                        (schema, table_of[target]),
                        tuple(column_of[target][x] for x in to_fields),
                    )
                )
        name = (schema, table_of[model])
        tables[name] = DbTable(name, columns, tuple(fks))
    return DbSchema(tables=tables, origin=origin)
