"""`check-report`: the check's results as files (JUnit, text, status), never a failed call."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from dagger import dag

from tests.dagger_module.conftest import call
from tests.dagger_module.fake_engine import ExecOutcome, FakeEngine, decode_id
from wormhole_ci.main import WormholeCi


def report_files(example: Path) -> dict[str, str]:
    async def run() -> str:
        out = await WormholeCi(source=dag.host().directory(str(example))).check_report()
        return await out.id()

    _, chain = decode_id(call(run))
    return {a["path"]: a["contents"] for _, n, a in chain if n == "withNewFile"}


def test_check_report_of_a_passing_check(engine: FakeEngine, example: Path) -> None:
    files = report_files(example)
    assert files["status"] == "passed\n"
    suites = ET.fromstring(files["junit.xml"].split("?>", 1)[1])
    assert [s.get("name") for s in suites] == [
        f"wormhole-ci.{s}" for s in ("api", "web", "runner", "hasura", "delivery")
    ]
    assert all(s.get("failures") == "0" for s in suites)
    assert files["check.txt"].splitlines()[-1].startswith("check passed in ")


def test_check_report_of_a_failing_check_does_not_fail(engine: FakeEngine, example: Path) -> None:
    engine.on_exec(
        lambda argv: argv[-2:] == ["ruff", "check"] or argv[-3:-1] == ["ruff", "check"],
        ExecOutcome(1, "F401 unused import", ""),
    )
    files = report_files(example)
    assert files["status"] == "failed\n"
    assert "check failed for 1 of 5 services: runner (lint)" in files["check.txt"]
    suites = {s.get("name"): s for s in ET.fromstring(files["junit.xml"].split("?>", 1)[1])}
    runner = suites["wormhole-ci.runner"]
    assert runner.get("failures") == "1"
    (failure,) = runner.iter("failure")
    assert "F401 unused import" in (failure.text or "")
