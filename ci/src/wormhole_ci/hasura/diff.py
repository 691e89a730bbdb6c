"""What replacing one Hasura metadata object with another changes, object by object."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from wormhole_ci.jsonish import as_dict, as_list


@dataclass(frozen=True)
class Change:
    """One metadata object that applying the repository's metadata adds, removes or changes."""

    action: str
    """"added" (in the repository, not live), "removed" (live only) or "changed"."""
    object: str
    """Readable, e.g. "table public.users", "select permission on public.users for role user"."""

    def __str__(self) -> str:
        return f"{self.action} {self.object}"


_RELATIONSHIPS = ("object_relationships", "array_relationships")
_PERMISSIONS = ("insert", "select", "update", "delete")
_TABLE_PARTS = frozenset(
    {
        "table",
        *_RELATIONSHIPS,
        *(f"{p}_permissions" for p in _PERMISSIONS),
        "event_triggers",
        "computed_fields",
        "remote_relationships",
    }
)
"""Keys of a table entry diffed object by object; every other key is its configuration."""
_SOURCE_PARTS = frozenset({"name", "tables"})
_NAMED_LISTS = (
    ("actions", "action", "name"),
    ("cron_triggers", "cron trigger", "name"),
    ("remote_schemas", "remote schema", "name"),
    ("query_collections", "query collection", "name"),
    ("allowlist", "allowlist entry", "collection"),
    ("rest_endpoints", "rest endpoint", "name"),
    ("inherited_roles", "inherited role", "role_name"),
)
_CUSTOM_TYPES = (
    ("enums", "enum"),
    ("input_objects", "input object"),
    ("objects", "object type"),
    ("scalars", "scalar"),
)
_TOP_DIFFED = frozenset({"version", "sources", "custom_types", *(k for k, _, _ in _NAMED_LISTS)})


def diff_metadata(live: Mapping[str, object], repo: Mapping[str, object]) -> list[Change]:
    """The changes applying `repo` over `live` makes, in a stable order: sources (their
    configuration, tables, and each table's parts), then the top-level objects.

    Objects are compared after normalisation (None values and empty lists dropped, lists of
    column names sorted), so formatting and column order make no change.
    """
    changes: list[Change] = []
    live_sources = _by_key(live.get("sources"), "name")
    repo_sources = _by_key(repo.get("sources"), "name")
    for name in _union(live_sources, repo_sources):
        changes.extend(_source(name, live_sources.get(name), repo_sources.get(name)))
    for key, label, field in _NAMED_LISTS:
        changes.extend(_named(label, _by_key(live.get(key), field), _by_key(repo.get(key), field)))
    live_types = as_dict(live.get("custom_types")) or {}
    repo_types = as_dict(repo.get("custom_types")) or {}
    for key, label in _CUSTOM_TYPES:
        changes.extend(
            _named(
                f"custom {label}",
                _by_key(live_types.get(key), "name"),
                _by_key(repo_types.get(key), "name"),
            )
        )
    for key in _union(
        {k: v for k, v in live.items() if k not in _TOP_DIFFED},
        {k: v for k, v in repo.items() if k not in _TOP_DIFFED},
    ):
        changes.extend(_compare(f"setting {key}", live.get(key), repo.get(key)))
    return changes


def _source(name: str, live: object, repo: object) -> Iterator[Change]:
    suffix = "" if name == "default" else f" in source {name}"
    if live is None or repo is None:
        yield Change("added" if live is None else "removed", f"source {name}")
    live_map = as_dict(live) or {}
    repo_map = as_dict(repo) or {}
    if live is not None and repo is not None:
        yield from _compare(
            f"source configuration {name}",
            {k: v for k, v in live_map.items() if k not in _SOURCE_PARTS},
            {k: v for k, v in repo_map.items() if k not in _SOURCE_PARTS},
        )
    live_tables = _tables(live_map.get("tables"))
    repo_tables = _tables(repo_map.get("tables"))
    for table in _union(live_tables, repo_tables):
        yield from _table(table, suffix, live_tables.get(table), repo_tables.get(table))


