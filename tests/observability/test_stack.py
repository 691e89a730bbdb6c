"""The live tests' override of the project's Prometheus and Alertmanager files: only what
deploy/observability/README.md ("Tested live") says changes, and the result still loads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from tests.observability.conftest import RULES
from tests.observability.stack import (
    ALERTMANAGER_YML,
    faster,
    live_alertmanager_config,
    live_prometheus_config,
)

TARGETS = {"api": "127.0.0.1:3001", "pushgateway": "127.0.0.1:9999"}


def _load(path: Path) -> dict[str, Any]:
    return cast("dict[str, Any]", yaml.safe_load(path.read_text()))


def _rules(paths: list[Path]) -> list[dict[str, Any]]:
    return [rule for path in paths for group in _load(path)["groups"] for rule in group["rules"]]


def test_durations_are_divided_by_60() -> None:
    assert [faster(d) for d in ("5m", "10m", "6h", "15m", "2m", "1h30m")] == [
        "5s", "10s", "360s", "15s", "2s", "90s"
    ]  # fmt: skip
    assert faster("10s") == "166ms"
    with pytest.raises(AssertionError, match="not a duration"):
        faster("5 minutes")


def test_only_durations_targets_and_files_change(tmp_path: Path) -> None:
    config = _load(live_prometheus_config(RULES, TARGETS, "127.0.0.1:9093", tmp_path))
    assert config["global"] | {"external_labels": None} == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
        "external_labels": None,
    }
    assert config["global"]["external_labels"] == {"environment": "${WORMHOLE_ENVIRONMENT}"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {name: job["static_configs"][0]["targets"] for name, job in jobs.items()} == {
        name: [target] for name, target in TARGETS.items()
    }
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["api"]["static_configs"][0]["labels"] == {"service": "api"}

    original, live = _rules(RULES), _rules(sorted((tmp_path / "rules").glob("*.yml")))
    assert len(live) == len(original)
    ranges = re.compile(r"\[[^\]]*\]")
    for before, after in zip(original, live, strict=True):
        # same alert, labels, annotations and threshold; only `for` and the ranges differ
        assert {k: v for k, v in after.items() if k not in ("for", "expr")} == {
            k: v for k, v in before.items() if k not in ("for", "expr")
        }
        assert ranges.sub("[]", after["expr"]) == ranges.sub("[]", before["expr"])
        assert [faster(r[1:-1]) for r in ranges.findall(before["expr"])] == [
            r[1:-1] for r in ranges.findall(after["expr"])
        ]
        assert ("for" in after) == ("for" in before)
        if "for" in before:
            assert after["for"] == faster(before["for"])


def test_alertmanager_keeps_routes_and_receivers_and_moves_secrets(tmp_path: Path) -> None:
    original = _load(ALERTMANAGER_YML)
    live = _load(live_alertmanager_config("http://127.0.0.1:5555", 2525, tmp_path))
    assert [r["name"] for r in live["receivers"]] == [r["name"] for r in original["receivers"]]
    assert live["inhibit_rules"] == original["inhibit_rules"]
    assert live["route"]["group_by"] == original["route"]["group_by"]
    assert (live["route"]["group_wait"], live["route"]["group_interval"]) == ("500ms", "5s")
    assert live["route"]["routes"][0]["repeat_interval"] == "60s"
    assert (tmp_path / "secrets" / "slack_webhook_url").read_text() == "http://127.0.0.1:5555/slack"
    assert live["global"]["pagerduty_url"] == "http://127.0.0.1:5555/pagerduty"
    assert live["global"]["smtp_smarthost"] == "127.0.0.1:2525"


@pytest.mark.ops
def test_the_overridden_files_load(promtool: Path, amtool: Path, tmp_path: Path) -> None:
    prometheus_yml = live_prometheus_config(RULES, TARGETS, "127.0.0.1:9093", tmp_path / "p")
    alertmanager_yml = live_alertmanager_config("http://127.0.0.1:5555", 2525, tmp_path / "a")
    for argv in (
        [str(promtool), "check", "config", str(prometheus_yml)],
        [str(amtool), "check-config", str(alertmanager_yml)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
