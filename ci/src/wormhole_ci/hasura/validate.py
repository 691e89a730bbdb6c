"""Checking Hasura v3 metadata against a database schema: tables, columns, relationships, permissions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wormhole_ci.errors import HasuraMetadataError
from wormhole_ci.hasura.loader import Sourced, load_yaml
from wormhole_ci.hasura.model import DbSchema, DbTable, SourceSchemas, TableName, display
from wormhole_ci.jsonish import as_dict, as_list

_PERMISSIONS = ("select", "insert", "update", "delete")
_BOOL_OPS = frozenset({"_and", "_or"})


@dataclass(frozen=True)
class Problem:
    """One inconsistency, with the file it is in."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class MetadataReport:
    """What the check looked at and what it found."""

    origin: str
    tables: list[str] = field(default_factory=list[str])
    problems: list[Problem] = field(default_factory=list[Problem])


@dataclass(frozen=True)
class _Table:
    name: TableName
    file: str
    raw: Mapping[str, object]
    relationships: Mapping[str, TableName | None]
    """Relationship name → remote table (None when it could not be resolved)."""


def check_project(project: Path, schema: DbSchema | SourceSchemas, root: Path) -> MetadataReport:
    """Load `project` (a Hasura v3 project dir) and check it against `schema`.

    One DbSchema backs every PostgreSQL source (Prisma); SourceSchemas gives each source
    its own (Hasura migrations). Structural errors (bad YAML, wrong version, missing files,
    a source without a schema) raise HasuraMetadataError; inconsistencies are collected so
    one run reports all of them.
    """
    report = MetadataReport(origin=schema.origin)
    config = _mapping(load_yaml(project / "config.yaml", root), _rel(project / "config.yaml", root))
    if config.get("version") != 3:
        raise HasuraMetadataError(
            f"{_rel(project / 'config.yaml', root)}: version is {config.get('version')!r}; "
            "only config v3 is supported (run `hasura scripts update-project-v3`)"
        )
    metadata_dir = project / str(config.get("metadata_directory", "metadata"))
    version = _mapping(
        load_yaml(metadata_dir / "version.yaml", root), _rel(metadata_dir / "version.yaml", root)
    )
    if version.get("version") != 3:
        raise HasuraMetadataError(
            f"{_rel(metadata_dir / 'version.yaml', root)}: metadata version must be 3"
        )
    databases_file = metadata_dir / "databases" / "databases.yaml"
    databases = load_yaml(databases_file, root)
    for db in _list(databases, _rel(databases_file, root)):
        db_map = _mapping(db, _rel(databases_file, root))
        if db_map.get("kind", "postgres") != "postgres":
            continue  # only PostgreSQL sources are backed by a schema
        source = str(db_map.get("name"))
        source_schema = _source_schema(schema, source, _rel(databases_file, root))
        tables = [
            _table_entry(entry, databases_file, root, source_schema)
            for entry in _list(
                db_map.get("tables", []), f"{_rel(databases_file, root)}: {source}.tables"
            )
        ]
        report.tables.extend(display(t.name) for t in tables)
        by_name = {t.name: t for t in tables}
        for table in tables:
            report.problems.extend(_check_table(table, source_schema, by_name))
    return report


def _source_schema(schema: DbSchema | SourceSchemas, source: str, file: str) -> DbSchema:
    if isinstance(schema, DbSchema):
        return schema
    found = schema.by_source.get(source)
    if found is None:
        known = ", ".join(sorted(schema.by_source)) or "none"
        raise HasuraMetadataError(
            f"{file}: database source {source!r} has no migrations in the {schema.origin} "
            f"(sources with migrations: {known}); add {source}/<version>_<name>/up.sql "
            "there or remove the source"
        )
    return found


def _table_entry(entry: object, fallback: Path, root: Path, schema: DbSchema) -> _Table:
    file = _rel(entry.source if isinstance(entry, Sourced) else fallback, root)
    raw = _mapping(entry, file)
    spec = _mapping(raw.get("table"), file)
    name = (str(spec.get("schema", "public")), str(spec.get("name", "")))
    relationships: dict[str, TableName | None] = {}
    db_table = schema.tables.get(name)
    for kind in ("object_relationships", "array_relationships"):
        for rel in _list(raw.get(kind), file):
            rel_map = _mapping(rel, file)
            relationships[str(rel_map.get("name"))] = _remote_table(kind, rel_map, db_table)
    return _Table(name=name, file=file, raw=raw, relationships=relationships)


