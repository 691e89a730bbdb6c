"""Check container specs: which part of the source a service's container mounts."""

from __future__ import annotations

from pathlib import Path

from wormhole_ci.check.container import service_spec
from wormhole_ci.manifest import load_manifest
from wormhole_ci.plan import build_plan


def test_a_service_whose_tasks_declare_inputs_mounts_only_those(example: Path) -> None:
    specs = {s.service: service_spec(s) for s in build_plan(load_manifest(example)).services}
    # hasura's only task declares its inputs: its metadata and the database's migrations
    assert (specs["hasura"].source_path, specs["hasura"].include) == (".", ("api/prisma", "hasura"))
    # delivery's task: its directory and the runbooks, with this package installed
    delivery = specs["delivery"]
    assert (delivery.source_path, delivery.include) == (".", ("deploy", "docs/runbooks"))
    assert delivery.needs_module_source
    assert delivery.toolchain[:2] == (
        ("apt-get", "update"),
        (
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            "prometheus",
            "prometheus-alertmanager",
        ),
    )
    # tasks without declared inputs (and their setup chain) see the whole service folder
    assert (specs["api"].source_path, specs["api"].include) == ("api", ())
