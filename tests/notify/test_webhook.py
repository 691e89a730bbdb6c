"""Slack and generic JSON webhooks against the loopback sink: exact bodies, the URL (a
credential) in no error, and the [notify] table of the manifest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.notify.github_server import GitHubServer, run_github
from wormhole_ci.errors import ManifestError
from wormhole_ci.manifest import load_manifest
from wormhole_ci.notify.http import NotifyError, Retry
from wormhole_ci.notify.release import release_message
from wormhole_ci.notify.webhook import Message, Webhook
from wormhole_ci.release.record import ReleaseOutcome, ReleaseRecord
from wormhole_ci.secretref import Secret

FAST = Retry(deadline=1.0, first_delay=0.05, max_delay=0.2, timeout=1.0)
SHA = "9a8b7c6d5e4f30211203a4b5c6d7e8f901234567"
HOOK_SECRET = "T000/B000/XXXXsecretXXXX"


@pytest.fixture
def sink() -> Iterator[GitHubServer]:
    with run_github("unused") as state:
        yield state


def record(outcome: ReleaseOutcome, stopped_at: str | None = None) -> ReleaseRecord:
    out = ReleaseRecord(sha=SHA, environment="staging", started="t", outcome=outcome)
    out.stopped_at = stopped_at
    for step in out.steps:
        step.status = "passed"
    if stopped_at:
        out.step(stopped_at).status, out.step(stopped_at).detail = "failed", "scan failed: 2 high"
    return out


def test_slack_gets_text_only(sink: GitHubServer) -> None:
    url = Secret("env:SLACK_URL", f"{sink.url}/slack/{HOOK_SECRET}")
    Webhook("slack", url, retry=FAST).send(
        release_message(record(ReleaseOutcome.STOPPED, "scan"), "https://s.example")
    )
    (hit,) = sink.webhooks
    assert (hit.method, hit.path) == ("POST", f"/slack/{HOOK_SECRET}")
    assert hit.headers["content-type"] == "application/json"
    assert hit.body == {"text": "wormhole-ci: release 9a8b7c6 stopped at scan: scan failed: 2 high"}


def test_a_generic_webhook_gets_the_event(sink: GitHubServer) -> None:
    url = Secret("env:HOOK_URL", f"{sink.url}/hook/{HOOK_SECRET}")
    Webhook("webhook", url, retry=FAST).send(
        release_message(record(ReleaseOutcome.RELEASED), "https://s.example")
    )
    (hit,) = sink.webhooks
    assert hit.method == "POST" and hit.body == {
        "event": "release",
        "environment": "staging",
        "sha": SHA,
        "outcome": "released",
        "stopped_at": None,
        "environment_url": "https://s.example",
        "steps": [
            {"name": n, "status": "passed"}
            for n in ("check", "build", "scan", "publish", "migrate", "hasura", "deploy")
        ],
    }


def test_a_failing_webhook_names_its_variable_never_its_url(sink: GitHubServer) -> None:
    sink.fail("POST", "/slack/", *([503] * 100))
    url = Secret("env:SLACK_URL", f"{sink.url}/slack/{HOOK_SECRET}")
    with pytest.raises(NotifyError) as info:
        Webhook("slack", url, retry=FAST).send(Message("hi", {}))
    text = str(info.value)
    assert "slack webhook (Secret(env:SLACK_URL))" in text and "HTTP 503" in text
    assert HOOK_SECRET not in text and sink.url not in text
    assert len(sink.webhooks) == 0 and len(sink.requests) > 1  # retried, bounded


def test_slack_refuses_a_message_without_text(sink: GitHubServer) -> None:
    url = Secret("env:SLACK_URL", f"{sink.url}/slack/{HOOK_SECRET}")
    with pytest.raises(NotifyError, match="HTTP 400: invalid_payload after 1 attempt"):
        Webhook("slack", url, retry=FAST).send(Message("", {}))


def manifest_with(tmp: Path, table: str) -> Path:
    from tests.conftest import EXAMPLE

    text = (EXAMPLE / "wormhole-ci.toml").read_text()
    (tmp / "wormhole-ci.toml").write_text(text + f"\n[environments.staging.notify]\n{table}\n")
    for child in EXAMPLE.iterdir():
        if child.name != "wormhole-ci.toml" and not (tmp / child.name).exists():
            (tmp / child.name).symlink_to(child)
    return tmp


def test_the_notify_table(tmp_path: Path) -> None:
    root = manifest_with(tmp_path, 'kind = "slack"\nurl_secret = "STAGING_SLACK_URL"')
    notify = load_manifest(root).environment("staging").notify
    assert notify is not None and (notify.kind, notify.url_secret) == ("slack", "STAGING_SLACK_URL")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'kind = "slack"\nurl_secret = "X"\nchannel = "#a"',
            "unknown key environments.staging.notify.channel",
        ),
        ('kind = "teams"\nurl_secret = "X"', "notify.kind must be one of slack, webhook"),
        (
            'kind = "slack"\nurl_secret = "https://hooks.slack.com/x"',
            "url_secret must name the environment variable",
        ),
    ],
)
def test_a_bad_notify_table_is_refused(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(manifest_with(tmp_path, table))
    assert "hooks.slack.com" not in str(info.value)


def test_a_malformed_webhook_url_is_a_notify_error_not_a_crash() -> None:
    url = Secret("env:HOOK_URL", "not a url at all " + HOOK_SECRET)
    with pytest.raises(NotifyError) as info:
        Webhook("webhook", url, retry=Retry(deadline=0.2, first_delay=0.05)).send(Message("x", {}))
    assert HOOK_SECRET not in str(info.value)
