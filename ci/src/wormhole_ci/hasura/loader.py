"""Reading a Hasura v3 project's metadata files, resolving `!include` references.

The Hasura CLI writes includes as quoted strings (`tables: "!include default/tables.yaml"`);
a YAML tag (`!include file`) is accepted too.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from wormhole_ci.errors import HasuraMetadataError
from wormhole_ci.jsonish import as_dict, as_list


class Sourced(dict[str, object]):
    """A mapping that remembers the file it was read from (for error messages)."""

    source: Path


class _IncludeLoader(yaml.SafeLoader):
    """SafeLoader plus Hasura's `!include path` (relative to the including file)."""

    base: Path
    root: Path


def _include(loader: _IncludeLoader, node: yaml.Node) -> object:
    if not isinstance(node, yaml.ScalarNode):
        raise HasuraMetadataError(f"{_rel(loader.base, loader.root)}: !include takes a file path")
    relative = str(loader.construct_scalar(node))
    return load_yaml(loader.base.parent / relative, loader.root)


_IncludeLoader.add_constructor("!include", _include)  # pyright: ignore[reportUnknownMemberType]


def load_yaml(path: Path, root: Path) -> object:
    """Parse `path` (following includes); mappings come back as `Sourced`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HasuraMetadataError(
            f"{_rel(path, root)}: file not found (referenced by !include or required)"
        ) from None
    loader = _IncludeLoader(text)
    loader.base = path
    loader.root = root
    try:
        data: object = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise HasuraMetadataError(f"{_rel(path, root)}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return _tag(data, path, root)


_INCLUDE = "!include "


def _tag(data: object, path: Path, root: Path) -> object:
    if isinstance(data, str) and data.startswith(_INCLUDE):
        return load_yaml(path.parent / data.removeprefix(_INCLUDE).strip(), root)
    if isinstance(data, Sourced):
        return data  # already tagged by the included file's own load
    mapping = as_dict(data)
    if mapping is not None:
        out = Sourced({k: _tag(v, path, root) for k, v in mapping.items()})
        out.source = path
        return out
    items = as_list(data)
    if items is not None:
        return [_tag(v, path, root) for v in items]
    return data


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
