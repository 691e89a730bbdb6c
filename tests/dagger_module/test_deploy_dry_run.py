"""`dagger call deploy --dry-run` offline: the module runs the same read-only probe as
`wormhole-ci deploy --dry-run` (deploy/probe.py) against a real loopback registry, the Coolify
contract server and loopback /healthz servers; only GET requests reach Coolify.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagger import dag

from tests.dagger_module.conftest import PASSWORD, call
from tests.dagger_module.fake_engine import FakeEngine
from tests.dagger_module.test_release import (
    DEPLOYED,
    SERVICES,
    TOKEN,
    publish_images,
    staged,
    written_files,
)
from tests.deploy.coolify_server import CoolifyServer, run_coolify_apps
from tests.deploy.healthz import Health, run_health
from tests.images.registry_server import RegistryServer
from wormhole_ci.main import WormholeCi

NEVER = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def health() -> Iterator[Health]:
    with run_health(SERVICES) as state:
        yield state


@pytest.fixture
def coolify() -> Iterator[CoolifyServer]:
    with run_coolify_apps(TOKEN, SERVICES, "0000000") as server:
        yield server


def dry_run(example: Path, sha: str) -> dict[str, str]:
    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        out = await module.deploy(
            environment="staging",
            tag=sha,
            coolify_token=dag.set_secret("t", TOKEN),
            registry_password=dag.set_secret("r", PASSWORD),
            dry_run=True,
        )
        return await out.id()

    files = written_files(call(run))
    assert TOKEN not in json.dumps(files)
    return files


def only_gets(coolify: CoolifyServer) -> list[str]:
    """Every Coolify request, as `METHOD path`; none carries a body."""
    assert all(r.body is None for r in coolify.requests)
    return [f"{r.method} {r.path}" for r in coolify.requests]


EVERY_GET = [
    f"GET /api/v1/{what}/app-{s}"
    for s in SERVICES
    for what in ("applications", "deployments/applications")
]


def test_dry_run_lists_each_change_and_changes_nothing(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
    capsys: pytest.CaptureFixture[str],
) -> None:
    staged(example, coolify, registry, health)
    publish_images(registry, DEPLOYED)
    files = dry_run(example, DEPLOYED)
    assert files["status"] == "dry-run\n"
    result = json.loads(files["deploy.json"])
    assert result["outcome"] == "dry-run" and result["problems"] == []
    assert result["registry"] == f"every image of {DEPLOYED[:7]} is in {registry.address}"
    assert [s["change"] for s in result["services"]] == [f"tag 0000000 → {DEPLOYED[:7]}"] * 3
    assert [s["deployments"] for s in result["services"]] == ["none queued or running"] * 3
    assert only_gets(coolify) == EVERY_GET
    assert health.hits == 3
    assert all(app.image_tag == "0000000" for app in coolify.apps.values())
    assert coolify.deployments == {}
    shown = capsys.readouterr().err
    assert f"api (application app-api): tag 0000000 → {DEPLOYED[:7]};" in shown
    assert TOKEN not in shown


def test_dry_run_of_a_busy_environment_says_refused_with_gets_only(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    staged(example, coolify, registry, health)
    publish_images(registry, DEPLOYED)
    queued = coolify.queue("app-web")
    files = dry_run(example, DEPLOYED)
    assert files["status"] == "refused\n"
    result = json.loads(files["deploy.json"])
    assert result["problems"] == [
        f"staging/web: application app-web has a deployment queued or running ({queued} "
        f"(queued)): a deploy would be refused; wait for it to finish (or cancel it in Coolify "
        f"at {coolify.url}) and run again"
    ]
    assert only_gets(coolify) == EVERY_GET
    assert list(coolify.deployments) == [queued]


def test_dry_run_of_a_commit_never_published_is_refused_not_raised(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    """Unlike a real deploy (which stops before Coolify), the dry run reports every problem."""
    staged(example, coolify, registry, health)
    files = dry_run(example, NEVER)
    assert files["status"] == "refused\n"
    (problem,) = json.loads(files["deploy.json"])["problems"]
    assert problem.startswith(f"deploy {NEVER[:7]} to staging: not in the registry:")
    assert only_gets(coolify) == EVERY_GET
