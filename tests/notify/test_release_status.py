"""The release machine's status reports (the path both runtimes share): a GitHub Deployment
in_progress → success/failure/error with `environment_url`, the [notify] announcement, a
GitHub outage that never fails a release, and nothing called when nothing is configured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import anyio
import pytest

from tests.deploy.coolify_server import CoolifyServer
from tests.deploy.healthz import Health
from tests.deploy.test_rollout import SHA, TOKEN, environment
from tests.notify.github_server import GitHubServer, run_github
from tests.release.test_machine import Steps
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.manifest import NotifyTarget
from wormhole_ci.notify.github import GitHubTarget
from wormhole_ci.notify.http import Retry
from wormhole_ci.notify.release import release_status
from wormhole_ci.release.machine import ReleaseMachine, Rollout
from wormhole_ci.release.record import ReleaseOutcome, ReleaseRecord
from wormhole_ci.secretref import Secret

GH_TOKEN = "ghs_release_T0ken_never_printed_42"
HOOK = "/slack/T01/B02/hooksecret99"
FAST = Retry(deadline=1.0, first_delay=0.05, max_delay=0.2, timeout=1.0)


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with run_github(GH_TOKEN) as state:
        yield state


def release(
    coolify: CoolifyServer,
    health: Health,
    github: GitHubServer | None,
    steps: Steps,
    *,
    notify: bool = False,
) -> tuple[ReleaseRecord, list[str], list[str]]:
    said: list[str] = []
    saved: list[str] = []
    env = environment(coolify, health)
    if notify:
        env = replace(env, notify=NotifyTarget("slack", "STAGING_SLACK_URL"))
    hook = Secret("env:STAGING_SLACK_URL", f"{github.url}{HOOK}") if github and notify else None
    status = release_status(
        env,
        github=GitHubTarget(github.url, "acme/wormhole", Secret("env:GITHUB_TOKEN", GH_TOKEN))
        if github
        else None,
        webhook_url=hook,
        warn=said.append,
        log_url="https://github.com/acme/wormhole/actions/runs/7",
        retry=FAST,
    )
    machine = ReleaseMachine(
        env=env,
        steps=steps,
        coolify=Coolify(coolify.url, TOKEN, poll_interval=0.05),
        rollout=Rollout(sha=SHA, image_tag=SHA[:7], poll_interval=0.05),
        say=said.append,
        save=lambda record: saved.append(record.to_json()),
        hidden=(TOKEN, GH_TOKEN, f"{github.url}{HOOK}" if github else "unused"),
        status=status,
    )
    record = anyio.run(machine.run, ReleaseRecord(sha=SHA, environment="staging", started="t"))
    return record, said, saved


def states(github: GitHubServer) -> list[tuple[str, str | None]]:
    (ident,) = github.deployments
    return [(s["state"], s.get("environment_url")) for s in github.statuses[ident]]


def test_a_release_is_a_deployment_in_progress_then_success(
    coolify: CoolifyServer,
    health: Health,
    github: GitHubServer,
) -> None:
    record, said, _ = release(coolify, health, github, Steps(), notify=True)
    assert record.outcome is ReleaseOutcome.RELEASED
    url = f"http://127.0.0.1:{health.ports['api']}"
    assert states(github) == [("in_progress", None), ("success", url)]
    (deployment,) = github.deployments.values()
    assert (deployment["ref"], deployment["environment"]) == (SHA, "staging")
    (ident,) = github.deployments
    assert github.statuses[ident][1]["description"] == f"released {SHA[:7]} to staging"
    assert github.statuses[ident][1]["log_url"] == "https://github.com/acme/wormhole/actions/runs/7"
    # the deployment is created before the first gate and finished after the last
    calls = [r.method + " " + r.path for r in github.requests]
    assert calls[-1] == f"POST {HOOK}" and len(calls) == 4
    (hook,) = github.webhooks
    assert hook.body == {"text": f"wormhole-ci: released {SHA[:7]} to staging ({url})"}
    assert not [line for line in said if line.startswith("warning")]


def test_a_stopped_release_is_a_failed_deployment(
    coolify: CoolifyServer,
    health: Health,
    github: GitHubServer,
) -> None:
    record, _, _ = release(coolify, health, github, Steps(fail="scan"))
    assert record.outcome is ReleaseOutcome.STOPPED
    assert states(github) == [("in_progress", None), ("failure", None)]
    (ident,) = github.deployments
    assert github.statuses[ident][1]["description"] == f"release {SHA[:7]} stopped at scan"


def test_a_refused_release_is_an_error_not_a_failure(
    coolify: CoolifyServer,
    health: Health,
    github: GitHubServer,
) -> None:
    coolify.queue("app-runner", statuses=("in_progress",))
    record, _, _ = release(coolify, health, github, Steps())
    assert record.outcome is ReleaseOutcome.REFUSED
    assert states(github) == [("in_progress", None), ("error", None)]


def test_a_github_outage_never_fails_the_release_and_never_shows_the_token(
    coolify: CoolifyServer,
    health: Health,
    github: GitHubServer,
) -> None:
    github.fail("POST", "/repos/", *([502] * 1000))
    github.fail("POST", "/slack/", *([503] * 1000))
    record, said, saved = release(coolify, health, github, Steps(), notify=True)
    assert record.outcome is ReleaseOutcome.RELEASED
    warnings = [line for line in said if line.startswith("warning")]
    assert len(warnings) == 2, warnings
    assert "GitHub create deployment: HTTP 502" in warnings[0]
    assert "slack webhook (Secret(env:STAGING_SLACK_URL)): HTTP 503" in warnings[1]
    everything = "\n".join(said + saved)
    assert GH_TOKEN not in everything and "hooksecret99" not in everything
    assert json.loads(saved[-1])["outcome"] == "released"


def test_a_transient_5xx_is_retried_and_reported(
    coolify: CoolifyServer,
    health: Health,
    github: GitHubServer,
) -> None:
    github.fail("POST", "/repos/acme/wormhole/deployments", 500, 502)
    record, said, _ = release(coolify, health, github, Steps())
    assert record.outcome is ReleaseOutcome.RELEASED
    assert [s for s, _ in states(github)] == ["in_progress", "success"]
    assert not [line for line in said if line.startswith("warning")]


def test_without_github_or_notify_nothing_is_called(
    coolify: CoolifyServer,
    health: Health,
    github: GitHubServer,
) -> None:
    env = environment(coolify, health)
    assert release_status(env, github=None, webhook_url=None, warn=print) is None
    record, said, _ = release(coolify, health, None, Steps())
    assert record.outcome is ReleaseOutcome.RELEASED and github.requests == []
    assert not [line for line in said if line.startswith("warning")]


def test_a_notify_without_its_url_is_one_warning() -> None:
    from wormhole_ci.manifest import Environment

    env = Environment(
        "staging", "http://127.0.0.1:1", "r", None, {}, (), notify=NotifyTarget("webhook", "HOOK")
    )
    said: list[str] = []
    assert release_status(env, github=None, webhook_url=None, warn=said.append) is None
    assert said == [
        "warning: environments.staging.notify.url_secret names $HOOK but it is not set: "
        "the release outcome is not announced"
    ]
