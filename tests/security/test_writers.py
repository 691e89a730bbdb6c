"""Reports: SARIF 2.1.0 (schema-valid, stable), Markdown and JSON — honest about what was not scanned."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import ROOT
from tests.security.samples import SHELL, outcomes
from wormhole_ci.security.policy import FailOn, Verdict, evaluate
from wormhole_ci.security.writers.jsonreport import report
from wormhole_ci.security.writers.markdown import write_markdown
from wormhole_ci.security.writers.sarif import sarif_log, write_sarif
from wormhole_ci.waivers import IgnoreEntry

SARIF_SCHEMA = (
    ROOT
    / "tools"
    / "node"
    / "node_modules"
    / "@microsoft"
    / "jest-sarif"
    / "lib"
    / "schemas"
    / "sarif-2.1.0-rtm.5.json"
)
SNAPSHOT = Path(__file__).parent / "snapshots" / "scan.sarif"
WAIVER = IgnoreEntry(SHELL.rule_id, "input is a constant", dt.date(2026, 12, 31), service="runner")
EXPIRED = IgnoreEntry("wormhole.js.eval", "old", dt.date(2026, 1, 1), service="api")


def verdict() -> Verdict:
    return evaluate(
        outcomes(),
        (WAIVER, EXPIRED),
        FailOn.HIGH,
        allow_unavailable=False,
        today=dt.date(2026, 11, 27),
    )


def test_sarif_validates_against_the_sarif_2_1_0_schema() -> None:
    if not SARIF_SCHEMA.exists():
        pytest.skip(
            f"SARIF schema not installed at {SARIF_SCHEMA}; run `make setup` (npm ci in tools/node)"
        )
    schema = json.loads(SARIF_SCHEMA.read_text())
    document = json.loads(write_sarif(verdict()))
    jsonschema.Draft4Validator(schema).validate(document)
    # the validator is not a rubber stamp
    broken = {**document, "runs": [{"results": []}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate(broken)


def test_sarif_shape_rules_once_fingerprints_suppressions_and_not_scanned() -> None:
    log = sarif_log(verdict())
    runs = {run["tool"]["driver"]["name"]: run for run in log["runs"]}  # type: ignore[index]
    assert list(runs) == ["semgrep", "trivy", "pnpm-audit", "pip-audit"]
    semgrep = runs["semgrep"]
    rules = semgrep["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted({r["id"] for r in rules})  # each rule once
    results = semgrep["results"]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert len(result["partialFingerprints"]["wormholeCiFingerprint/v1"]) == 32
    shell = next(r for r in results if r["ruleId"] == SHELL.rule_id)
    assert shell["suppressions"] == [
        {"kind": "external", "justification": WAIVER.label, "status": "accepted"}
    ]
    assert shell["locations"][0]["physicalLocation"]["region"] == {"startLine": 12, "endLine": 12}
    assert rules[shell["ruleIndex"]]["properties"]["security-severity"] == "8.0"
    # the semgrep outcome that errored is visible as a failed invocation, not as "no results"
    assert semgrep["invocations"][0]["executionSuccessful"] is False
    assert (
        "3 semgrep errors"
        in semgrep["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]
    )
    pnpm = runs["pnpm-audit"]
    assert pnpm["invocations"][0]["executionSuccessful"] is False
    lodash = pnpm["results"][0]
    assert lodash["level"] == "error"
    assert lodash["locations"][0]["logicalLocations"] == [
        {"name": "lodash@4.17.11", "kind": "package"}
    ]
    assert runs["trivy"]["tool"]["driver"]["version"] == "0.76.0"


def test_sarif_is_stable_and_matches_the_snapshot() -> None:
    text = write_sarif(verdict())
    assert text == write_sarif(
        evaluate(
            list(reversed(outcomes()))[::-1],
            (WAIVER, EXPIRED),
            FailOn.HIGH,
            allow_unavailable=False,
            today=dt.date(2026, 11, 27),
        )
    )
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), (
        "SARIF changed: inspect, then rerun with UPDATE_SNAPSHOTS=1"
    )


def test_markdown_never_calls_an_unscanned_target_clean() -> None:
    text = write_markdown(verdict())
    assert text.startswith("## wormhole-ci scan: FAILED (fail on high)")
    assert (
        "| pnpm-audit | web | ⛔ unavailable | not scanned: the registry's audit endpoint refused or failed: 405 | 12.4.2 |"
        in text
    )
    assert (
        "| semgrep | extra | ❌ error | scanner error: 3 semgrep errors, first: Syntax error | 1.185.0 |"
        in text
    )
    assert "No known vulnerabilities" not in text
    assert "### Waived" in text and WAIVER.label in text
    assert "### Expired waivers (no longer applied)" in text and EXPIRED.label in text
    assert "pip-audit reports no severity: the policy counts its findings as high" in text


def test_json_report_carries_everything() -> None:
    data = report(verdict())
    assert data["passed"] is False
    statuses = [(o["tool"], o["target"], o["status"]) for o in data["outcomes"]]  # type: ignore[index]
    assert ("pnpm-audit", "web", "unavailable") in statuses
    pip = next(o for o in data["outcomes"] if o["tool"] == "pip-audit")  # type: ignore[union-attr, index]
    assert pip["findings"][0]["severity"] == "unknown"
    assert pip["findings"][0]["effective_severity"] == "high"
    assert data["expired_waivers"] == [EXPIRED.label]
