"""The alert rules and their promtool unit tests, read as data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import yaml


@dataclass(frozen=True)
class Alert:
    """One alerting rule (an alert name can have one rule per severity)."""

    file: Path
    name: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class AlertCase:
    """One `alert_rule_test` entry of a promtool test file."""

    file: Path
    alertname: str
    expected: list[dict[str, str]]
    """The exp_labels of each expected alert; empty: the alert must not fire."""


def _mapping(value: object, where: str) -> dict[str, object]:
    assert isinstance(value, dict), f"{where}: expected a mapping"
    return cast("dict[str, object]", value)


def _list(value: object, where: str) -> list[object]:
    assert isinstance(value, list), f"{where}: expected a list"
    return cast("list[object]", value)


def _strings(value: object, where: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in _mapping(value or {}, where).items()}


def read_rules(files: list[Path]) -> tuple[list[Alert], list[str]]:
    """Every alerting rule, and every expression (alerts and recording rules) of `files`."""
    alerts: list[Alert] = []
    exprs: list[str] = []
    for path in files:
        doc = _mapping(yaml.safe_load(path.read_text()), str(path))
        for group in _list(doc["groups"], f"{path}: groups"):
            for raw in _list(_mapping(group, str(path))["rules"], f"{path}: rules"):
                rule = _mapping(raw, str(path))
                expr = str(rule["expr"])
                exprs.append(expr)
                if "alert" in rule:
                    alerts.append(
                        Alert(
                            path,
                            str(rule["alert"]),
                            expr,
                            _strings(rule.get("labels"), f"{path}: labels"),
                            _strings(rule.get("annotations"), f"{path}: annotations"),
                        )
                    )
    return alerts, exprs


def read_cases(files: list[Path]) -> list[AlertCase]:
    """Every alert_rule_test entry of the promtool test files."""
    cases: list[AlertCase] = []
    for path in files:
        doc = _mapping(yaml.safe_load(path.read_text()), str(path))
        for test in _list(doc["tests"], f"{path}: tests"):
            for raw in _list(_mapping(test, str(path)).get("alert_rule_test", []), str(path)):
                case = _mapping(raw, str(path))
                expected = [
                    _strings(_mapping(a, str(path)).get("exp_labels"), str(path))
                    for a in _list(case.get("exp_alerts") or [], str(path))
                ]
                cases.append(AlertCase(path, str(case["alertname"]), expected))
    return cases
