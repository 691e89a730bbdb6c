"""The release state machine over recording steps, against the Coolify contract server and
loopback /healthz: the order of gates, the up-front busy refusal, the record after each step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
import pytest

from tests.deploy.coolify_server import CoolifyServer, run_coolify
from tests.deploy.healthz import Health, run_health
from tests.deploy.test_rollout import PREVIOUS, SERVICES, SHA, TOKEN, environment
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.release.machine import ReleaseMachine, Rollout
from wormhole_ci.release.record import STEPS, ImageRecord, ReleaseOutcome, ReleaseRecord

SECRET = "db-Pa55word-in-a-message"


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
    coolify: CoolifyServer, health: Health, steps: Steps
) -> tuple[ReleaseRecord, list[str], list[str]]:
    saved: list[str] = []
    said: list[str] = []
    machine = ReleaseMachine(
        env=environment(coolify, health),
        steps=steps,
        coolify=Coolify(coolify.url, TOKEN, poll_interval=0.05),
        rollout=Rollout(sha=SHA, image_tag=SHA[:7], poll_interval=0.05),
        say=said.append,
        save=lambda record: saved.append(record.to_json()),
        hidden=(SECRET, TOKEN),
    )
    record = anyio.run(machine.run, ReleaseRecord(sha=SHA, environment="staging", started="t"))
    return record, saved, said


def test_every_gate_in_order_then_deploy_and_verify(coolify: CoolifyServer, health: Health) -> None:
    steps = Steps()
    record, saved, said = release(coolify, health, steps)
    assert record.outcome is ReleaseOutcome.RELEASED and record.stopped_at is None
    assert steps.calls == list(STEPS[:-1])
    assert [(s.name, s.status) for s in record.steps] == [(n, "passed") for n in STEPS]
    assert [d.status for d in record.deployments] == ["verified"] * 3
    assert [line for line in said if line.startswith("== ")] == [f"== {n}" for n in STEPS]
    # written after every step (and once more at the end), the last one final
    assert len(saved) == len(STEPS) + 1
    assert json.loads(saved[-1])["outcome"] == "released"


@pytest.mark.parametrize("gate", STEPS[:-1])
def test_a_red_gate_stops_everything_after_it(
    coolify: CoolifyServer, health: Health, gate: str
) -> None:
    steps = Steps(fail=gate)
    record, saved, _ = release(coolify, health, steps)
    assert record.outcome is ReleaseOutcome.STOPPED and record.stopped_at == gate
    assert steps.calls == list(STEPS[: STEPS.index(gate) + 1])
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
    assert [s.status for s in record.steps] == ["passed"] * 5 + ["failed"]
    assert [d.service for d in record.deployments] == list(SERVICES)
    assert {d.status for d in record.deployments} == {"rolled-back"}
    assert record.step("deploy").detail.startswith("deploy rolled-back: ")
