"""A Hasura config-v3 project directory as the metadata object `export_metadata` returns.

The layout is the Hasura CLI's (https://hasura.io/docs/latest/migrations-metadata-seeds/metadata-format/):
`config.yaml` names the metadata directory, and each file there holds one top-level key
of the metadata (`databases/databases.yaml` → `sources`, `actions.yaml` → `actions` and
`custom_types`, `allow_list.yaml` → `allowlist`, ...). Like Hasura's export, empty lists
and empty objects are left out, except `version` and `sources`, which it always writes
(graphql-engine's `metadataToOrdJSON`: `listToMaybeOrdPair` per list, `custom_types` only
when not `emptyCustomTypes`, in server/src-lib/Hasura/RQL/Types/Metadata*.hs).
"""

from __future__ import annotations

from pathlib import Path

from wormhole_ci.errors import HasuraMetadataError, ManifestError
from wormhole_ci.hasura.loader import load_yaml
from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.manifest import MANIFEST_NAME, Manifest, ServiceKind

_LIST_FILES = {
    "allow_list.yaml": "allowlist",
    "cron_triggers.yaml": "cron_triggers",
    "query_collections.yaml": "query_collections",
    "remote_schemas.yaml": "remote_schemas",
    "rest_endpoints.yaml": "rest_endpoints",
    "inherited_roles.yaml": "inherited_roles",
    "backend_configs.yaml": "backend_configs",
}
"""Files holding one top-level list of the metadata."""
_OBJECT_FILES = {
    "api_limits.yaml": "api_limits",
    "graphql_schema_introspection.yaml": "graphql_schema_introspection",
    "metrics_config.yaml": "metrics_config",
    "network.yaml": "network",
    "opentelemetry.yaml": "opentelemetry",
}
"""Files holding one top-level object (omitted when it holds nothing)."""
_CUSTOM_TYPE_KINDS = ("enums", "input_objects", "objects", "scalars")
_ALWAYS = frozenset({"version", "sources"})
_SOURCE_ALWAYS = frozenset({"name", "kind", "tables", "configuration"})


def hasura_project(manifest: Manifest) -> Path | None:
    """The directory of the manifest's hasura service; None without one (several: an error)."""
    specs = [s for s in manifest.services if s.kind is ServiceKind.HASURA]
    if len(specs) > 1:
        names = ", ".join(s.name for s in specs)
        raise ManifestError(
            f"{manifest.root / MANIFEST_NAME}: several services of kind hasura ({names}); "
            "a release applies one Hasura project, keep one of them"
        )
    return manifest.root / specs[0].path if specs else None


def repo_metadata(project: Path, root: Path) -> dict[str, object]:
    """The metadata (Hasura metadata version 3, plain JSON values) of the project at `project`.

    `root` only shortens file names in errors. Actions declared in `actions.graphql` are
    refused (HasuraMetadataError) until their SDL is translated.
    """
    config_file = project / "config.yaml"
    config = _mapping(load_yaml(config_file, root), config_file, root)
    if config.get("version") != 3:
        raise HasuraMetadataError(
            f"{_rel(config_file, root)}: version is {config.get('version')!r}; "
            "only config v3 is supported (run `hasura scripts update-project-v3`)"
        )
    directory = project / str(config.get("metadata_directory") or "metadata")
    version_file = directory / "version.yaml"
    version = _mapping(load_yaml(version_file, root), version_file, root)
    if version.get("version") != 3:
        raise HasuraMetadataError(f"{_rel(version_file, root)}: metadata version must be 3")
    out: dict[str, object] = {"version": 3, "sources": _sources(directory, root)}
    _actions(directory, root, out)
    for name, key in _LIST_FILES.items():
        file = directory / name
        if file.is_file():
            out[key] = _list(plain(load_yaml(file, root)), file, root)
    for name, key in _OBJECT_FILES.items():
        file = directory / name
        if file.is_file():
            out[key] = _mapping(plain(load_yaml(file, root)), file, root)
    return prune(out)


