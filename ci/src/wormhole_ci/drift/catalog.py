"""A database schema read from pg_catalog, and the differences between two of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

# One row per object Prisma Migrate manages in the compared schemas: tables and views, columns
# (type, nullability, default), indexes, constraints and enum types, each described by
# PostgreSQL's own deparser (format_type, pg_get_expr, pg_get_indexdef,
# pg_get_constraintdef), so both sides are rendered the same way. Prisma's own bookkeeping
# table is not part of the schema the migrations describe.
_OBJECTS_SQL = """
select 'table', n.nspname, c.relname, null, case c.relkind when 'v' then 'view'
       when 'm' then 'materialized view' else 'table' end
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm')
  and c.relname <> '_prisma_migrations'
union all
select 'column', n.nspname, c.relname, a.attname,
       format_type(a.atttypid, a.atttypmod)
       || case when a.attnotnull then ' not null' else ' null' end
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
from pg_attribute a
join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm')
  and c.relname <> '_prisma_migrations' and a.attnum > 0 and not a.attisdropped
union all
select 'index', n.nspname, t.relname, i.relname, pg_get_indexdef(i.oid)
from pg_index x
join pg_class i on i.oid = x.indexrelid join pg_class t on t.oid = x.indrelid
join pg_namespace n on n.oid = t.relnamespace
where n.nspname = any(%(schemas)s) and t.relname <> '_prisma_migrations'
  and not exists (select 1 from pg_constraint k  -- a primary key's or unique constraint's own
                  where k.conindid = x.indexrelid and k.contype in ('p', 'u', 'x'))
union all
select 'constraint', n.nspname, t.relname, k.conname, pg_get_constraintdef(k.oid)
from pg_constraint k
join pg_class t on t.oid = k.conrelid join pg_namespace n on n.oid = t.relnamespace
where n.nspname = any(%(schemas)s) and t.relname <> '_prisma_migrations'
union all
select 'enum', n.nspname, ty.typname, null,
       array_to_string(array(select e.enumlabel from pg_enum e
                              where e.enumtypid = ty.oid order by e.enumsortorder), ', ')
from pg_type ty join pg_namespace n on n.oid = ty.typnamespace
where n.nspname = any(%(schemas)s) and ty.typtype = 'e'
"""


@dataclass(frozen=True)
class SchemaObject:
    """One table, column, index, constraint or enum, with PostgreSQL's description of it."""

    kind: str
    """table | column | index | constraint | enum"""
    schema: str
    table: str
    """The table (or enum type) it belongs to, or is."""
    name: str | None
    """The column, index or constraint name; None for tables and enums."""
    definition: str

    @property
    def subject(self) -> str:
        """`public.users`, `public.users.nickname`, `public.users.users_email_key`."""
        return ".".join(p for p in (self.schema, self.table, self.name) if p is not None)


@dataclass(frozen=True)
class Schema:
    """Every compared object, by (kind, subject)."""

    objects: dict[tuple[str, str], SchemaObject]

    @property
    def tables(self) -> int:
        return sum(1 for kind, _ in self.objects if kind == "table")


@dataclass(frozen=True)
class Difference:
    """An object only in one schema, or in both with different definitions."""

    expected: SchemaObject | None
    """What the migrations produce (None: not created by them)."""
    live: SchemaObject | None
    """What the live database has (None: missing there)."""

    @property
    def object(self) -> SchemaObject:
        found = self.live or self.expected
        assert found is not None
        return found

    def describe(self) -> str:
        kind = self.object.kind
        if self.expected is None:
            return f"{kind} in the live database that no applied migration creates: {self.object.definition}"
        if self.live is None:
            return f"{kind} the migrations create is missing from the live database: {self.expected.definition}"
        return f"{kind} differs: the migrations give `{self.expected.definition}`, the live database has `{self.live.definition}`"


def read_schema(conn: psycopg.Connection[tuple[object, ...]], schemas: Sequence[str]) -> Schema:
    """The objects of `schemas` as `conn` sees them (read-only queries)."""
    objects: dict[tuple[str, str], SchemaObject] = {}
    for kind, schema, table, name, definition in conn.execute(
        _OBJECTS_SQL, {"schemas": list(schemas)}
    ).fetchall():
        obj = SchemaObject(
            str(kind), str(schema), str(table), None if name is None else str(name), str(definition)
        )
        objects[(obj.kind, obj.subject)] = obj
    return Schema(objects)


def compare(expected: Schema, live: Schema) -> list[Difference]:
    """What differs, one entry per object; a table only on one side is one entry (its
    columns, indexes and constraints are not listed again)."""
    found: list[Difference] = []
    lone_tables: set[tuple[str, str]] = set()
    for key in sorted(expected.objects.keys() | live.objects.keys(), key=_order):
        want, have = expected.objects.get(key), live.objects.get(key)
        if want is not None and have is not None and want.definition == have.definition:
            continue
        obj = have or want
        assert obj is not None
        if obj.kind not in {"table", "enum"} and (obj.schema, obj.table) in lone_tables:
            continue
        if obj.kind == "table" and (want is None or have is None):
            lone_tables.add((obj.schema, obj.table))
        found.append(Difference(want, have))
    return found


_KIND_ORDER = {"enum": 0, "table": 1, "column": 2, "constraint": 3, "index": 4}


def _order(key: tuple[str, str]) -> tuple[int, str]:
    kind, subject = key
    return (_KIND_ORDER.get(kind, 9), subject)
