"""The GitHub client and reporters against the loopback contract server: exact requests,
retries bounded by a deadline, the token in no output, and nothing called when unconfigured."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.notify.github_server import GitHubServer, run_github
from wormhole_ci.notify.github import GitHub, GitHubTarget, actions_run_url, github_target
from wormhole_ci.notify.http import NotifyError, Retry
from wormhole_ci.notify.status import (
    COMMENT_MARKER,
    DeploymentReporter,
    DeploymentState,
    Section,
    render_pr_comment,
    section_of,
    update_pr_comment,
)
from wormhole_ci.secretref import Secret

TOKEN = "ghs_T0kenThatMustNeverShow_0123456789"
SHA = "9a8b7c6d5e4f30211203a4b5c6d7e8f901234567"
SHA2 = "5e4f30211203a4b5c6d7e8f9012345679a8b7c6d"
FAST = Retry(deadline=1.5, first_delay=0.05, max_delay=0.2, timeout=1.0)


@pytest.fixture
def server() -> Iterator[GitHubServer]:
    with run_github(TOKEN) as state:
        yield state


def client(server: GitHubServer, retry: Retry = FAST) -> GitHub:
    target = github_target(
        Secret("env:GITHUB_TOKEN", TOKEN), "acme/wormhole", {"GITHUB_API_URL": server.url}
    )
    assert target is not None
    return GitHub(target, retry=retry)


def headers_ok(headers: dict[str, str]) -> None:
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["authorization"] == f"Bearer {TOKEN}"


def test_a_deployment_then_its_statuses_exact_requests(server: GitHubServer) -> None:
    warnings: list[str] = []
    reporter = DeploymentReporter(client(server), warnings.append, "https://gh/run/1")
    reporter.start(ref=SHA, environment="staging", description="release 9a8b7c6 to staging")
    reporter.finish(DeploymentState.SUCCESS, "released", "https://staging.example")
    calls = server.api()
    assert [(r.method, r.path) for r in calls] == [
        ("POST", "/repos/acme/wormhole/deployments"),
        ("POST", f"/repos/acme/wormhole/deployments/{reporter.deployment}/statuses"),
        ("POST", f"/repos/acme/wormhole/deployments/{reporter.deployment}/statuses"),
    ]
    for r in calls:
        headers_ok(r.headers)
    assert calls[0].body == {
        "ref": SHA,
        "environment": "staging",
        "description": "release 9a8b7c6 to staging",
        "auto_merge": False,
        "required_contexts": [],
        "transient_environment": False,
        "production_environment": False,
    }
    assert calls[1].body == {
        "state": "in_progress",
        "description": "release 9a8b7c6 to staging",
        "log_url": "https://gh/run/1",
    }
    assert calls[2].body == {
        "state": "success",
        "description": "released",
        "environment_url": "https://staging.example",
        "log_url": "https://gh/run/1",
    }
    assert warnings == []


def test_production_is_a_production_environment_and_long_descriptions_are_cut(
    server: GitHubServer,
) -> None:
    gh = client(server)
    ident = gh.create_deployment(ref=SHA, environment="production", description="x" * 300)
    body = server.deployments[ident]
    assert body["production_environment"] is True and len(body["description"]) == 140


def test_5xx_is_retried_within_the_deadline(server: GitHubServer) -> None:
    server.fail("POST", "/repos/acme/wormhole/deployments", 502, 503)
    ident = client(server).create_deployment(ref=SHA, environment="staging", description="d")
    assert ident in server.deployments
    assert [r.method for r in server.api()] == ["POST"] * 3


def test_a_github_that_keeps_failing_is_one_warning_bounded_and_tokenless(
    server: GitHubServer,
) -> None:
    server.fail("POST", "/repos/", *([500] * 500))
    warnings: list[str] = []
    reporter = DeploymentReporter(client(server), warnings.append)
    started = time.monotonic()
    reporter.start(ref=SHA, environment="staging", description="d")
    reporter.finish(DeploymentState.FAILURE, "stopped")
    assert time.monotonic() - started < FAST.deadline + 1.0
    assert len(warnings) == 1 and "HTTP 500" in warnings[0] and "deployment" in warnings[0]
    assert reporter.deployment is None  # and no status was sent for it
    assert all(TOKEN not in w for w in warnings)


def test_a_4xx_is_final_not_retried(server: GitHubServer) -> None:
    target = GitHubTarget(server.url, "acme/wormhole", Secret("env:X", "wrong-token-value"))
    with pytest.raises(NotifyError, match="HTTP 401: Bad credentials after 1 attempt") as info:
        GitHub(target, retry=FAST).create_deployment(ref=SHA, environment="s", description="d")
    assert "wrong-token-value" not in str(info.value)
    assert len(server.api()) == 1


def test_no_answer_is_retried_then_reported_without_the_url() -> None:
    # a closed loopback port: connection refused on every attempt
    target = GitHubTarget("http://127.0.0.1:9", "acme/wormhole", Secret("env:T", TOKEN))
    with pytest.raises(NotifyError, match="ConnectError") as info:
        GitHub(target, retry=FAST).create_status(1, state="success", description="d")
    assert TOKEN not in str(info.value) and "127.0.0.1" not in str(info.value)


def test_the_pr_comment_is_posted_once_then_patched(server: GitHubServer) -> None:
    gh = client(server)
    server.add_comment(7, "an unrelated comment")
    warn: list[str] = []
    first = update_pr_comment(
        gh, 7, sha=SHA, section=Section.CHECKS, content="12 tasks passed", warn=warn.append
    )
    second = update_pr_comment(
        gh, 7, sha=SHA, section=Section.CHECKS, content="13 tasks passed", warn=warn.append
    )
    assert first == second and warn == []
    calls = [(r.method, r.path, r.query) for r in server.api()]
    page = {"per_page": "100", "page": "1"}
    assert calls == [
        ("GET", "/repos/acme/wormhole/issues/7/comments", page),
        ("POST", "/repos/acme/wormhole/issues/7/comments", {}),
        ("GET", "/repos/acme/wormhole/issues/7/comments", page),
        ("PATCH", f"/repos/acme/wormhole/issues/comments/{first}", {}),
    ]
    for r in server.api():
        headers_ok(r.headers)
    assert server.api()[1].body == {
        "body": render_pr_comment(None, SHA, Section.CHECKS, "12 tasks passed")
    }
    assert server.api()[3].body == {
        "body": render_pr_comment(None, SHA, Section.CHECKS, "13 tasks passed")
    }
    bodies = server.bodies(7)
    assert bodies[0] == "an unrelated comment" and COMMENT_MARKER in bodies[1]
    assert len(bodies) == 2 and "13 tasks passed" in bodies[1] and "12 tasks" not in bodies[1]


def test_the_marker_is_found_past_the_first_page(server: GitHubServer) -> None:
    for i in range(100):
        server.add_comment(3, f"comment {i}")
    marked = server.add_comment(3, f"{COMMENT_MARKER}\nold")
    got = update_pr_comment(
        client(server), 3, sha=SHA, section=Section.CHECKS, content="ok", warn=print
    )
    assert got == marked
    assert [r.query.get("page") for r in server.api() if r.method == "GET"] == ["1", "2"]


def test_render_pr_comment() -> None:
    text = render_pr_comment(None, SHA, Section.CHECKS, "2 tasks passed\n")
    assert text == (
        f"{COMMENT_MARKER}\n### wormhole-ci: `9a8b7c6`\n\n"
        "<!-- wormhole-ci:checks -->\n2 tasks passed\n<!-- /wormhole-ci:checks -->\n"
    )
    both = render_pr_comment(text, SHA2, Section.PREVIEWS, "| web | https://w |")
    assert both == (
        f"{COMMENT_MARKER}\n### wormhole-ci: `5e4f302`\n\n"
        "<!-- wormhole-ci:previews -->\n| web | https://w |\n<!-- /wormhole-ci:previews -->\n\n"
        "<!-- wormhole-ci:checks -->\n2 tasks passed\n<!-- /wormhole-ci:checks -->\n"
    )


# Sections as another writer (or an older run) left them: odd spacing and text that must
# survive a rewrite of the other section byte for byte.
CHECKS_AS_WRITTEN = "<!-- wormhole-ci:checks -->\n**Checks**  at `aaaaaaa`\n\n```\nx  y\n```\n<!-- /wormhole-ci:checks -->"
PREVIEWS_AS_WRITTEN = (
    "<!-- wormhole-ci:previews -->\n| api | http://p/ |  \n<!-- /wormhole-ci:previews -->"
)


def test_a_previews_update_keeps_the_checks_section_byte_for_byte() -> None:
    existing = f"{COMMENT_MARKER}\n### wormhole-ci: `aaaaaaa`\n\n{CHECKS_AS_WRITTEN}\n"
    updated = render_pr_comment(existing, SHA, Section.PREVIEWS, "previews v2")
    assert section_of(updated, Section.CHECKS) == CHECKS_AS_WRITTEN
    assert section_of(updated, Section.PREVIEWS) == (
        "<!-- wormhole-ci:previews -->\npreviews v2\n<!-- /wormhole-ci:previews -->"
    )
    assert "### wormhole-ci: `9a8b7c6`" in updated and "`aaaaaaa`\n\n<!--" not in updated
    again = render_pr_comment(updated, SHA, Section.PREVIEWS, "previews v3")
    assert section_of(again, Section.CHECKS) == CHECKS_AS_WRITTEN
    assert "previews v2" not in again and again.count("wormhole-ci:previews -->") == 2


def test_a_checks_update_keeps_the_previews_section_byte_for_byte() -> None:
    existing = (
        f"{COMMENT_MARKER}\n### wormhole-ci: `aaaaaaa`\n\n{PREVIEWS_AS_WRITTEN}\n\n"
        f"{CHECKS_AS_WRITTEN}\n"
    )
    updated = render_pr_comment(existing, SHA, Section.CHECKS, "checks v2")
    assert section_of(updated, Section.PREVIEWS) == PREVIEWS_AS_WRITTEN
    assert section_of(updated, Section.CHECKS) == (
        "<!-- wormhole-ci:checks -->\nchecks v2\n<!-- /wormhole-ci:checks -->"
    )
    assert "x  y" not in updated


def test_a_comment_without_sections_or_with_half_a_section_is_rewritten_sanely() -> None:
    # an older comment (marker, no sections) or one edited by hand: what is not a whole
    # section is not kept; the writer's own section and the header are always there
    old = f"{COMMENT_MARKER}\n### wormhole-ci: `aaaaaaa`\n\n| api | x |\n**Checks**\nold text\n"
    assert render_pr_comment(old, SHA, Section.CHECKS, "new") == (
        render_pr_comment(None, SHA, Section.CHECKS, "new")
    )
    half = f"{COMMENT_MARKER}\n<!-- wormhole-ci:previews -->\nno end marker\n"
    rewritten = render_pr_comment(half, SHA, Section.CHECKS, "new")
    assert section_of(rewritten, Section.PREVIEWS) is None and "no end marker" not in rewritten
    # an end marker before the start marker is no section either
    backwards = "<!-- /wormhole-ci:checks --> <!-- wormhole-ci:checks -->"
    assert section_of(backwards, Section.CHECKS) is None
    assert section_of(None, Section.CHECKS) is None


def test_the_found_comment_body_is_what_the_update_keeps(server: GitHubServer) -> None:
    # against the server: a previews update PATCHes a body holding the checks section as it was
    existing = f"{COMMENT_MARKER}\n### wormhole-ci: `aaaaaaa`\n\n{CHECKS_AS_WRITTEN}\n"
    server.add_comment(9, "an unrelated comment mentioning wormhole-ci:checks")
    ident = server.add_comment(9, existing)
    warn: list[str] = []
    got = update_pr_comment(
        client(server), 9, sha=SHA, section=Section.PREVIEWS, content="p", warn=warn.append
    )
    assert got == ident and warn == []
    patch = server.api()[-1]
    assert (patch.method, patch.path) == ("PATCH", f"/repos/acme/wormhole/issues/comments/{ident}")
    assert patch.body == {"body": render_pr_comment(existing, SHA, Section.PREVIEWS, "p")}
    assert section_of(server.bodies(9)[1], Section.CHECKS) == CHECKS_AS_WRITTEN
    assert server.bodies(9)[0] == "an unrelated comment mentioning wormhole-ci:checks"


def test_a_comment_that_cannot_be_written_is_one_tokenless_warning(server: GitHubServer) -> None:
    # a fork's read-only GITHUB_TOKEN: GitHub answers 403, final (not retried)
    server.fail("POST", "/repos/acme/wormhole/issues/5/comments", 403)
    warn: list[str] = []
    got = update_pr_comment(
        client(server), 5, sha=SHA, section=Section.CHECKS, content="c", warn=warn.append
    )
    assert got is None and len(warn) == 1
    assert "HTTP 403" in warn[0] and "comment was not updated" in warn[0] and TOKEN not in warn[0]
    assert [r.method for r in server.api()] == ["GET", "POST"]


def test_list_deployments_of_an_environment(server: GitHubServer) -> None:
    gh = client(server)
    first = gh.create_deployment(ref=SHA, environment="staging-pr-7", description="d")
    gh.create_deployment(ref=SHA, environment="staging-pr-8", description="d")
    second = gh.create_deployment(ref=SHA2, environment="staging-pr-7", description="d")
    assert gh.list_deployments("staging-pr-7") == [second, first]  # newest first
    listed = server.api()[-1]
    assert (listed.method, listed.path) == ("GET", "/repos/acme/wormhole/deployments")
    assert listed.query == {"environment": "staging-pr-7", "per_page": "100"}
    headers_ok(listed.headers)
    assert gh.list_deployments("staging-pr-9") == []


def test_unconfigured_github_calls_nothing() -> None:
    assert github_target(None, "acme/wormhole", {}) is None
    assert github_target(Secret("env:T", TOKEN), None, {}) is None
    reporter = DeploymentReporter(None, print)
    reporter.start(ref=SHA, environment="s", description="d")
    reporter.finish(DeploymentState.SUCCESS, "ok")
    assert (
        update_pr_comment(None, 1, sha=SHA, section=Section.CHECKS, content="", warn=print) is None
    )


def test_target_defaults_and_run_url() -> None:
    env = {"GITHUB_REPOSITORY": "acme/w", "GITHUB_API_URL": "http://127.0.0.1:1/api/v3/"}
    target = github_target(Secret("env:T", TOKEN), "", env)
    assert target is not None
    assert (target.api_url, target.repository) == ("http://127.0.0.1:1/api/v3", "acme/w")
    default = github_target(Secret("env:T", TOKEN), "acme/w", {})
    assert default is not None and default.api_url == "https://api.github.com"
    with pytest.raises(NotifyError, match="expected owner/name"):
        github_target(Secret("env:T", TOKEN), "not a repo", {})
    assert repr(target.token) == "Secret(env:T)"
    run = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "a/b",
        "GITHUB_RUN_ID": "9",
    }
    assert actions_run_url(run) == "https://github.com/a/b/actions/runs/9"
    assert actions_run_url({}) == ""


def test_a_preview_deployment_is_transient_and_goes_inactive(server: GitHubServer) -> None:
    # the API `preview` calls: a transient environment per PR, inactive when it closes
    reporter = DeploymentReporter(client(server), print)
    reporter.start(ref=SHA, environment="pr-7", description="preview of #7", transient=True)
    reporter.finish(DeploymentState.SUCCESS, "preview ready", "https://pr-7.example")
    reporter.finish(DeploymentState.INACTIVE, "preview closed")
    (deployment,) = server.deployments.values()
    assert deployment["transient_environment"] is True
    assert deployment["production_environment"] is False
    assert [s["state"] for s in server.statuses[deployment["id"]]] == [
        "in_progress",
        "success",
        "inactive",
    ]


def test_check_summary() -> None:
    from wormhole_ci.notify.status import check_summary
    from wormhole_ci.results import RunReport, Status, TaskResult

    report = RunReport(
        (
            TaskResult("api", "lint", Status.PASSED, cached=True),
            TaskResult("api", "test", Status.FAILED),
            TaskResult("web", "test", Status.BLOCKED),
        ),
        wall_time=3.25,
    )
    assert check_summary(report) == (
        "failed: api test\nblocked: web test\n1 of 3 tasks passed (1 reused), 3.2 s"
    )
