"""PromQL as text: the metrics an expression selects, Grafana's variables, metrics.txt."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from wormhole_ci.delivery.documents import InvalidFile

# Words of PromQL that look like metric names: keywords and aggregation modifiers.
# Function names are recognised by the "(" that follows them.
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"}
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])\s*(\()?")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
"""What Grafana substitutes before a query reaches Prometheus, for parsing only."""


class UnknownVariableError(ValueError):
    """A panel query uses a Grafana variable promtool cannot be given a value for."""

    def __init__(self, variable: str) -> None:
        super().__init__(f"unknown Grafana variable {variable}")
        self.variable = variable


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
    """A Grafana panel query made plain PromQL: the interval variables replaced; any other
    variable raises UnknownVariableError."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    left = _VARIABLE.search(expr)
    if left:
        raise UnknownVariableError(left.group(0))
    return expr


@dataclass(frozen=True)
class InventoryEntry:
    """One line of observability/metrics.txt."""

    name: str
    type: str
    source: str
    """The scrape job exporting it (a job_name of prometheus.yml), or `scrape`."""


def read_inventory(path: Path, shown: str | None = None) -> list[InventoryEntry]:
    """The entries of a metrics.txt (`name type source`, `#` comments)."""
    shown = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidFile(
            f"{shown}: cannot be read ({exc.strerror or exc}); it declares every metric "
            "the rules and dashboards use, one `name type source` a line"
        ) from None
    entries: list[InventoryEntry] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 3:
            raise InvalidFile(f"{shown}:{number}: expected `name type source`, got {line!r}")
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


def undeclared(where: str, expr: str, entries: list[InventoryEntry], inventory: str) -> list[str]:
    """A problem per metric `expr` uses that `inventory` (metrics.txt, as shown) lacks."""
    return [
        f"{where} uses metric {name}, which {inventory} does not declare; add "
        f"`{name} <counter|gauge|histogram|summary> <scrape job>` there (or fix the name)"
        for name in sorted(metric_names(expr))
        if not declared(name, entries)
    ]
