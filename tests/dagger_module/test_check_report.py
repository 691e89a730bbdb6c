"""`check-report`: the check's results as files (JUnit, text, status), never a failed call;
with --pr-comment (check and check-report) the summary in the PR comment's checks section."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from dagger import dag

from tests.dagger_module.conftest import call
from tests.dagger_module.fake_engine import ExecOutcome, FakeEngine, decode_id
from tests.notify.github_server import GitHubServer, run_github
from wormhole_ci.main import WormholeCi
from wormhole_ci.notify import status as notify_status
from wormhole_ci.notify.http import Retry
from wormhole_ci.notify.status import COMMENT_MARKER, Section, section_of


def report_files(example: Path) -> dict[str, str]:
    async def run() -> str:
        out = await WormholeCi(source=dag.host().directory(str(example))).check_report()
        return await out.id()

    _, chain = decode_id(call(run))
    return {a["path"]: a["contents"] for _, n, a in chain if n == "withNewFile"}


def test_check_report_of_a_passing_check(engine: FakeEngine, example: Path) -> None:
    files = report_files(example)
    assert files["status"] == "passed\n"
    suites = ET.fromstring(files["junit.xml"].split("?>", 1)[1])
    assert [s.get("name") for s in suites] == [
        f"wormhole-ci.{s}" for s in ("api", "web", "runner", "hasura", "delivery")
    ]
    assert all(s.get("failures") == "0" for s in suites)
    assert files["check.txt"].splitlines()[-1].startswith("check passed in ")


def test_check_report_of_a_failing_check_does_not_fail(engine: FakeEngine, example: Path) -> None:
    engine.on_exec(
        lambda argv: argv[-2:] == ["ruff", "check"] or argv[-3:-1] == ["ruff", "check"],
        ExecOutcome(1, "F401 unused import", ""),
    )
    files = report_files(example)
    assert files["status"] == "failed\n"
    assert "check failed for 1 of 5 services: runner (lint)" in files["check.txt"]
    suites = {s.get("name"): s for s in ET.fromstring(files["junit.xml"].split("?>", 1)[1])}
    runner = suites["wormhole-ci.runner"]
    assert runner.get("failures") == "1"
    (failure,) = runner.iter("failure")
    assert "F401 unused import" in (failure.text or "")


# --- --pr-comment: the same core as `wormhole-ci check --pr-comment` ------------------------

GH_TOKEN = "ghs_dagger_check_T0ken_never_printed_19"
SHA = "9a8b7c6d5e4f30211203a4b5c6d7e8f901234567"
PREVIEWS = "<!-- wormhole-ci:previews -->\npreview text  \n<!-- /wormhole-ci:previews -->"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubServer]:
    monkeypatch.setattr(
        notify_status, "COMMENT_RETRY", Retry(deadline=1.0, first_delay=0.05, timeout=1.0)
    )
    with run_github(GH_TOKEN) as state:
        yield state


def commented(example: Path, github: GitHubServer, function: str) -> str:
    """`dagger call FUNCTION --pr-comment=12 ...`: the call's result (an ID for check-report)."""

    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        # the SDK's @function typing does not model bound async methods' parameters
        fn = cast(Callable[..., Awaitable[Any]], getattr(module, function))
        out = await fn(
            pr_comment=12,
            pr_sha=SHA,
            github_token=dag.set_secret("github-token", GH_TOKEN),
            github_repository="acme/wormhole",
            github_api_url=github.url,
        )
        if function == "check":
            return str(out)
        return await out.id()

    return call(run)


@pytest.mark.parametrize("function", ["check", "check_report"])
def test_pr_comment_writes_the_checks_section(
    engine: FakeEngine,
    example: Path,
    github: GitHubServer,
    function: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    existing = f"{COMMENT_MARKER}\n### wormhole-ci: `0000000`\n\n{PREVIEWS}\n"
    ident = github.add_comment(12, existing)
    result = commented(example, github, function)
    calls = github.api()
    assert [(r.method, r.path) for r in calls] == [
        ("GET", "/repos/acme/wormhole/issues/12/comments"),
        ("PATCH", f"/repos/acme/wormhole/issues/comments/{ident}"),
    ]
    assert calls[0].headers["authorization"] == f"Bearer {GH_TOKEN}"
    (body,) = github.bodies(12)
    assert body.startswith(f"{COMMENT_MARKER}\n### wormhole-ci: `9a8b7c6`\n")
    assert section_of(body, Section.PREVIEWS) == PREVIEWS
    checks = section_of(body, Section.CHECKS) or ""
    assert "**Checks** at `9a8b7c6`: `check` passed" in checks
    printed = capsys.readouterr()
    for text in (result, printed.out, printed.err):
        assert GH_TOKEN not in text


def test_pr_comment_with_github_down_only_warns(
    engine: FakeEngine, example: Path, github: GitHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    github.fail("GET", "/repos/", *([502] * 10_000))
    lines = commented(example, github, "check").splitlines()
    assert lines[-1].startswith("check passed in ")  # the verdict is the check's
    err = capsys.readouterr().err
    assert "warning: GitHub comments of #12: HTTP 502" in err and GH_TOKEN not in err


def test_a_failing_check_still_writes_the_comment_then_fails(
    engine: FakeEngine, example: Path, github: GitHubServer
) -> None:
    engine.on_exec(
        lambda argv: argv[-2:] == ["ruff", "check"] or argv[-3:-1] == ["ruff", "check"],
        ExecOutcome(1, "F401 unused import", ""),
    )
    with pytest.raises(Exception, match=r"runner \(lint\)"):
        commented(example, github, "check")
    (body,) = github.bodies(12)
    assert "`check` failed" in body and "failed: runner lint" in body
