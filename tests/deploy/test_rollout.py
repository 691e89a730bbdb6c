"""`deploy_environment` against the Coolify contract server and loopback /healthz endpoints.

Tag then deploy, verify the SHA, roll back and report, refuse when busy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.coolify_server import CoolifyServer, run_coolify
from tests.deploy.healthz import Health, run_health
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.deploy.rollout import DeployFailed, DeployOptions, deploy_environment
from wormhole_ci.errors import CoolifyError
from wormhole_ci.manifest import DeployTarget, Environment

TOKEN = "coolify-T0KEN-never-printed"
SHA = "4f3c2b1a0918273645546372819a0b1c2d3e4f50"
PREVIOUS = "0123456789abcdef0123456789abcdef01234567"
SERVICES = ("api", "web", "runner")


@pytest.fixture
def health() -> Iterator[Health]:
    with run_health(SERVICES) as state:
        yield state


@pytest.fixture
def coolify() -> Iterator[CoolifyServer]:
    with run_coolify({TOKEN: ("read", "write", "deploy", "read:sensitive")}) as server:
        for service in SERVICES:
            server.add_app(f"app-{service}", f"wormhole-{service}", image_tag=PREVIOUS[:7])
        yield server


def environment(coolify: CoolifyServer, health: Health) -> Environment:
    return Environment(
        name="staging",
        coolify_url=coolify.url,
        registry="127.0.0.1:5000",
        registry_username=None,
        secrets={"coolify_token": "T", "database_url": "D"},
        targets=tuple(
            DeployTarget(s, f"app-{s}", None, f"http://127.0.0.1:{health.ports[s]}/healthz")
            for s in SERVICES
        ),
    )


def options(**kwargs: object) -> DeployOptions:
    base: dict[str, object] = {
        "sha": SHA,
        "image_tag": SHA[:7],
        "verify_timeout": 3.0,
        "deploy_timeout": 10.0,
        "poll_interval": 0.05,
    }
    return DeployOptions(**{**base, **kwargs})  # type: ignore[arg-type]


def serve_what_was_deployed(
    coolify: CoolifyServer, health: Health, *, broken: str | None = None
) -> None:
    """A finished deployment of tag T makes that service report the SHA that T abbreviates."""
    full = {SHA[:7]: SHA, PREVIOUS[:7]: PREVIOUS}

    def on_deploy(app_uuid: str, tag: str) -> None:
        service = app_uuid.removeprefix("app-")
        health.versions[service] = "dev" if service == broken and tag == SHA[:7] else full[tag]

    coolify.on_deploy = on_deploy


def run(coolify: CoolifyServer, health: Health, said: list[str], **kwargs: object):
    with Coolify(coolify.url, TOKEN, poll_interval=0.05) as client:
        return deploy_environment(
            environment(coolify, health), client, options(**kwargs), said.append
        )


def test_tags_deploys_and_verifies_every_service(coolify: CoolifyServer, health: Health) -> None:
    serve_what_was_deployed(coolify, health)
    said: list[str] = []
    result = run(coolify, health, said)
    assert result.outcome == "verified"
    assert [(s.service, s.status, s.previous_tag) for s in result.services] == [
        (s, "verified", PREVIOUS[:7]) for s in SERVICES
    ]
    # every application tagged with the SHA before the one POST /deploy (never a GET)
    methods = [(r.method, r.path) for r in coolify.requests if r.method != "GET"]
    patches = [r for r in coolify.requests if r.method == "PATCH"]
    assert [r.body for r in patches] == [{"docker_registry_image_tag": SHA[:7]}] * 3
    assert methods.index(("POST", "/api/v1/deploy")) > max(
        i for i, m in enumerate(methods) if m[0] == "PATCH"
    )
    assert [r.query.get("uuid") for r in coolify.calls("POST", "/api/v1/deploy")] == [
        "app-api,app-web,app-runner"
    ]
    assert not coolify.calls("GET", "/api/v1/deploy")
    assert all(coolify.apps[f"app-{s}"].running == SHA[:7] for s in SERVICES)
    assert all(TOKEN not in line for line in said)


def test_wrong_sha_at_verify_rolls_back_and_reports(coolify: CoolifyServer, health: Health) -> None:
    serve_what_was_deployed(coolify, health, broken="web")
    said: list[str] = []
    with pytest.raises(DeployFailed) as info:
        run(coolify, health, said)
    message, result = str(info.value), info.value.result
    assert "verify failed after 3 s: web" in message and "reports dev, not 4f3c2b1" in message
    for service in SERVICES:
        assert f"rolled back {service} to {PREVIOUS[:7]}: Coolify rollback" in message
        assert coolify.apps[f"app-{service}"].running == PREVIOUS[:7]
        assert health.versions[service] == PREVIOUS  # the previous build answers again
    assert result.outcome == "rolled-back"
    assert {s.status for s in result.services} == {"rolled-back"}
    assert [r.body for r in coolify.calls("POST", "/api/v1/applications/app-web/rollback")] == [
        {"commit": PREVIOUS[:7]}
    ]
    # the configured tag is back too, so a later restart does not bring the failed image back
    assert all(coolify.apps[f"app-{s}"].image_tag == PREVIOUS[:7] for s in SERVICES)
    assert TOKEN not in message and all(TOKEN not in line for line in said)


def test_without_a_rollback_endpoint_the_previous_tag_is_redeployed(
    coolify: CoolifyServer, health: Health
) -> None:
    serve_what_was_deployed(coolify, health, broken="api")
    coolify.rollback_enabled = False
    with pytest.raises(DeployFailed) as info:
        run(coolify, health, [])
    assert f"rolled back api to {PREVIOUS[:7]}: image tag {PREVIOUS[:7]} redeployed" in str(
        info.value
    )
    assert coolify.apps["app-api"].image_tag == PREVIOUS[:7]
    assert info.value.result.outcome == "rolled-back"


def test_a_failed_deployment_stops_with_its_logs_and_rolls_back(
    coolify: CoolifyServer, health: Health
) -> None:
    serve_what_was_deployed(coolify, health)
    coolify.script(
        "app-runner",
        "queued",
        "in_progress",
        "failed",
        logs=["pull access denied for wormhole-runner"],
    )
    with pytest.raises(DeployFailed) as info:
        run(coolify, health, [])
    message = str(info.value)
    assert "failed" in message and "pull access denied for wormhole-runner" in message
    assert "rolled back runner" in message
    # the other deployments were waited for before rolling back (else they would win)
    for service in ("api", "web"):
        assert coolify.apps[f"app-{service}"].history == [SHA[:7], PREVIOUS[:7]]


def test_no_rollback_leaves_it_and_says_so(coolify: CoolifyServer, health: Health) -> None:
    serve_what_was_deployed(coolify, health, broken="runner")
    with pytest.raises(DeployFailed) as info:
        run(coolify, health, [], rollback=False)
    assert "(no rollback: --no-rollback)" in str(info.value)
    assert info.value.result.outcome == "failed"
    assert not [r for r in coolify.requests if r.path.endswith("/rollback")]


def test_a_busy_environment_is_refused_before_anything_changes(
    coolify: CoolifyServer, health: Health
) -> None:
    coolify.queue("app-web", statuses=("in_progress",))
    with pytest.raises(DeployFailed) as info:
        run(coolify, health, [], rollback=False)
    assert "already queued or running for app-web" in str(info.value)
    assert not [r for r in coolify.requests if r.method in ("PATCH", "POST")]


def test_bad_token_is_a_clear_error_without_the_token(
    coolify: CoolifyServer, health: Health
) -> None:
    with (
        Coolify(coolify.url, "wrong-token-value", poll_interval=0.05) as client,
        pytest.raises((DeployFailed, CoolifyError)) as info,
    ):
        deploy_environment(environment(coolify, health), client, options(rollback=False), print)
    assert "wrong-token-value" not in str(info.value)
    assert "token" in str(info.value).lower()
