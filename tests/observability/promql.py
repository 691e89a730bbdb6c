"""PromQL as text for the tests: the metric names an expression selects, Grafana's
variables replaced so promtool can parse a panel's query, and the metric inventory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Words of PromQL that look like metric names: keywords and aggregation modifiers.
# Function names are recognised by the "(" that follows them.
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"}
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])\s*(\()?")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# What Grafana substitutes before a query reaches Prometheus, for parsing only.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (by name, not by a `{__name__=…}` matcher)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = _GROUPING.sub("", text)
    names: set[str] = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def for_promtool(expr: str) -> str:
    """A Grafana panel query made plain PromQL: the interval variables replaced."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


@dataclass(frozen=True)
class InventoryEntry:
    """One line of deploy/observability/metrics.txt."""

    name: str
    type: str
    source: str
    """The scrape job exporting it (a job_name of prometheus.yml), or `scrape`."""


def read_inventory(path: Path) -> list[InventoryEntry]:
    """The entries of a metrics.txt (`name type source`, `#` comments)."""
    entries: list[InventoryEntry] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        assert len(fields) == 3, f"{path}:{number}: expected `name type source`, got {line!r}"
        entries.append(InventoryEntry(*fields))
    return entries


def declared(name: str, entries: list[InventoryEntry]) -> bool:
    """Whether a selected series name is declared: itself, or a histogram's series."""
    if any(e.name == name for e in entries):
        return True
    return any(
        e.type == "histogram" and name == e.name + suffix
        for e in entries
        for suffix in _HISTOGRAM_SUFFIXES
    )
