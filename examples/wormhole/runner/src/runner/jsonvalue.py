"""JSON value types and a checked conversion from untyped data (e.g. ``json.loads`` output)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeAlias, cast

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
JSONObject: TypeAlias = dict[str, JSONValue]


def to_json_value(value: object, where: str = "value") -> JSONValue:
    """Return ``value`` as a JSON value, copying containers; raise ``ValueError`` if it is not one.

    ``where`` names the location in error messages (e.g. ``config.operations[0]``).
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: non-finite number {value!r} is not valid JSON")
        return value
    if isinstance(value, list | tuple):
        items = cast("list[object] | tuple[object, ...]", value)
        return [to_json_value(item, f"{where}[{index}]") for index, item in enumerate(items)]
    if isinstance(value, Mapping):
        return to_json_object(cast("Mapping[object, object]", value), where)
    raise ValueError(f"{where}: {type(value).__name__} is not a JSON value")


def to_json_object(value: object, where: str = "value") -> JSONObject:
    """Return ``value`` as a JSON object (string keys only); raise ``ValueError`` otherwise."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
    result: JSONObject = {}
    for key, item in cast("Mapping[object, object]", value).items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: object keys must be strings, got {key!r}")
        result[key] = to_json_value(item, f"{where}.{key}")
    return result
