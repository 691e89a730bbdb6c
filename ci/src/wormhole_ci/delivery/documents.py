"""Reading the configuration files as data, with errors that name the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import yaml


class InvalidFile(ValueError):
    """A configuration file cannot be read as the validators expect; the message names it."""


def load_yaml(path: Path, shown: str) -> dict[str, object]:
    """The top-level mapping of a YAML file (`shown`: its name in messages)."""
    try:
        data: object = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidFile(f"{shown}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise InvalidFile(f"{shown}: invalid YAML: {_one_line(str(exc))}; fix the syntax") from None
    return mapping(data, shown)


def load_json(path: Path, shown: str) -> dict[str, object]:
    """The top-level object of a JSON file (`shown`: its name in messages)."""
    try:
        data: object = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidFile(f"{shown}: cannot be read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise InvalidFile(
            f"{shown}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    return mapping(data, shown)


def mapping(value: object, where: str) -> dict[str, object]:
    """`value` as a mapping with string keys, or InvalidFile naming `where`."""
    if not isinstance(value, dict):
        raise InvalidFile(f"{where}: expected a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in cast("dict[object, object]", value).items()}


def items(value: object, where: str) -> list[object]:
    """`value` as a list (None: empty), or InvalidFile naming `where`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidFile(f"{where}: expected a list, got {type(value).__name__}")
    return cast("list[object]", value)


def strings(value: object, where: str) -> dict[str, str]:
    """A mapping of strings (labels, annotations); None is empty."""
    return {k: str(v) for k, v in mapping(value or {}, where).items()}


def _one_line(text: str) -> str:
    return " ".join(text.split())
