"""What every parser shares: the raw run, JSON loading, and mapping paths to services."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wormhole_ci.security.model import Severity

ServiceOf = Callable[[str], str]
"""Maps a monorepo-relative path to the service owning it ("" when none)."""


@dataclass(frozen=True)
class RawRun:
    """What a scanner produced."""

    exit_code: int | None
    stdout: str
    stderr: str = ""
    tool_version: str = ""


class ParseError(ValueError):
    """The output is not what the scanner documents."""


def load_json(text: str, tool: str) -> object:
    """Parse JSON output, or raise ParseError naming the tool."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        snippet = text.strip()[:120] or "(empty output)"
        raise ParseError(
            f"{tool} did not print JSON ({exc.msg} at line {exc.lineno}): {snippet}"
        ) from None


def severity_from(table: Mapping[str, Severity], value: object) -> Severity:
    """The table's severity for `value` (case-insensitive); UNKNOWN for anything else."""
    return table.get(str(value).strip().upper(), Severity.UNKNOWN)


def services_by_path(paths: Mapping[str, str]) -> ServiceOf:
    """A ServiceOf for services at `paths` (service → folder); the longest prefix wins."""
    ordered = sorted(
        ((p.rstrip("/"), s) for s, p in paths.items() if p not in ("", ".")),
        key=lambda x: -len(x[0]),
    )

    def service_of(path: str) -> str:
        for prefix, service in ordered:
            if path == prefix or path.startswith(prefix + "/"):
                return service
        return ""

    return service_of


_DECORATION = str.maketrans("", "", "\u2502\u256d\u256e\u2570\u256f\u2500\u00d7\u2716\u274c\u26a0")
"""Box drawing, multiplication sign and cross/warning marks."""


def last_lines(text: str, count: int = 3) -> str:
    """The last non-empty lines of a tool's stderr, joined on one line (for reasons);
    box-drawing decoration some tools print around errors is dropped."""
    lines = [" ".join(line.translate(_DECORATION).split()) for line in text.strip().splitlines()]
    return " ".join([line for line in lines if line][-count:])
