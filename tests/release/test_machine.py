"""The release state machine over recording steps, against the Coolify contract server and
loopback /healthz: the order of gates, the up-front busy refusal, the record after each step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import anyio
import pytest

from tests.conftest import EXAMPLE
from tests.deploy.coolify_server import CoolifyServer, run_coolify
from tests.deploy.healthz import Health, run_health
from tests.deploy.test_rollout import PREVIOUS, SERVICES, SHA, TOKEN, environment
from tests.hasura.hasura_server import HasuraServer, example_database, run_hasura
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.hasura.environment import ENGINE_TAG, HasuraRun
from wormhole_ci.hasura.metadata import repo_metadata
from wormhole_ci.manifest import HasuraTarget
from wormhole_ci.pgtemp import TempPostgres
from wormhole_ci.release.machine import ReleaseMachine, Rollout
from wormhole_ci.release.record import STEPS, ImageRecord, ReleaseOutcome, ReleaseRecord

SECRET = "db-Pa55word-in-a-message"
ADMIN = "hasura-Adm1n-for-the-machine"
GATES = ("check", "build", "scan", "publish", "migrate")
"""The runtime's steps; hasura and deploy are the machine's own (HTTP from either runtime)."""


@pytest.fixture
def health() -> Iterator[Health]:
    with run_health(SERVICES) as state:
        yield state


@pytest.fixture
def coolify(health: Health) -> Iterator[CoolifyServer]:
    with run_coolify({TOKEN: ("read", "write", "deploy", "read:sensitive")}) as server:
        for service in SERVICES:
            server.add_app(f"app-{service}", f"wormhole-{service}", image_tag=PREVIOUS[:7])

        def on_deploy(app_uuid: str, tag: str) -> None:
            health.versions[app_uuid.removeprefix("app-")] = SHA if tag == SHA[:7] else tag

        server.on_deploy = on_deploy
        yield server


@dataclass
class Steps:
    """ReleaseSteps that record their calls; `fail` names a gate that raises."""

    fail: str | None = None
    calls: list[str] = field(default_factory=list[str])

    async def _gate(self, name: str, record: ReleaseRecord) -> str:
        self.calls.append(name)
        if name == self.fail:
            raise WormholeCiError(f"{name} failed: see postgresql://u:{SECRET}@db/x")
        if name == "build":
            record.images = [
                ImageRecord(s, f"wormhole-{s}:{SHA[:7]}", "sha256:1") for s in SERVICES
            ]
        return f"{name} ok"

    async def check(self, record: ReleaseRecord) -> str:
        return await self._gate("check", record)

    async def build(self, record: ReleaseRecord) -> str:
        return await self._gate("build", record)

    async def scan(self, record: ReleaseRecord) -> str:
        return await self._gate("scan", record)

    async def publish(self, record: ReleaseRecord) -> str:
        return await self._gate("publish", record)

    async def migrate(self, record: ReleaseRecord) -> str:
        return await self._gate("migrate", record)


def release(
    coolify: CoolifyServer, health: Health, steps: Steps, hasura: HasuraRun | None = None
) -> tuple[ReleaseRecord, list[str], list[str]]:
    saved: list[str] = []
    said: list[str] = []
    env = environment(coolify, health)
    machine = ReleaseMachine(
        env=replace(env, hasura=hasura.target) if hasura else env,
        steps=steps,
        coolify=Coolify(coolify.url, TOKEN, poll_interval=0.05),
        rollout=Rollout(sha=SHA, image_tag=SHA[:7], poll_interval=0.05),
        say=said.append,
        save=lambda record: saved.append(record.to_json()),
        hidden=(SECRET, TOKEN, ADMIN),
        hasura=hasura,
    )
    record = anyio.run(machine.run, ReleaseRecord(sha=SHA, environment="staging", started="t"))
    return record, saved, said


def test_every_gate_in_order_then_deploy_and_verify(coolify: CoolifyServer, health: Health) -> None:
    steps = Steps()
    record, saved, said = release(coolify, health, steps)
    assert record.outcome is ReleaseOutcome.RELEASED and record.stopped_at is None
    assert steps.calls == list(GATES)
    # an environment without a Hasura engine skips that step, saying why
    assert [(s.name, s.status) for s in record.steps] == [
        (n, "skipped" if n == "hasura" else "passed") for n in STEPS
    ]
    assert record.step("hasura").detail == "no [environments.staging.hasura] in wormhole-ci.toml"
    assert [d.status for d in record.deployments] == ["verified"] * 3
    ran = [n for n in STEPS if n != "hasura"]
    assert [line for line in said if line.startswith("== ")] == [f"== {n}" for n in ran]
    # written after every step that ran (and once more at the end), the last one final
    assert len(saved) == len(ran) + 1
    assert json.loads(saved[-1])["outcome"] == "released"


@pytest.mark.parametrize("gate", GATES)
def test_a_red_gate_stops_everything_after_it(
    coolify: CoolifyServer, health: Health, gate: str
) -> None:
    steps = Steps(fail=gate)
    record, saved, _ = release(coolify, health, steps)
    assert record.outcome is ReleaseOutcome.STOPPED and record.stopped_at == gate
    assert steps.calls == list(GATES[: GATES.index(gate) + 1])
    statuses = [s.status for s in record.steps]
    at = STEPS.index(gate)
    assert statuses == ["passed"] * at + ["failed"] + ["skipped"] * (len(STEPS) - at - 1)
    # nothing reached Coolify but the read-only busy check
    assert {r.method for r in coolify.requests} == {"GET"}
    detail = record.step(gate).detail
    assert detail.startswith(f"{gate} failed") and SECRET not in detail
    assert all(SECRET not in text for text in saved)


def test_busy_coolify_refuses_before_the_first_gate(coolify: CoolifyServer, health: Health) -> None:
    coolify.queue("app-runner", statuses=("in_progress",))
    steps = Steps()
    record, saved, said = release(coolify, health, steps)
    assert record.outcome is ReleaseOutcome.REFUSED
    assert steps.calls == []  # nothing checked, built, pushed or migrated
    assert record.refused is not None and "in progress for app-runner" in record.refused
    assert [s.status for s in record.steps] == ["skipped"] * len(STEPS)
    assert {r.method for r in coolify.requests} == {"GET"}
    assert [json.loads(text)["outcome"] for text in saved] == ["refused"]
    assert said == []


def test_a_coolify_that_refuses_the_token_refuses_the_release(
    coolify: CoolifyServer, health: Health
) -> None:
    coolify.tokens.clear()  # the token is no longer valid
    steps = Steps()
    record, _, _ = release(coolify, health, steps)
    assert record.outcome is ReleaseOutcome.REFUSED and steps.calls == []
    assert (
        record.refused is not None
        and "asking Coolify whether it is deploying failed" in record.refused
    )
    assert TOKEN not in record.to_json()


def test_a_failed_deploy_is_recorded_with_its_deployments(
    coolify: CoolifyServer, health: Health
) -> None:
    coolify.script("app-web", "queued", "failed", logs=["boom"])
    record, _, _ = release(coolify, health, Steps())
    assert record.outcome is ReleaseOutcome.STOPPED and record.stopped_at == "deploy"
    assert [s.status for s in record.steps] == ["passed"] * 5 + ["skipped", "failed"]
    assert [d.service for d in record.deployments] == list(SERVICES)
    assert {d.status for d in record.deployments} == {"rolled-back"}
    assert record.step("deploy").detail.startswith("deploy rolled-back: ")


# -- the hasura step: the contract engine over a real PostgreSQL holding the example's schema


@pytest.fixture(scope="module")
def database(pg_server: TempPostgres) -> Iterator[str]:
    with example_database(pg_server) as url:
        yield url


@pytest.fixture
def engine(database: str) -> Iterator[HasuraServer]:
    with run_hasura(database, ADMIN) as server:
        yield server


def hasura_run(engine: HasuraServer, metadata: dict[str, object] | None = None) -> HasuraRun:
    return HasuraRun(
        HasuraTarget(url=engine.url, admin_secret="STAGING_HASURA"),
        ADMIN,
        metadata if metadata is not None else repo_metadata(EXAMPLE / "hasura", EXAMPLE),
    )


def test_hasura_metadata_is_applied_after_migrate_and_before_deploy(
    coolify: CoolifyServer, health: Health, engine: HasuraServer
) -> None:
    steps = Steps()
    seen: list[tuple[list[str], int]] = []
    engine.on_replace = lambda _body: seen.append(
        (list(steps.calls), sum(1 for r in coolify.requests if r.method != "GET"))
    )
    record, saved, said = release(coolify, health, steps, hasura_run(engine))
    assert record.outcome is ReleaseOutcome.RELEASED
    assert [(s.name, s.status) for s in record.steps] == [(n, "passed") for n in STEPS]
    # the replace came after every runtime gate (migrate last) and before any Coolify change
    assert seen == [(list(GATES), 0)]
    assert record.hasura["outcome"] == "applied" and record.hasura["restored"] is False
    assert record.hasura["before_version"] == 1 and record.hasura["after_version"] == 2
    assert record.step("hasura").detail.startswith(f"applied on {engine.url}")
    assert engine.metadata == repo_metadata(EXAMPLE / "hasura", EXAMPLE)
    assert "== hasura" in said
    for text in (*saved, *said):
        assert ADMIN not in text


def test_inconsistent_metadata_stops_at_hasura_restores_and_deploys_nothing(
    coolify: CoolifyServer, health: Health, engine: HasuraServer
) -> None:
    metadata = repo_metadata(EXAMPLE / "hasura", EXAMPLE)
    text = json.dumps(metadata).replace('"display_name"', '"nickname"', 1)
    record, saved, _ = release(coolify, health, Steps(), hasura_run(engine, json.loads(text)))
    assert record.outcome is ReleaseOutcome.STOPPED and record.stopped_at == "hasura"
    assert record.step("deploy").status == "skipped"
    assert {r.method for r in coolify.requests} == {"GET"}  # nothing deployed
    assert record.hasura["restored"] is True and record.hasura["outcome"] == "failed"
    assert engine.metadata == {"version": 3, "sources": []}  # the exported (empty) metadata
    assert "nickname" in record.step("hasura").detail
    assert all(ADMIN not in t for t in saved)


def test_a_concurrent_console_edit_is_refused_not_overwritten(
    coolify: CoolifyServer, health: Health, engine: HasuraServer
) -> None:
    console = {"version": 3, "sources": [], "allowlist": [{"collection": "console-edit"}]}
    engine.on_export = lambda: engine.edit_live(console)
    record, _, _ = release(coolify, health, Steps(), hasura_run(engine))
    assert record.outcome is ReleaseOutcome.STOPPED and record.stopped_at == "hasura"
    assert record.hasura["outcome"] == "refused" and record.hasura["restored"] is False
    assert engine.metadata == console  # the console's edit is still there
    assert {r.method for r in coolify.requests} == {"GET"}
    assert "console" in record.step("hasura").detail


def test_the_engine_is_redeployed_on_the_pinned_image_first(
    coolify: CoolifyServer, health: Health, engine: HasuraServer
) -> None:
    coolify.add_app("app-hasura", "hasura", image_tag="v2.40.0")
    run = hasura_run(engine)
    run = replace(run, target=replace(run.target, application="app-hasura"))
    record, _, _ = release(coolify, health, Steps(), run)
    assert record.outcome is ReleaseOutcome.RELEASED
    assert coolify.apps["app-hasura"].image_tag == ENGINE_TAG
    patches = [r for r in coolify.requests if r.method == "PATCH"]
    assert patches[0].path == "/api/v1/applications/app-hasura"  # before the services' tags
    assert record.step("hasura").detail.startswith(f"applied on {engine.url}: engine app-hasura")
