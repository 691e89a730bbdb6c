"""The Grafana dashboards: the committed JSON is the generator's output, every panel query
parses (promtool, through a generated rules file) and names only declared metrics."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
import yaml

from tests.observability.conftest import OBSERVABILITY
from wormhole_ci.delivery.dashboards import exprs
from wormhole_ci.delivery.promql import declared, for_promtool, metric_names, read_inventory

GRAFANA = OBSERVABILITY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def _render() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location(
        "observability_dashboards", GRAFANA / "generate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return cast("Callable[[], dict[str, str]]", module.render)()


def _queries() -> dict[str, list[str]]:
    return {path.stem: list(exprs(json.loads(path.read_text()))) for path in DASHBOARDS}


def test_committed_json_is_the_generators_output() -> None:
    rendered = _render()
    assert sorted(rendered) == [p.name for p in DASHBOARDS], "run `make dashboards`"
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], (
            f"{path.name} is stale: run `make dashboards`"
        )


def test_the_five_dashboards() -> None:
    docs = [json.loads(p.read_text()) for p in DASHBOARDS]
    assert {d["uid"] for d in docs} == {
        f"wormhole-{n}" for n in ("api", "queue", "runner", "database", "delivery")
    }
    for doc in docs:
        assert doc["panels"], doc["uid"]
    assert all(_queries().values())


@pytest.mark.ops
def test_every_query_parses(promtool: Path, tmp_path: Path) -> None:
    """promtool parses each panel query as a recording rule (Grafana's interval variables
    replaced by fixed durations)."""
    rules = [
        {"record": f"dashboard:{name.replace('-', '_')}:{n}", "expr": for_promtool(expr)}
        for name, exprs in _queries().items()
        for n, expr in enumerate(exprs)
    ]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", path], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_queries_name_only_declared_metrics() -> None:
    inventory = read_inventory(OBSERVABILITY / "metrics.txt")
    used = {n for exprs in _queries().values() for e in exprs for n in metric_names(e)}
    undeclared = sorted(n for n in used if not declared(n, inventory))
    assert not undeclared, f"not in deploy/observability/metrics.txt: {undeclared}"


def _datasource_uids(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        items = cast("dict[str, object]", node)
        source = items.get("datasource")
        if isinstance(source, dict):
            yield str(cast("dict[str, object]", source).get("uid"))
        for value in items.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for item in cast("list[object]", node):
            yield from _datasource_uids(item)


def test_panels_use_the_provisioned_prometheus() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources.yml").read_text())
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    for path in DASHBOARDS:
        assert set(_datasource_uids(json.loads(path.read_text()))) == {source["uid"]}, path.name
