"""The alert rules: valid for promtool, unit-tested alert by alert, labelled for routing,
linked to an existing runbook, and querying only declared metrics."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.observability.conftest import (
    OBSERVABILITY,
    RULE_TESTS,
    RULES,
    RUNBOOK_BASE,
    RUNBOOKS,
)
from wormhole_ci.delivery.promql import declared, metric_names, read_inventory
from wormhole_ci.delivery.rules import Alert, read_cases, read_rules
from wormhole_ci.delivery.runbooks import RUNBOOKS as NAMED_RUNBOOKS
from wormhole_ci.observability.metrics import JOB, LABELS, PIPELINE_METRICS

ALERTS, EXPRS = read_rules(RULES)
SEVERITIES = {"critical", "warning", "info"}
TEAMS = {"backend", "workflows", "platform"}
INVENTORY = read_inventory(OBSERVABILITY / "metrics.txt")


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.ops
def test_promtool_check_config(promtool: Path) -> None:
    done = run(promtool, "check", "config", OBSERVABILITY / "prometheus" / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.ops
def test_promtool_check_rules(promtool: Path) -> None:
    done = run(promtool, "check", "rules", *RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    for path in RULES:
        assert f"Checking {path}" in done.stdout


@pytest.mark.ops
def test_promtool_unit_tests_pass(promtool: Path) -> None:
    done = run(promtool, "test", "rules", *RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_TESTS), done.stdout


def test_every_rules_file_has_its_unit_tests() -> None:
    tested: set[str] = set()
    for path in RULE_TESTS:
        files = yaml.safe_load(path.read_text())["rule_files"]
        tested |= {(path.parent / f).resolve().name for f in files}
    assert tested == {p.name for p in RULES}


def test_every_alert_fires_and_stays_quiet_in_a_unit_test() -> None:
    """Each (alert, severity) fires in a case that expects its labels, and each alert has
    a case where it must not fire: a new alert or severity without a test fails here."""
    cases = read_cases(RULE_TESTS)
    quiet = {c.alertname for c in cases if not c.expected}
    fired = {(c.alertname, e.get("severity"), e.get("team")) for c in cases for e in c.expected}
    missing = sorted(
        f"{a.name} ({a.labels['severity']}): no case where it fires with its labels"
        for a in ALERTS
        if (a.name, a.labels["severity"], a.labels["team"]) not in fired
    ) + sorted(f"{n}: no case where it must not fire" for n in {a.name for a in ALERTS} - quiet)
    assert not missing, "\n".join(missing)
    unknown = {c.alertname for c in cases} - {a.name for a in ALERTS}
    assert not unknown, f"cases for alerts that do not exist: {sorted(unknown)}"


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: f"{a.name}-{a.labels.get('severity')}")
def test_alert_is_labelled_and_annotated(alert: Alert) -> None:
    assert alert.labels.get("severity") in SEVERITIES
    assert alert.labels.get("team") in TEAMS
    assert set(alert.annotations) == {"summary", "description", "runbook_url"}
    assert alert.annotations["runbook_url"].startswith(RUNBOOK_BASE)


def test_each_severity_of_an_alert_is_one_rule() -> None:
    seen = [(a.name, a.labels["severity"]) for a in ALERTS]
    assert len(seen) == len(set(seen))


def test_runbook_urls_point_at_existing_runbooks() -> None:
    missing = {
        a.annotations["runbook_url"]
        for a in ALERTS
        if not (RUNBOOKS / a.annotations["runbook_url"].removeprefix(RUNBOOK_BASE)).is_file()
    }
    assert not missing, sorted(missing)


def test_every_runbook_is_linked_by_an_alert_or_an_error_message() -> None:
    """An unlinked runbook is never found during an incident: each is an alert's
    runbook_url or one this tool's error messages name (wormhole_ci.delivery.runbooks)."""
    linked = {a.annotations["runbook_url"].removeprefix(RUNBOOK_BASE) for a in ALERTS}
    named = {Path(path).name for path in NAMED_RUNBOOKS}
    orphans = [p.name for p in sorted(RUNBOOKS.glob("*.md")) if p.name not in linked | named]
    assert not orphans, f"runbooks linked by no alert and no error message: {orphans}"


def test_the_runbooks_the_source_names_are_collected_in_one_place() -> None:
    """validate-delivery counts a runbook as linked when RUNBOOKS names it: a message naming
    another runbook by a literal path would escape that check."""
    source = {
        path: path.read_text()
        for path in (ROOT / "ci" / "src").rglob("*.py")
        if path.name != "runbooks.py"
    }
    literal = sorted(
        p.name for p, text in source.items() if re.search(r"docs/runbooks/[\w-]+\.md", text)
    )
    assert literal == [], "use the constants of wormhole_ci.delivery.runbooks"
    assert all((RUNBOOKS / Path(path).name).is_file() for path in NAMED_RUNBOOKS)


def test_rules_query_only_declared_metrics() -> None:
    used = {name for rule in EXPRS for name in metric_names(rule.expr)}
    undeclared = sorted(n for n in used if not declared(n, INVENTORY))
    assert not undeclared, f"not in deploy/observability/metrics.txt: {undeclared}"


def test_every_inventory_source_is_a_scrape_job() -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {e.source for e in INVENTORY} - {"scrape"} <= jobs


def test_pipeline_metrics_are_declared_and_alerted_on() -> None:
    """The names the pipeline pushes (wormhole_ci.observability.metrics) are the ones the
    inventory declares under the Pushgateway, and the delivery rules use them as pushed."""
    pushed = {m.name for m in PIPELINE_METRICS}
    assert pushed == {e.name for e in INVENTORY if e.source == "pushgateway"}
    delivery = [a for a in ALERTS if a.file.name == "delivery.yml"]
    for alert in delivery:
        assert metric_names(alert.expr) <= pushed, alert.name
        assert f'job="{JOB}"' in alert.expr, alert.name
    assert LABELS == ("command", "environment")


@pytest.mark.parametrize("runbook", sorted(RUNBOOKS.glob("*.md")), ids=lambda p: p.stem)
def test_runbook_starts_from_drift_and_has_steps(runbook: Path) -> None:
    """Each runbook's first diagnosis is this tool's read-only drift report, before any
    step that changes something (docs/drift.md)."""
    text = runbook.read_text()
    assert text.startswith("# Runbook: ")
    drift = text.find("wormhole-ci drift --environment")
    assert drift != -1, "no `wormhole-ci drift --environment <env>` diagnosis"
    first_change = min(
        (
            i
            for i in (text.find(c) for c in ("wormhole-ci deploy --", "wormhole-ci restore"))
            if i != -1
        ),
        default=len(text),
    )
    assert drift < first_change, "drift must come before the first rollback or restore"
