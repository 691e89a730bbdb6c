"""The failure summary both runtimes print, and the JUnit XML report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from wormhole_ci.check.junit import junit_xml, write_junit
from wormhole_ci.results import RunReport, Status, TaskResult, summary

REPORT = RunReport(
    results=(
        TaskResult("api", "install", Status.PASSED, 1.0, 0),
        TaskResult(
            "api",
            "lint",
            Status.FAILED,
            2.0,
            1,
            "src/a.ts\n  3:1 error 'x' is unused",
            "/logs/api/lint.log",
        ),
        TaskResult("web", "install", Status.PASSED, 1.5, 0),
        TaskResult("runner", "install", Status.FAILED, 0.5, 2, "lock mismatch"),
        TaskResult("runner", "test", Status.BLOCKED, tail="not run: runner:install did not pass"),
        TaskResult("runner", "lint", Status.FAILED, 0.2, 1, "F401"),
    ),
    wall_time=3.25,
)


def test_summary_names_each_failed_service_and_task_then_tails() -> None:
    text = summary(REPORT)
    assert text.splitlines()[0] == (
        "check failed for 2 of 3 services: api (lint), runner (install, lint)"
    )
    assert (
        "--- api/lint, exit 1 (full log: /logs/api/lint.log)\nsrc/a.ts\n  3:1 error 'x' is unused"
        in text
    )
    assert "--- runner/install, exit 2\nlock mismatch" in text
    assert not REPORT.ok


def test_summary_of_a_passing_run() -> None:
    ok = RunReport(results=(TaskResult("api", "lint", Status.PASSED, 1.0, 0),))
    assert ok.ok
    assert summary(ok, "lint") == "lint passed for 1 of 1 services"


def test_junit_has_a_suite_per_service_and_a_case_per_task(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "junit.xml"
    write_junit(REPORT, path)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["wormhole-ci.api", "wormhole-ci.web", "wormhole-ci.runner"]
    runner = suites["wormhole-ci.runner"]
    assert (runner.get("tests"), runner.get("failures"), runner.get("skipped")) == ("3", "2", "1")
    cases = {c.get("name"): c for c in runner.iter("testcase")}
    assert cases["install"].find("failure") is not None
    assert cases["install"].find("failure").text == "lock mismatch"  # type: ignore[union-attr]
    assert cases["test"].find("skipped").get("message") == "not run: runner:install did not pass"  # type: ignore[union-attr]
    assert suites["wormhole-ci.web"].find("testcase").find("failure") is None  # type: ignore[union-attr]
    assert junit_xml(REPORT) == path.read_text()


def test_junit_carries_a_services_notes_as_suite_properties() -> None:
    notes = ("web: no `test` script in package.json, tests skipped",)
    root = ET.fromstring(junit_xml(REPORT, notes=notes).split("\n", 1)[1])
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    web = [p.get("value") for p in suites["wormhole-ci.web"].iter("property")]
    assert web == list(notes)
    assert suites["wormhole-ci.api"].find("properties") is None


def test_junit_drops_colour_codes_and_characters_xml_cannot_hold() -> None:
    tail = '\x1b[31m\x1b[1m>\x1b[22m\x1b[39m expect("a")\x00\x08 \u2713 ok\ttab'
    report = RunReport(results=(TaskResult("api", "test", Status.FAILED, 1.0, 1, tail),))
    failure = ET.fromstring(junit_xml(report)).find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.text == '> expect("a") \u2713 ok\ttab'
