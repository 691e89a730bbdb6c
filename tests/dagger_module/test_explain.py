"""Dagger `check --explain`: says the engine's cache decides reuse, and runs the same check."""

from __future__ import annotations

from pathlib import Path

from dagger import dag

from tests.dagger_module.conftest import call
from tests.dagger_module.fake_engine import FakeEngine
from wormhole_ci.check.explain import ENGINE_EXPLANATION
from wormhole_ci.main import WormholeCi


def check(example: Path, *, explain: bool) -> str:
    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        # the SDK's @function typing does not model bound async methods' parameters
        return await module.check(explain=explain)  # pyright: ignore[reportCallIssue]

    return call(run)


def test_explain_names_the_engine_cache_as_what_decides_reuse(
    engine: FakeEngine, example: Path
) -> None:
    plain = check(example, explain=False).splitlines()
    explained = check(example, explain=True).splitlines()
    assert ENGINE_EXPLANATION not in plain
    assert explained[-1] == ENGINE_EXPLANATION
    assert "the engine's cache decides reuse" in explained[-1]
    # the same status lines (services and tasks) before it; only the timing may differ
    assert [line.split()[:2] for line in explained[:-2]] == [
        line.split()[:2] for line in plain[:-1]
    ]
    assert explained[-2].startswith("check passed in ")