def _remote_table(kind: str, rel: Mapping[str, object], table: DbTable | None) -> TableName | None:
    using = as_dict(rel.get("using"))
    if using is None:
        return None
    fk_on = using.get("foreign_key_constraint_on")
    manual = as_dict(using.get("manual_configuration"))
    if manual is not None:
        return _table_name(manual.get("remote_table"))
    fk_table = as_dict(fk_on)
    if kind == "array_relationships" and fk_table is not None:
        return _table_name(fk_table.get("table"))
    if kind == "object_relationships" and table is not None:
        columns = _columns(fk_on)
        for fk in table.foreign_keys:
            if set(fk.columns) == set(columns):
                return fk.ref_table
    return None


def _check_table(
    table: _Table, schema: DbSchema, tables: Mapping[TableName, _Table]
) -> Iterator[Problem]:
    where = f"table {display(table.name)}"
    db = schema.tables.get(table.name)
    if db is None:
        yield Problem(
            table.file,
            f"{where} is tracked but does not exist in the {schema.origin}; "
            "untrack it or add a migration",
        )
        return
    yield from _check_relationships(table, db, schema)
    for kind in _PERMISSIONS:
        seen: set[str] = set()
        for perm in _list(table.raw.get(f"{kind}_permissions"), table.file):
            perm_map = _mapping(perm, table.file)
            role = str(perm_map.get("role"))
            label = f"{where}: {kind} permission for role {role!r}"
            if role in seen:
                yield Problem(table.file, f"{label} is declared twice")
            seen.add(role)
            body = _mapping(perm_map.get("permission"), table.file)
            columns = body.get("columns", [])
            if columns != "*":
                for column in _list(columns, table.file):
                    if str(column) not in db.columns:
                        yield Problem(
                            table.file,
                            f"{label}: column {column!r} does not exist "
                            f"(columns: {', '.join(sorted(db.columns))})",
                        )
            for column in as_dict(body.get("set")) or {}:
                if column not in db.columns:
                    yield Problem(table.file, f"{label}: preset column {column!r} does not exist")
            for key in ("filter", "check"):
                if body.get(key) is not None:  # `check: null` is valid: no condition
                    yield from _check_bool_exp(body[key], table, schema, tables, f"{label}: {key}")


def _check_relationships(table: _Table, db: DbTable, schema: DbSchema) -> Iterator[Problem]:
    where = f"table {display(table.name)}"
    for kind in ("object_relationships", "array_relationships"):
        for rel in _list(table.raw.get(kind), table.file):
            rel_map = _mapping(rel, table.file)
            name = str(rel_map.get("name"))
            label = f"{where}: relationship {name!r}"
            if name in db.columns:
                yield Problem(table.file, f"{label} has the same name as a column; rename it")
            using = as_dict(rel_map.get("using"))
            if using is None:
                yield Problem(table.file, f"{label} has no `using`")
                continue
            manual = as_dict(using.get("manual_configuration"))
            fk_on = using.get("foreign_key_constraint_on")
            if manual is not None:
                yield from _check_manual(label, table, db, manual, schema)
            elif kind == "object_relationships":
                yield from _check_object_fk(label, name, table, db, fk_on)
            else:
                yield from _check_array_fk(label, table, fk_on, schema)


def _check_object_fk(
    label: str, name: str, table: _Table, db: DbTable, fk_on: object
) -> Iterator[Problem]:
    columns = _columns(fk_on)
    missing = [c for c in columns if c not in db.columns]
    if not columns or missing:
        yield Problem(
            table.file,
            f"{label}: foreign_key_constraint_on column(s) {missing or fk_on!r} "
            f"do not exist on {display(table.name)}",
        )
    elif table.relationships.get(name) is None:
        yield Problem(
            table.file,
            f"{label}: no foreign key on {display(table.name)}({', '.join(columns)}); "
            "add one in a migration or use manual_configuration",
        )