def _table(name: str, suffix: str, live: object, repo: object) -> Iterator[Change]:
    if live is None or repo is None:
        yield Change("added" if live is None else "removed", f"table {name}{suffix}")
    live_map = as_dict(live) or {}
    repo_map = as_dict(repo) or {}
    if live is not None and repo is not None:
        yield from _compare(
            f"table configuration {name}{suffix}",
            {k: v for k, v in live_map.items() if k not in _TABLE_PARTS},
            {k: v for k, v in repo_map.items() if k not in _TABLE_PARTS},
        )
    live_rels = _relationships(live_map)
    repo_rels = _relationships(repo_map)
    for rel in _union(live_rels, repo_rels):
        yield from _compare(
            f"relationship {name}.{rel}{suffix}", live_rels.get(rel), repo_rels.get(rel)
        )
    for kind in _PERMISSIONS:
        key = f"{kind}_permissions"
        live_perms = _by_key(live_map.get(key), "role")
        repo_perms = _by_key(repo_map.get(key), "role")
        for role in _union(live_perms, repo_perms):
            yield from _compare(
                f"{kind} permission on {name}{suffix} for role {role}",
                live_perms.get(role),
                repo_perms.get(role),
            )
    for key, label in (
        ("event_triggers", "event trigger"),
        ("computed_fields", "computed field"),
        ("remote_relationships", "remote relationship"),
    ):
        live_items = _by_key(live_map.get(key), "name")
        repo_items = _by_key(repo_map.get(key), "name")
        for item in _union(live_items, repo_items):
            yield from _compare(
                f"{label} {name}.{item}{suffix}", live_items.get(item), repo_items.get(item)
            )


def _relationships(table: Mapping[str, object]) -> dict[str, object]:
    """Object and array relationships by name (the kind is part of the compared value)."""
    out: dict[str, object] = {}
    for kind in _RELATIONSHIPS:
        for name, rel in _by_key(table.get(kind), "name").items():
            out[name] = {"kind": kind, "definition": rel}
    return out


def _named(label: str, live: Mapping[str, object], repo: Mapping[str, object]) -> Iterator[Change]:
    for name in _union(live, repo):
        yield from _compare(f"{label} {name}", live.get(name), repo.get(name))


def _compare(label: str, live: object, repo: object) -> Iterator[Change]:
    live_norm, repo_norm = normalise(live), normalise(repo)
    if live_norm == repo_norm:
        return
    if live_norm is None:
        yield Change("added", label)
    elif repo_norm is None:
        yield Change("removed", label)
    else:
        yield Change("changed", label)


def normalise(value: object) -> object:
    """`value` with None values, empty lists and empty objects dropped (Hasura's export omits
    them) and lists of plain strings named `columns` sorted; None when nothing is left."""
    mapping = as_dict(value)
    if mapping is not None:
        out: dict[str, object] = {}
        for key, item in mapping.items():
            norm = normalise(item)
            if key == "columns":
                names = as_list(norm)
                if names is not None and all(isinstance(n, str) for n in names):
                    norm = sorted(str(n) for n in names)
            if norm is not None:
                out[key] = norm
        return out or None if mapping else None
    items = as_list(value)
    if items is not None:
        return [normalise(v) for v in items] or None
    return value


def _tables(raw: object) -> dict[str, object]:
    """A source's tables by `schema.name` (schema public when not given)."""
    out: dict[str, object] = {}
    for item in as_list(raw) or []:
        entry = as_dict(item) or {}
        spec = as_dict(entry.get("table"))
        if spec is not None:
            key = f"{spec.get('schema', 'public')}.{spec.get('name')}"
        else:
            key = f"public.{entry.get('table')}"
        out[key] = entry
    return out


def _by_key(raw: object, field: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in as_list(raw) or []:
        entry = as_dict(item)
        if entry is not None:
            out[str(entry.get(field))] = entry
    return out


def _union(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
    return sorted(set(a) | set(b))


def canonical(value: object) -> str:
    """A stable JSON text of `value` after normalisation (for equality and fingerprints)."""
    return json.dumps(normalise(value), sort_keys=True)
