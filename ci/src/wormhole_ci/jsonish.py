"""Narrowing parsed JSON/TOML/YAML values (typed `object`) to typed containers."""

from __future__ import annotations

import json
from typing import cast


def as_dict(value: object) -> dict[str, object] | None:
    """`value` as a str-keyed dict (keys stringified), or None when it is not a mapping."""
    if not isinstance(value, dict):
        return None
    return {str(k): v for k, v in cast(dict[object, object], value).items()}


def as_list(value: object) -> list[object] | None:
    """`value` as a list, or None when it is not one."""
    if not isinstance(value, list):
        return None
    return list(cast(list[object], value))


def as_str_list(value: object) -> list[str] | None:
    """`value` as a list of strings, or None when it is not exactly that."""
    items = as_list(value)
    if items is None or not all(isinstance(v, str) for v in items):
        return None
    return [str(v) for v in items]


def outcome_of(result_json: str, exit_code: int) -> str:
    """The `outcome` a job wrote in its JSON result; without one, what its exit code says."""
    try:
        outcome = (as_dict(json.loads(result_json)) or {}).get("outcome")
    except ValueError:
        outcome = None
    if isinstance(outcome, str) and outcome:
        return outcome
    return "done" if exit_code == 0 else "failed"