def _check_array_fk(
    label: str, table: _Table, fk_raw: object, schema: DbSchema
) -> Iterator[Problem]:
    fk_on = as_dict(fk_raw)
    if fk_on is None:
        yield Problem(
            table.file,
            f"{label}: array relationship needs foreign_key_constraint_on.table and column",
        )
        return
    remote_name = _table_name(fk_on.get("table"))
    remote = schema.tables.get(remote_name) if remote_name else None
    if remote is None or remote_name is None:
        yield Problem(table.file, f"{label}: remote table {fk_on.get('table')!r} does not exist")
        return
    columns = _columns(fk_on.get("columns", fk_on.get("column")))
    missing = [c for c in columns if c not in remote.columns]
    if not columns or missing:
        yield Problem(
            table.file,
            f"{label}: column(s) {missing or columns!r} do not exist on {display(remote_name)}",
        )
        return
    if not any(
        set(fk.columns) == set(columns) and fk.ref_table == table.name for fk in remote.foreign_keys
    ):
        yield Problem(
            table.file,
            f"{label}: no foreign key {display(remote_name)}({', '.join(columns)}) "
            f"→ {display(table.name)}; add one in a migration",
        )


def _check_manual(
    label: str, table: _Table, db: DbTable, manual: Mapping[str, object], schema: DbSchema
) -> Iterator[Problem]:
    remote_name = _table_name(manual.get("remote_table"))
    remote = schema.tables.get(remote_name) if remote_name else None
    if remote is None or remote_name is None:
        yield Problem(
            table.file, f"{label}: remote table {manual.get('remote_table')!r} does not exist"
        )
        return
    mapping = as_dict(manual.get("column_mapping"))
    if not mapping:
        yield Problem(table.file, f"{label}: manual_configuration needs a column_mapping")
        return
    for local, remote_col in mapping.items():
        if local not in db.columns:
            yield Problem(
                table.file, f"{label}: column {local!r} does not exist on {display(table.name)}"
            )
        if str(remote_col) not in remote.columns:
            yield Problem(
                table.file,
                f"{label}: column {remote_col!r} does not exist on {display(remote_name)}",
            )


def _check_bool_exp(
    exp: object,
    table: _Table,
    schema: DbSchema,
    tables: Mapping[TableName, _Table],
    label: str,
    *,
    file: str | None = None,
) -> Iterator[Problem]:
    """Check the columns and relationships a filter/check uses; problems are reported
    against `file`, the file declaring the permission (not the table walked into)."""
    file = file or table.file
    mapping = as_dict(exp)
    if mapping is None:
        yield Problem(file, f"{label}: a boolean expression must be a mapping")
        return
    db = schema.tables.get(table.name)
    for key, value in mapping.items():
        if key in _BOOL_OPS:
            for sub in as_list(value) or [value]:
                yield from _check_bool_exp(sub, table, schema, tables, label, file=file)
        elif key == "_not":
            yield from _check_bool_exp(value, table, schema, tables, label, file=file)
        elif key == "_exists":
            exists = as_dict(value) or {}
            target = _table_name(exists.get("_table"))
            other = tables.get(target) if target else None
            if target is None or target not in schema.tables:
                yield Problem(file, f"{label}: _exists on unknown table {exists.get('_table')!r}")
            elif other is not None:
                yield from _check_bool_exp(
                    exists.get("_where", {}), other, schema, tables, label, file=file
                )
        elif db is not None and key in db.columns:
            continue  # a column comparison: operators are Hasura's to check
        elif key in table.relationships:
            remote = table.relationships[key]
            other = tables.get(remote) if remote else None
            if other is not None:
                yield from _check_bool_exp(
                    value, other, schema, tables, f"{label} (via {key})", file=file
                )
        else:
            yield Problem(
                file,
                f"{label}: {key!r} is neither a column nor a relationship of {display(table.name)}",
            )


def _columns(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in as_list(value) or []]


def _table_name(value: object) -> TableName | None:
    if isinstance(value, str):
        return ("public", value)
    spec = as_dict(value)
    if spec is None or "name" not in spec:
        return None
    return (str(spec.get("schema", "public")), str(spec["name"]))


def _mapping(value: object, file: str) -> Mapping[str, object]:
    mapping = as_dict(value)
    if mapping is None:
        raise HasuraMetadataError(f"{file}: expected a mapping, got {type(value).__name__}")
    return mapping


def _list(value: object, file: str) -> list[object]:
    if value is None:
        return []
    items = as_list(value)
    if items is None:
        raise HasuraMetadataError(f"{file}: expected a list, got {type(value).__name__}")
    return items


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
