"""A preview's GitHub reports against the loopback contract server: the exact requests of an
open, a failed open and a close, and a GitHub outage that is one bounded, tokenless warning."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.notify.github_server import GitHubServer, run_github
from wormhole_ci.notify import status as notify_status
from wormhole_ci.notify.github import GitHubTarget
from wormhole_ci.notify.http import Retry
from wormhole_ci.notify.preview import (
    PreviewStatus,
    preview_environment_url,
    preview_page,
    preview_status,
    previews_section,
)
from wormhole_ci.notify.status import COMMENT_MARKER, Section, render_pr_comment, section_of
from wormhole_ci.preview.flow import PreviewRecord, PreviewService
from wormhole_ci.secretref import Secret

TOKEN = "ghs_preview_T0ken_never_printed_31"
SHA = "1a2b3c4" + "d" * 33
FAST = Retry(deadline=1.0, first_delay=0.05, max_delay=0.2, timeout=1.0)
REPO = "/repos/acme/wormhole"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubServer]:
    monkeypatch.setattr(notify_status, "COMMENT_RETRY", FAST)
    with run_github(TOKEN) as state:
        yield state


def reporter(server: GitHubServer, warnings: list[str]) -> PreviewStatus:
    target = GitHubTarget(server.url, "acme/wormhole", Secret("env:GITHUB_TOKEN", TOKEN))
    made = preview_status(
        target, environment="staging", pr=17, warn=warnings.append, log_url="https://gh/run/3"
    )
    assert made is not None
    return made


def record(outcome: str = "running", action: str = "open") -> PreviewRecord:
    return PreviewRecord(
        pr=17,
        sha=SHA,
        action=action,
        tag="pr-17-1a2b3c4",
        database="wormhole_pr_17",
        outcome=outcome,
        services=[
            PreviewService("api", "app-api", "http://17.preview.example/api/healthz"),
            PreviewService("web", "app-web", "http://17.preview.example/healthz"),
        ],
    )


def test_urls_from_the_health_urls() -> None:
    assert preview_page("http://17.preview.example/api/healthz") == "http://17.preview.example/api/"
    assert preview_page("https://h:8443/healthz?x=1") == "https://h:8443/"
    assert preview_environment_url(record()) == "http://17.preview.example"


def test_an_open_then_a_close_exact_requests(server: GitHubServer) -> None:
    warnings: list[str] = []
    status = reporter(server, warnings)
    opening = record()
    status.opening(opening)
    done = record("verified")
    for service in done.services:
        service.status = "verified"
    status.finished(done)
    calls = server.api()
    (ident,) = server.deployments
    assert [(r.method, r.path) for r in calls] == [
        ("POST", f"{REPO}/deployments"),
        ("POST", f"{REPO}/deployments/{ident}/statuses"),
        ("GET", f"{REPO}/issues/17/comments"),
        ("POST", f"{REPO}/issues/17/comments"),
        ("POST", f"{REPO}/deployments/{ident}/statuses"),
        ("GET", f"{REPO}/issues/17/comments"),
        ("PATCH", f"{REPO}/issues/comments/{server.comments[17][0]['id']}"),
    ]
    assert calls[0].body == {
        "ref": SHA,
        "environment": "staging-pr-17",
        "description": "wormhole-ci preview pr-17-1a2b3c4 of PR #17",
        "auto_merge": False,
        "required_contexts": [],
        "transient_environment": True,
        "production_environment": False,
    }
    assert calls[1].body == {
        "state": "in_progress",
        "description": "wormhole-ci preview pr-17-1a2b3c4 of PR #17",
        "log_url": "https://gh/run/3",
    }
    assert calls[3].body == {
        "body": render_pr_comment(
            None, SHA, Section.PREVIEWS, previews_section(opening, "https://gh/run/3")
        )
    }
    assert (
        "deploying" in calls[3].body["body"]
        and "| web | http://17.preview.example/ | pending |" in calls[3].body["body"]
    )
    assert calls[4].body == {
        "state": "success",
        "description": "preview pr-17-1a2b3c4 verified",
        "environment_url": "http://17.preview.example",
        "log_url": "https://gh/run/3",
    }
    body = calls[6].body["body"]
    assert body.startswith(f"{COMMENT_MARKER}\n### wormhole-ci: `1a2b3c4`\n")
    assert section_of(body, Section.PREVIEWS) == (
        "<!-- wormhole-ci:previews -->\n"
        "**Previews** of `1a2b3c4` (images `pr-17-1a2b3c4`): ready ([log](https://gh/run/3))\n\n"
        "| service | preview | status |\n|---|---|---|\n"
        "| api | http://17.preview.example/api/ | verified |\n"
        "| web | http://17.preview.example/ | verified |\n"
        "<!-- /wormhole-ci:previews -->"
    )

    # the close: every deployment of the PR's environment inactive, then the comment
    server.requests.clear()
    other = status.github.create_deployment(ref=SHA, environment="staging-pr-18", description="d")
    server.requests.clear()
    status.closed(record("closed", action="close"))
    calls = server.api()
    assert [(r.method, r.path, r.query) for r in calls[:2]] == [
        ("GET", f"{REPO}/deployments", {"environment": "staging-pr-17", "per_page": "100"}),
        ("POST", f"{REPO}/deployments/{ident}/statuses", {}),
    ]
    assert calls[1].body == {
        "state": "inactive",
        "description": "preview of PR #17 closed",
        "log_url": "https://gh/run/3",
    }
    assert [r.method for r in calls[2:]] == ["GET", "PATCH"]
    assert [s["state"] for s in server.statuses[ident]] == ["in_progress", "success", "inactive"]
    assert other not in server.statuses  # another PR's preview is untouched
    closed = server.bodies(17)[0]
    assert "**Previews**: closed at `1a2b3c4`" in closed and "wormhole_pr_17` dropped" in closed
    assert warnings == []


def test_a_failed_open_is_a_failure_status(server: GitHubServer) -> None:
    warnings: list[str] = []
    status = reporter(server, warnings)
    status.opening(record())
    failed = record("failed")
    failed.services[1].status = "failed"
    status.finished(failed)
    (ident,) = server.deployments
    assert [(s["state"], s.get("environment_url")) for s in server.statuses[ident]] == [
        ("in_progress", None),
        ("failure", None),
    ]
    assert server.statuses[ident][1]["description"] == "preview pr-17-1a2b3c4 failed"
    assert "): failed ([log]" in server.bodies(17)[0]
    assert "| web | http://17.preview.example/ | failed |" in server.bodies(17)[0]
    assert warnings == []


def test_a_failed_close_keeps_the_deployments_and_says_so(server: GitHubServer) -> None:
    status = reporter(server, [])
    status.closed(record("failed", action="close"))
    assert [r.method for r in server.api()] == ["GET", "POST"]  # the comment only
    assert "closing failed at `1a2b3c4`" in server.bodies(17)[0]


def test_a_5xx_is_retried_and_nothing_is_lost(server: GitHubServer) -> None:
    server.fail("POST", f"{REPO}/deployments", 502)
    server.fail("GET", f"{REPO}/issues/17/comments", 503)
    warnings: list[str] = []
    reporter(server, warnings).opening(record())
    assert warnings == [] and len(server.deployments) == 1 and len(server.bodies(17)) == 1
    assert [r.method for r in server.api()] == ["POST", "POST", "POST", "GET", "GET", "POST"]


def test_github_down_is_one_bounded_tokenless_warning(server: GitHubServer) -> None:
    server.fail("POST", "/repos/", *([500] * 1000))
    server.fail("GET", "/repos/", *([500] * 1000))
    warnings: list[str] = []
    status = reporter(server, warnings)
    started = time.monotonic()
    status.opening(record())
    status.finished(record("verified"))
    status.closed(record("closed", action="close"))
    # one deadline, not one per call: after the first failure nothing more is sent
    assert time.monotonic() - started < FAST.deadline + 1.0
    assert len(warnings) == 1, warnings
    assert "HTTP 500" in warnings[0] and "the preview goes on" in warnings[0]
    assert "no further GitHub calls" in warnings[0] and TOKEN not in warnings[0]
    assert {r.path for r in server.api()} == {f"{REPO}/deployments"}


def test_unconfigured_is_none() -> None:
    assert preview_status(None, environment="staging", pr=1, warn=print) is None
