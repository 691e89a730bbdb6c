"""The PromQL text helpers (wormhole_ci.delivery.promql) the inventory checks rely on, and
the Debian tool look-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.observability import conftest
from wormhole_ci.delivery.promql import (
    InventoryEntry,
    UnknownVariableError,
    declared,
    for_promtool,
    metric_names,
    read_inventory,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="api"} == 0', {"up"}),
        (
            'histogram_quantile(0.95, sum by (service, le) (rate(x_seconds_bucket{job="api", le!="+Inf"}[5m])))',
            {"x_seconds_bucket"},
        ),
        ("a / on (instance) group_left (version) b > bool 1e3", {"a", "b"}),
        ('label_replace(m, "dst", "$1 total_x", "src", "(.*)") offset 5m', {"m"}),
        ("max_over_time(c_total[6h:1m]) - min_over_time(c_total[6h])", {"c_total"}),
        ("time() - last_seen_seconds unless absent(other)", {"last_seen_seconds", "other"}),
        ("sum without (pod) (rate(ns:requests:rate5m[5m]))", {"ns:requests:rate5m"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_grafana_variables_are_replaced_and_unknown_ones_refused() -> None:
    assert for_promtool("rate(x[$__rate_interval])") == "rate(x[5m])"
    with pytest.raises(UnknownVariableError, match=r"unknown Grafana variable \$environment"):
        for_promtool('x{env="$environment"}')


def test_inventory(tmp_path: Path) -> None:
    path = tmp_path / "metrics.txt"
    path.write_text("# comment\nh_seconds  histogram  api  # trailing\n\nc_total counter runner\n")
    entries = read_inventory(path)
    assert entries == [
        InventoryEntry("h_seconds", "histogram", "api"),
        InventoryEntry("c_total", "counter", "runner"),
    ]
    assert declared("h_seconds_bucket", entries)
    assert declared("c_total", entries)
    assert not declared("c_total_bucket", entries)
    assert not declared("h_seconds_created", entries)


def test_a_missing_tool_skips_with_the_reason_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def nowhere(_name: str) -> None:
        return None

    monkeypatch.setattr(conftest.shutil, "which", nowhere)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package prometheus"):
        conftest.debian_tool("promtool", "prometheus")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true needs it"):
        conftest.debian_tool("promtool", "prometheus")
