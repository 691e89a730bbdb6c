"""The Grafana dashboards: every panel query parses (promtool) and uses declared metrics."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import yaml

from wormhole_ci.delivery.documents import InvalidFile, load_json
from wormhole_ci.delivery.promql import (
    InventoryEntry,
    UnknownVariableError,
    for_promtool,
    undeclared,
)
from wormhole_ci.delivery.rules import shown_path
from wormhole_ci.delivery.tools import indented, run

_RECORD = "dashboard:query:"
_PARSE_ERROR = re.compile(rf'"{_RECORD}(\d+)": could not parse expression: (.*)$')


@dataclass(frozen=True)
class PanelQuery:
    """One `expr` of a dashboard, with the panel it belongs to."""

    shown: str
    """The dashboard file as messages name it."""
    panel: str
    expr: str

    @property
    def where(self) -> str:
        return f"{self.shown}: panel {self.panel!r}"


def exprs(node: object) -> Iterator[str]:
    """Every `expr` of a dashboard's JSON (panel targets), wherever it is nested."""
    yield from (expr for _, expr in _panel_exprs(node, "(dashboard)"))


def read_queries(paths: list[Path], root: Path) -> tuple[list[PanelQuery], list[str]]:
    """Every panel query of the dashboard files, and a problem per unreadable file."""
    queries: list[PanelQuery] = []
    problems: list[str] = []
    for path in paths:
        shown = shown_path(path, root)
        try:
            doc = load_json(path, shown)
        except InvalidFile as exc:
            problems.append(str(exc))
            continue
        queries += [PanelQuery(shown, title, e) for title, e in _panel_exprs(doc, "(dashboard)")]
    return queries, problems


def _panel_exprs(node: object, panel: str) -> Iterator[tuple[str, str]]:
    """(panel title, expr) pairs: a dict with a `title` and `targets` is a panel."""
    if isinstance(node, dict):
        table = cast("dict[str, object]", node)
        if "targets" in table and isinstance(table.get("title"), str):
            panel = str(table["title"])
        for key, value in table.items():
            if key == "expr" and isinstance(value, str):
                yield panel, value
            else:
                yield from _panel_exprs(value, panel)
    elif isinstance(node, list):
        for item in cast("list[object]", node):
            yield from _panel_exprs(item, panel)


def parse_problems(promtool: str, queries: list[PanelQuery]) -> list[str]:
    """promtool parses each query as a recording rule (Grafana's interval variables replaced
    by fixed durations); a query it refuses is named by dashboard and panel."""
    problems: list[str] = []
    rules: list[dict[str, str]] = []
    numbered: dict[int, PanelQuery] = {}
    for query in queries:
        try:
            expr = for_promtool(query.expr)
        except UnknownVariableError as exc:
            problems.append(
                f"{query.where}: query uses the Grafana variable {exc.variable}, which promtool "
                "cannot check; use $__rate_interval, $__interval or $__range, or a fixed value"
            )
            continue
        numbered[len(rules)] = query
        rules.append({"record": f"{_RECORD}{len(rules)}", "expr": expr})
    if not rules:
        return problems
    with tempfile.TemporaryDirectory(prefix="wormhole-ci-dashboards-") as tmp:
        path = Path(tmp) / "dashboards.rules.yml"
        doc = {"groups": [{"name": "dashboards", "rules": rules}]}
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        done = run([promtool, "check", "rules", path])
    if done.code == 0:
        return problems
    named = False
    for line in done.output.splitlines():
        match = _PARSE_ERROR.search(line)
        if match:
            named = True
            query = numbered[int(match.group(1))]
            problems.append(
                f"{query.where}: query does not parse: {match.group(2)}; fix the PromQL "
                f"(in grafana/generate.py when the dashboards are generated): {query.expr}"
            )
    if not named:  # an error promtool did not tie to one rule: show it whole
        problems.append(
            "dashboards: promtool check rules refused the panel queries:"
            + indented(done.output, (str(path), "dashboards.rules.yml"))
        )
    return problems


def metric_problems(
    queries: list[PanelQuery], inventory: list[InventoryEntry], shown_inventory: str
) -> list[str]:
    """A problem per metric a panel query uses that the inventory does not declare."""
    problems: list[str] = []
    for query in queries:
        problems += undeclared(query.where, query.expr, inventory, shown_inventory)
    return sorted(set(problems), key=problems.index)
