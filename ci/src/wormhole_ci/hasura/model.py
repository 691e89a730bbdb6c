"""The database schema the metadata is checked against, as plain data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TableName = tuple[str, str]
"""(schema, table)."""


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key from `columns` of its table to `ref_columns` of `ref_table`."""

    columns: tuple[str, ...]
    ref_table: TableName
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class DbTable:
    """A table's columns and outgoing foreign keys."""

    name: TableName
    columns: frozenset[str]
    foreign_keys: tuple[ForeignKey, ...] = ()


@dataclass(frozen=True)
class DbSchema:
    """Every table of a database, and where that knowledge came from."""

    tables: Mapping[TableName, DbTable]
    origin: str
    """Human-readable source, e.g. 'schema produced by api/prisma/migrations (2 migrations)'."""


def display(name: TableName) -> str:
    """`schema.table`."""
    return f"{name[0]}.{name[1]}"


@dataclass(frozen=True)
class SourceSchemas:
    """One schema per Hasura database source (from Hasura's own migrations)."""

    by_source: Mapping[str, DbSchema]
    """Metadata database source name → the schema its migrations produce."""
    origin: str
    """Human-readable source of all of them, e.g. 'schema produced by hasura/migrations'."""
