"""`plan` in Dagger: the plan document of the PLAN_INPUTS export, the files `check` plans from."""

from __future__ import annotations

import dagger
from dagger import dag

from wormhole_ci.dagger_runtime.source import DaggerSource
from wormhole_ci.plan_report import plan_json

PLAN_FILE = "plan.json"


async def plan_file(source: DaggerSource, service: str | None) -> dagger.File:
    """`plan.json`: what `wormhole-ci plan --json` prints for the same source and service."""
    text = await source.planned(lambda m: plan_json(m, [service] if service else []))
    return dag.directory().with_new_file(PLAN_FILE, text).file(PLAN_FILE)
