"""Offline `deploy` and `release` in the Dagger layer.

The stand-in engine runs the containers; a real loopback registry, the Coolify contract
server and loopback /healthz servers answer the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagger import dag

from tests.dagger_module.conftest import PASSWORD, USER, call
from tests.dagger_module.fake_engine import ExecOutcome, FakeEngine, decode_id, readable
from tests.dagger_module.test_images import pushes_to, write_archive
from tests.deploy.coolify_server import CoolifyServer, run_coolify
from tests.deploy.healthz import Health, run_health
from tests.images.registry_server import RegistryServer
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.main import WormholeCi

TOKEN = "dagger-coolify-T0KEN-55aa"
DB_URL = "postgresql://wormhole:Db-pa55@db.internal:5432/wormhole"
SHA = "9a8b7c6d5e4f30211203a4b5c6d7e8f901234567"


SERVICES = ("api", "web", "runner")


@pytest.fixture
def health() -> Iterator[Health]:
    with run_health(SERVICES) as state:
        yield state


@pytest.fixture
def coolify() -> Iterator[CoolifyServer]:
    with run_coolify({TOKEN: ("read", "write", "deploy", "read:sensitive")}) as server:
        for service in SERVICES:
            server.add_app(f"app-{service}", f"wormhole-{service}", image_tag="0000000")
        yield server


def staged(example: Path, coolify: CoolifyServer, registry: RegistryServer, health: Health) -> Path:
    """The example's manifest pointed at the loopback stand-ins."""
    path = example / "wormhole-ci.toml"
    text = path.read_text()
    services = "".join(
        f'\n[environments.staging.services.{s}]\napplication = "app-{s}"\n'
        f'health_url = "http://127.0.0.1:{health.ports[s]}/healthz"\n'
        for s in SERVICES
    )
    path.write_text(
        text[: text.index("\n# Where releases go")]
        + f'\n[environments.staging]\ncoolify_url = "{coolify.url}"\nregistry = "{registry.address}"\n'
        f'registry_username = "{USER}"\nverify_timeout = 5\n'
        'secrets = { coolify_token = "T", database_url = "D", registry_password = "R" }\n'
        + services
    )

    def on_deploy(app_uuid: str, tag: str) -> None:
        health.versions[app_uuid.removeprefix("app-")] = SHA if tag == SHA[:7] else tag

    coolify.on_deploy = on_deploy
    return example


def release(example: Path, **kwargs: Any) -> str:
    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        out = await module.release(
            environment="staging",
            tag=SHA,
            coolify_token=dag.set_secret("coolify-token", TOKEN),
            database_url=dag.set_secret("database-url", DB_URL),
            registry_password=dag.set_secret("registry-password", PASSWORD),
            **kwargs,
        )
        return await out.id()

    return call(run)


def test_deploy_sets_tags_deploys_and_verifies(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    staged(example, coolify, registry, health)

    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        result: str = await module.deploy(
            environment="staging", tag=SHA, coolify_token=dag.set_secret("t", TOKEN)
        )
        return result

    result = json.loads(call(run))
    assert result["outcome"] == "verified"
    assert [s["status"] for s in result["services"]] == ["verified"] * 3
    assert [r.body for r in coolify.calls("PATCH")] == [{"docker_registry_image_tag": SHA[:7]}] * 3
    assert TOKEN not in json.dumps(result)


def test_release_runs_every_step_in_order(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    staged(example, coolify, registry, health)
    engine.file_writer = write_archive
    engine.publisher = pushes_to(registry)  # publish reads every pushed tag back
    engine.file_contents = lambda chain: json.dumps({"outcome": "applied", "applied": ["x"]})
    _, chain = decode_id(release(example, allow_unavailable_scanners=True))
    files: dict[str, str] = {a["path"]: a["contents"] for _, n, a in chain if n == "withNewFile"}
    record = json.loads(files["release.json"])
    assert record["outcome"] == "released" and record["sha"] == SHA
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        (n, "passed") for n in ("check", "build", "scan", "publish", "migrate", "deploy")
    ]
    assert len(record["images"]) == 3 and all(
        "@sha256:" in i["reference"] for i in record["images"]
    )
    assert record["migrations"] == {"outcome": "applied", "applied": ["x"]}
    assert [d["status"] for d in record["deployments"]] == ["verified"] * 3
    # the migration job got the URL as the Secret, and nothing printed any secret
    migrate = [c for c, step in engine.leaves if step[1] == "contents"]
    assert migrate
    secrets = [readable(a["secret"]) for c in migrate for _, n, a in c if n == "withSecretVariable"]
    assert [("setSecret", {"name": "database-url", "plaintext": DB_URL})] in secrets
    for secret in (TOKEN, PASSWORD, DB_URL):
        assert secret not in files["release.json"]


def test_a_red_check_stops_the_release_before_anything_else(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    staged(example, coolify, registry, health)
    engine.file_writer = write_archive
    engine.on_exec(
        lambda argv: argv[-2:] == ["ruff", "check"] or argv[-3:-1] == ["ruff", "check"],
        ExecOutcome(1, "F401", ""),
    )
    with pytest.raises(WormholeCiError) as info:
        release(example, allow_unavailable_scanners=True)
    message = str(info.value)
    assert message.startswith(
        "release stopped at check: check failed for 1 of 4 services: runner (lint)"
    )
    record = json.loads(message.split("--- release.json\n", 1)[1])
    assert record["stopped_at"] == "check"
    assert [s["status"] for s in record["steps"]][1:] == ["skipped"] * 5
    names = {step[1] for _, step in engine.leaves}
    assert "publish" not in names  # nothing pushed
    assert not any(n == "dockerBuild" for c, _ in engine.leaves for _, n, _ in c)
    assert not [r for r in coolify.requests if r.method in ("PATCH", "POST")]
    for secret in (TOKEN, PASSWORD, DB_URL):
        assert secret not in message