def _sources(directory: Path, root: Path) -> list[object]:
    file = directory / "databases" / "databases.yaml"
    if not file.is_file():
        return []
    sources: list[object] = []
    for entry in _list(plain(load_yaml(file, root)), file, root):
        source = _mapping(entry, file, root)
        if "name" not in source:
            raise HasuraMetadataError(f"{_rel(file, root)}: a source without a name")
        source.setdefault("kind", "postgres")
        source.setdefault("tables", [])
        source.setdefault("configuration", {})
        tables = as_list(source["tables"])
        if tables is None:
            raise HasuraMetadataError(
                f"{_rel(file, root)}: {source['name']}.tables must be a list of tables"
            )
        for table in tables:
            if as_dict(table) is None or "table" not in _mapping(table, file, root):
                raise HasuraMetadataError(
                    f"{_rel(file, root)}: {source['name']}.tables: every entry needs a `table`"
                )
        sources.append(source)
    return sources


def _actions(directory: Path, root: Path, out: dict[str, object]) -> None:
    sdl = directory / "actions.graphql"
    if sdl.is_file() and _graphql_content(sdl.read_text(encoding="utf-8")):
        raise HasuraMetadataError(
            f"{_rel(sdl, root)}: declares actions or types in SDL, which hasura-apply does not "
            "support yet; keep it empty (comments only) or apply this project with the Hasura CLI"
        )
    file = directory / "actions.yaml"
    if not file.is_file():
        return
    data = _mapping(plain(load_yaml(file, root)), file, root)
    if "actions" in data:
        out["actions"] = _list(data["actions"], file, root)
    if "custom_types" in data:
        types = _mapping(data["custom_types"], file, root)
        out["custom_types"] = {k: v for k, v in types.items() if k in _CUSTOM_TYPE_KINDS}


def _graphql_content(text: str) -> bool:
    """Whether GraphQL SDL holds anything but comments and blank lines."""
    return any(line.split("#", 1)[0].strip() for line in text.splitlines())


def plain(value: object) -> object:
    """`value` with the loader's `Sourced` mappings turned into plain dicts (JSON-ready)."""
    mapping = as_dict(value)
    if mapping is not None:
        return {k: plain(v) for k, v in mapping.items()}
    items = as_list(value)
    if items is not None:
        return [plain(v) for v in items]
    return value


def prune(metadata: dict[str, object]) -> dict[str, object]:
    """Drop what Hasura's export leaves out: empty top-level lists/objects, empty custom
    type kinds, a table's empty relationship/permission/trigger lists."""
    out: dict[str, object] = {}
    for key, raw in metadata.items():
        value = raw
        if key == "sources":
            value = [_prune_source(s) for s in as_list(raw) or []]
        elif key == "custom_types":
            types = as_dict(raw) or {}
            value = {k: v for k, v in types.items() if not _empty(v)}
        if key in _ALWAYS or not _empty(value):
            out[key] = value
    return out


def _prune_source(source: object) -> object:
    mapping = as_dict(source)
    if mapping is None:
        return source
    out: dict[str, object] = {}
    for key, raw in mapping.items():
        value = [_prune_table(t) for t in as_list(raw) or []] if key == "tables" else raw
        if key in _SOURCE_ALWAYS or not _empty(value):
            out[key] = value
    return out


def _prune_table(table: object) -> object:
    mapping = as_dict(table)
    if mapping is None:
        return table
    return {k: v for k, v in mapping.items() if k == "table" or not _empty(v)}


def _empty(value: object) -> bool:
    if value is None:
        return True
    items = as_list(value)
    if items is not None:
        return not items
    mapping = as_dict(value)
    if mapping is not None:
        return all(_empty(v) for v in mapping.values())
    return False


def _mapping(value: object, file: Path, root: Path) -> dict[str, object]:
    mapping = as_dict(value)
    if mapping is None:
        raise HasuraMetadataError(f"{_rel(file, root)}: expected a mapping")
    return {k: plain(v) for k, v in mapping.items()}


def _list(value: object, file: Path, root: Path) -> list[object]:
    items = as_list(value)
    if items is None:
        raise HasuraMetadataError(f"{_rel(file, root)}: expected a list")
    return [plain(v) for v in items]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
