"""Dagger `plan` on the stand-in engine: the native document, planned from the PLAN_INPUTS export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagger import dag

from tests.dagger_module.conftest import call
from tests.dagger_module.fake_engine import FakeEngine
from tests.dagger_module.test_functions import exec_leaves, invoke, ran
from wormhole_ci.dagger_runtime.source import PLAN_INPUTS
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.main import WormholeCi
from wormhole_ci.manifest import load_manifest
from wormhole_ci.plan_report import plan_json


def dagger_plan(example: Path, service: str | None = None) -> str:
    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        return await (await module.plan(service=service)).contents()

    return call(run)


def test_plan_is_the_native_document_from_the_plan_inputs(
    engine: FakeEngine, example: Path
) -> None:
    text = dagger_plan(example)
    assert text == plan_json(load_manifest(example))
    assert json.loads(text)["services"]  # a real plan, not an empty document
    # the call chain: the source filtered to the planner's files and exported into the module
    exports = [
        chain
        for chain, (_, leaf, _) in engine.leaves
        if leaf == "export" and chain[-1][1] == "filter"
    ]
    assert len(exports) == 1
    assert exports[0][-1][2]["include"] == PLAN_INPUTS
    # ... and returned as plan.json in a new directory: no container ran to plan
    assert not exec_leaves(engine)


def test_plan_of_one_service(engine: FakeEngine, example: Path) -> None:
    document = json.loads(dagger_plan(example, "runner"))
    assert [s["name"] for s in document["services"]] == ["runner"]
    assert document == json.loads(plan_json(load_manifest(example), ["runner"]))


def test_an_unknown_service_names_the_known_ones(engine: FakeEngine, example: Path) -> None:
    with pytest.raises(WormholeCiError) as raised:
        dagger_plan(example, "nope")
    message = str(raised.value)
    assert "no service named 'nope' (known services: api, web, runner, hasura, delivery)" in message
    assert "wormhole-ci-plan-" not in message  # the temporary export is not shown


def test_the_planned_commands_are_what_dagger_check_runs(engine: FakeEngine, example: Path) -> None:
    planned = {
        tuple(t["command"])
        for s in json.loads(dagger_plan(example))["services"]
        for t in s["tasks"]
    }
    engine.reset()
    assert invoke(example, "check").splitlines()[-1].startswith("check passed in ")
    assert ran(exec_leaves(engine)) == planned
    assert len(planned) > 10
