"""`deploy_environment` against the Coolify contract server and loopback /healthz endpoints.

Tag then deploy, verify the SHA, roll back and report, refuse when busy; the faults of
issue 13 (one deadline for every application, a refusal after the PATCH, no previous tag,
a cancelled deployment without log lines), on a fake clock where timing matters.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.deploy.coolify_server import CoolifyServer, run_coolify_apps
from tests.deploy.healthz import Health, run_health
from tests.deploy.test_coolify import FakeTime
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.deploy.rollout import (
    DeployFailed,
    DeployOptions,
    DeployResult,
    deploy_environment,
)
from wormhole_ci.errors import CoolifyError
from wormhole_ci.manifest import DeployTarget, Environment, ObservabilityTarget

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
    with run_coolify_apps(TOKEN, SERVICES, PREVIOUS[:7]) as server:
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


def run(
    coolify: CoolifyServer,
    health: Health,
    said: list[str],
    time: FakeTime | None = None,
    **kwargs: object,
) -> DeployResult:
    if time is None:
        with Coolify(coolify.url, TOKEN, poll_interval=0.05) as client:
            return deploy_environment(
                environment(coolify, health), client, options(**kwargs), said.append
            )
    with Coolify(
        coolify.url, TOKEN, poll_interval=1.0, clock=time.clock, sleep=time.sleep
    ) as client:
        return deploy_environment(
            environment(coolify, health),
            client,
            options(poll_interval=1.0, **kwargs),
            said.append,
            clock=time.clock,
            sleep=time.sleep,
        )


def failed(
    coolify: CoolifyServer,
    health: Health,
    said: list[str],
    time: FakeTime | None = None,
    **kwargs: object,
) -> tuple[str, DeployResult]:
    """The failure message and result of a deploy that must fail."""
    with pytest.raises(DeployFailed) as info:
        run(coolify, health, said, time, **kwargs)
    message = str(info.value)
    assert_each_line_once(said, message)
    assert TOKEN not in message and all(TOKEN not in line for line in said)
    return message, info.value.result


def assert_each_line_once(said: list[str], message: str) -> None:
    """Every line of the collected output (progress, then the failure message) appears once."""
    lines = [line for text in [*said, message] for line in text.splitlines() if line.strip()]
    repeated = [line for line, count in Counter(lines).items() if count > 1]
    assert not repeated, repeated


def rollback_requests(coolify: CoolifyServer) -> list[str]:
    return [r.path for r in coolify.requests if r.path.endswith("/rollback")]


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
    message, result = failed(coolify, health, said)
    assert "verify failed after 3 s: web" in message and "reports dev, not 4f3c2b1" in message
    for service in SERVICES:
        # said once as progress; the failure message only sums it up
        assert f"rolled back {service} to {PREVIOUS[:7]}: Coolify rollback" in "\n".join(said)
        assert f"rolled back {service} to" not in message
        assert coolify.apps[f"app-{service}"].running == PREVIOUS[:7]
        assert health.versions[service] == PREVIOUS  # the previous build answers again
    assert "rolled back and verified: api, web, runner" in message
    assert result.outcome == "rolled-back"
    assert {s.status for s in result.services} == {"rolled-back"}
    assert [r.body for r in coolify.calls("POST", "/api/v1/applications/app-web/rollback")] == [
        {"commit": PREVIOUS[:7]}
    ]
    # the configured tag is back too, so a later restart does not bring the failed image back
    assert all(coolify.apps[f"app-{s}"].image_tag == PREVIOUS[:7] for s in SERVICES)


def test_without_a_rollback_endpoint_the_previous_tag_is_redeployed(
    coolify: CoolifyServer, health: Health
) -> None:
    serve_what_was_deployed(coolify, health, broken="api")
    coolify.rollback_enabled = False
    said: list[str] = []
    _, result = failed(coolify, health, said)
    assert f"rolled back api to {PREVIOUS[:7]}: image tag {PREVIOUS[:7]} redeployed" in "\n".join(
        said
    )
    assert coolify.apps["app-api"].image_tag == PREVIOUS[:7]
    assert result.outcome == "rolled-back"


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
    said: list[str] = []
    message, result = failed(coolify, health, said)
    assert "failed" in message and "pull access denied for wormhole-runner" in message
    assert any(line.startswith("rolled back runner") for line in said)
    assert result.outcome == "rolled-back"
    # the other deployments were waited for before rolling back (else they would win)
    for service in ("api", "web"):
        assert coolify.apps[f"app-{service}"].history == [SHA[:7], PREVIOUS[:7]]


def test_no_rollback_leaves_it_and_says_so(coolify: CoolifyServer, health: Health) -> None:
    serve_what_was_deployed(coolify, health, broken="runner")
    message, result = failed(coolify, health, [], rollback=False)
    assert "not rolled back (--no-rollback" in message and "docs/rollback.md" in message
    assert result.outcome == "failed-not-rolled-back"
    assert result.reason.startswith("--no-rollback")
    assert not rollback_requests(coolify)


def test_a_busy_environment_is_refused_before_anything_changes(
    coolify: CoolifyServer, health: Health
) -> None:
    coolify.queue("app-web", statuses=("in_progress",))
    message, result = failed(coolify, health, [])
    assert "already queued or running for app-web" in message
    assert "no image tag had been changed" in message
    assert result.outcome == "refused"
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


# -- the faults of issue 13 ----------------------------------------------------------------------


def test_three_stuck_applications_end_at_the_one_deadline(
    coolify: CoolifyServer, health: Health
) -> None:
    serve_what_was_deployed(coolify, health)
    coolify.hang("app-api", "app-web", "app-runner")
    time = FakeTime()
    said: list[str] = []
    message, result = failed(coolify, health, said, time, deploy_timeout=20.0, rollback=False)
    # one deadline for the three applications, not 3 x 20 s
    assert result.seconds == pytest.approx(20.0, abs=1.0)
    assert max(time.sleeps) <= 1.0
    assert "deploy deadline of 20s passed with 3 application(s) unfinished" in message
    for service in SERVICES:
        assert f"{service} (app-{service} deployment " in message
    assert message.count(": in_progress)") == 3
    assert result.outcome == "failed-not-rolled-back"


def test_three_stuck_applications_are_rolled_back_after_the_one_deadline(
    coolify: CoolifyServer, health: Health
) -> None:
    serve_what_was_deployed(coolify, health)
    coolify.hang("app-api", "app-web", "app-runner")
    time = FakeTime()
    said: list[str] = []
    _, result = failed(coolify, health, said, time, deploy_timeout=20.0)
    # the deploy deadline, then the rollback deployments (a few polls), not 3 x 20 s
    assert 20.0 <= result.seconds < 30.0
    assert result.outcome == "rolled-back"
    assert [s.rollback_target for s in result.services] == [PREVIOUS[:7]] * 3


def test_a_refusal_after_the_patch_sets_every_tag_back_and_queues_nothing(
    coolify: CoolifyServer, health: Health
) -> None:
    serve_what_was_deployed(coolify, health)
    coolify.refuse_deploys()
    said: list[str] = []
    message, result = failed(coolify, health, said)
    assert result.outcome == "refused"
    assert "Coolify answered 404 (No resources found.)" in message
    assert "no deployment and no rollback deployment was queued" in message
    assert "rolled" not in message and "nothing to roll back" not in message
    assert result.reason.startswith("refused before any deployment started")
    # every tag is back, from the server's own state, and nothing was redeployed
    assert all(coolify.apps[f"app-{s}"].image_tag == PREVIOUS[:7] for s in SERVICES)
    assert not rollback_requests(coolify)
    assert len(coolify.calls("POST", "/api/v1/deploy")) == 1
    assert not coolify.deployments
    assert [r.body for r in coolify.calls("PATCH")] == [
        {"docker_registry_image_tag": SHA[:7]}
    ] * 3 + [{"docker_registry_image_tag": PREVIOUS[:7]}] * 3
    assert {(s.status, s.detail) for s in result.services} == {
        ("refused", f"image tag set back to {PREVIOUS[:7]}")
    }


def test_without_a_previous_tag_the_rollback_takes_coolifys_newest_other_image(
    coolify: CoolifyServer, health: Health
) -> None:
    serve_what_was_deployed(coolify, health, broken="web")
    web = coolify.apps["app-web"]
    web.image_tag = ""  # never set through this tool: Coolify answers null
    web.images = [
        ("0ld0000", "2026-01-01T00:00:00.000000Z"),
        (PREVIOUS[:7], "2026-02-01T00:00:00.000000Z"),
    ]
    said: list[str] = []
    message, result = failed(coolify, health, said)
    entry = next(s for s in result.services if s.service == "web")
    assert entry.previous_tag is None and entry.rollback_target == PREVIOUS[:7]
    assert result.outcome == "rolled-back"
    assert {s.status for s in result.services} == {"rolled-back"}
    # the failed SHA (the newest image, the current one) is skipped
    assert [r.body for r in coolify.calls("POST", "/api/v1/applications/app-web/rollback")] == [
        {"commit": PREVIOUS[:7]}
    ]
    assert coolify.calls("GET", "/api/v1/applications/app-web/rollback-images")
    assert health.versions["web"] == PREVIOUS and web.image_tag == PREVIOUS[:7]
    assert "rolled back and verified: api, web, runner" in message


def test_without_any_previous_image_it_fails_not_rolled_back_with_the_manual_steps(
    coolify: CoolifyServer, health: Health
) -> None:
    serve_what_was_deployed(coolify, health, broken="web")
    coolify.apps["app-web"].image_tag = ""
    said: list[str] = []
    message, result = failed(coolify, health, said)
    assert result.outcome == "failed-not-rolled-back"
    assert "no previous image known for app-web" in message
    assert "no previous image known for app-web" in result.reason
    assert "wormhole-ci deploy --environment staging --tag <sha>" in message
    assert "docs/rollback.md" in message
    statuses = {s.service: s.status for s in result.services}
    assert statuses == {
        "api": "rolled-back",
        "web": "failed-not-rolled-back",
        "runner": "rolled-back",
    }
    assert not coolify.calls("POST", "/api/v1/applications/app-web/rollback")


def test_a_cancelled_deployment_without_log_lines_blames_no_permission(
    coolify: CoolifyServer, health: Health
) -> None:
    serve_what_was_deployed(coolify, health)
    coolify.script("app-runner", "queued", "cancelled-by-user", empty_log=True)
    said: list[str] = []
    message, result = failed(coolify, health, said)
    assert "was cancelled by a user; Coolify returned no log lines" in message
    assert "read:sensitive" not in message
    assert result.outcome == "rolled-back"


def test_a_rollback_that_does_not_verify_is_rollback_failed(
    coolify: CoolifyServer, health: Health
) -> None:
    serve_what_was_deployed(coolify, health, broken="web")
    coolify.script("app-web", "queued", "finished")  # the deploy
    coolify.script("app-web", "queued", "failed", logs=["image gone"])  # its rollback
    said: list[str] = []
    message, result = failed(coolify, health, said)
    assert result.outcome == "rollback-failed"
    assert any(line.startswith("ROLLBACK FAILED for web") for line in said)
    assert "rollback FAILED for web (see above)" in message
    assert "ROLLBACK FAILED for web" not in message


# -- the CLI: its last line, its exit code and result.json agree ---------------------------------


@dataclass
class _Manifest:
    env: Environment
    root: Path

    def environment(self, name: str) -> Environment:
        assert name == self.env.name
        return self.env


class _Registry:
    def __init__(self, *args: object) -> None:
        pass

    def __enter__(self) -> _Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def cli_deploy(
    coolify: CoolifyServer,
    health: Health,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    *,
    observability: ObservabilityTarget | None = None,
) -> tuple[int, str, dict[str, object]]:
    """`wormhole-ci deploy` with the manifest, git and the registry check stubbed out."""
    import wormhole_ci.deploy.published
    import wormhole_ci.images.gitinfo
    import wormhole_ci.images.registry
    import wormhole_ci.images.spec
    import wormhole_ci.manifest
    from wormhole_ci.cli import main
    from wormhole_ci.images.spec import Revision

    env = replace(
        environment(coolify, health),
        verify_timeout=3.0,
        deploy_timeout=10.0,
        observability=observability,
    )
    manifest = _Manifest(env, tmp_path)

    def load(source: object) -> _Manifest:
        return manifest

    def head(root: object, tag: object) -> Revision:
        return Revision(SHA)

    def nothing(*args: object) -> list[object]:
        return []

    monkeypatch.setattr(wormhole_ci.manifest, "load_manifest", load)
    monkeypatch.setattr(wormhole_ci.images.gitinfo, "revision", head)
    monkeypatch.setattr(wormhole_ci.images.spec, "image_specs", nothing)
    monkeypatch.setattr(wormhole_ci.images.registry, "Registry", _Registry)
    monkeypatch.setattr(wormhole_ci.deploy.published, "require_published", nothing)
    monkeypatch.setenv("T", TOKEN)
    output = tmp_path / "deploy.json"
    code = main(
        [
            *("deploy", "--source", str(tmp_path), "--environment", "staging"),
            *("--output", str(output), "--poll-interval", "0.05"),
        ]
    )
    captured = capsys.readouterr()
    result = json.loads(output.read_text())
    assert TOKEN not in captured.out + captured.err
    # stderr's lines come first: the result is written before the last stdout line
    return code, (captured.err + captured.out).strip(), result


def test_the_cli_says_refused_exits_1_and_writes_refused(
    coolify: CoolifyServer,
    health: Health,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    serve_what_was_deployed(coolify, health)
    coolify.refuse_deploys()
    code, output, result = cli_deploy(coolify, health, monkeypatch, capsys, tmp_path)
    assert code == 1 and result["outcome"] == "refused"
    assert output.splitlines()[-1] == "deploy refused: staging 4f3c2b1"
    assert "no deployment and no rollback deployment was queued" in output
    assert all(coolify.apps[f"app-{s}"].image_tag == PREVIOUS[:7] for s in SERVICES)
    assert_each_line_once([], output)


def test_the_cli_says_verified_and_exits_0(
    coolify: CoolifyServer,
    health: Health,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    serve_what_was_deployed(coolify, health)
    code, output, result = cli_deploy(coolify, health, monkeypatch, capsys, tmp_path)
    assert code == 0 and result["outcome"] == "verified"
    assert output.splitlines()[-1].startswith("deploy verified: staging: 4f3c2b1")
