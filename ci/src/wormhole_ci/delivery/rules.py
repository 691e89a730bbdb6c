"""Alert and recording rules and their promtool unit tests as data; the labels alerts need."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wormhole_ci.delivery.documents import items, load_yaml, mapping, strings

SEVERITIES = ("critical", "warning", "info")
"""The severities Alertmanager routes (deploy/observability/README.md)."""
REQUIRED_ANNOTATIONS = ("summary", "runbook_url")


@dataclass(frozen=True)
class Alert:
    """One alerting rule (an alert name can have one rule per severity)."""

    file: Path
    name: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]
    shown: str = ""
    """The file as messages name it (relative to the monorepo root)."""

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "no severity")


@dataclass(frozen=True)
class RuleExpr:
    """The expression of one rule, alerting or recording, and what names it in a message."""

    shown: str
    rule: str
    """`alert NAME` or `record NAME`."""
    expr: str


@dataclass(frozen=True)
class AlertCase:
    """One `alert_rule_test` entry of a promtool test file."""

    file: Path
    alertname: str
    expected: list[dict[str, str]]
    """The exp_labels of each expected alert; empty: the alert must not fire."""


def shown_path(path: Path, root: Path | None) -> str:
    """`path` relative to `root` when it is inside it (how messages name files)."""
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return str(path)


def read_rules(files: list[Path], root: Path | None = None) -> tuple[list[Alert], list[RuleExpr]]:
    """Every alerting rule, and every expression (alerts and recording rules) of `files`."""
    alerts: list[Alert] = []
    exprs: list[RuleExpr] = []
    for path in files:
        shown = shown_path(path, root)
        doc = load_yaml(path, shown)
        for group in items(doc.get("groups"), f"{shown}: groups"):
            for raw in items(mapping(group, f"{shown}: group").get("rules"), f"{shown}: rules"):
                rule = mapping(raw, f"{shown}: rule")
                name = str(rule.get("alert") or rule.get("record") or "?")
                kind = "alert" if "alert" in rule else "record"
                expr = str(rule.get("expr", ""))
                exprs.append(RuleExpr(shown, f"{kind} {name}", expr))
                if kind == "alert":
                    where = f"{shown}: alert {name}"
                    alerts.append(
                        Alert(
                            path,
                            name,
                            expr,
                            strings(rule.get("labels"), f"{where}: labels"),
                            strings(rule.get("annotations"), f"{where}: annotations"),
                            shown,
                        )
                    )
    return alerts, exprs


def read_cases(files: list[Path]) -> list[AlertCase]:
    """Every alert_rule_test entry of the promtool test files."""
    cases: list[AlertCase] = []
    for path in files:
        doc = load_yaml(path, str(path))
        for test in items(doc.get("tests"), f"{path}: tests"):
            entries = mapping(test, str(path)).get("alert_rule_test")
            for raw in items(entries, f"{path}: alert_rule_test"):
                case = mapping(raw, str(path))
                expected = [
                    strings(mapping(a, str(path)).get("exp_labels"), str(path))
                    for a in items(case.get("exp_alerts"), str(path))
                ]
                cases.append(AlertCase(path, str(case.get("alertname")), expected))
    return cases


def alert_problems(alerts: list[Alert]) -> list[str]:
    """Alerts Alertmanager cannot route or an on-call cannot act on: severity and team
    labels, summary and runbook_url annotations."""
    problems: list[str] = []
    for alert in alerts:
        where = f"{alert.shown}: alert {alert.name} ({alert.severity})"
        if alert.labels.get("severity") not in SEVERITIES:
            problems.append(
                f"{where}: labels.severity is {alert.labels.get('severity')!r}; set it to one "
                f"of {', '.join(SEVERITIES)} (Alertmanager routes by it)"
            )
        if not alert.labels.get("team"):
            problems.append(f"{where}: no labels.team; set the team that owns the alert")
        for key in REQUIRED_ANNOTATIONS:
            if not alert.annotations.get(key):
                hint = (
                    "a link to its runbook (docs/runbooks/<name>.md)"
                    if key == "runbook_url"
                    else "one line for the notification"
                )
                problems.append(f"{where}: no annotations.{key}; add {hint}")
    return problems
