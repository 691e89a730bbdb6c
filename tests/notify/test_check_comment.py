"""`wormhole-ci check --pr-comment N` against the loopback GitHub contract server: the checks
section written (the previews section another run wrote kept byte for byte), exact requests,
GitHub failures that only warn and never change the exit code, and the token in no output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import copy_tree, git
from tests.notify.github_server import GitHubServer, run_github
from wormhole_ci.cli import main
from wormhole_ci.notify import status as notify_status
from wormhole_ci.notify.http import Retry
from wormhole_ci.notify.status import COMMENT_MARKER, Section, render_pr_comment, section_of

pytestmark = pytest.mark.slow  # real uv, ruff, pyright and pytest over a one-service fixture

FIXTURE = Path(__file__).parents[1] / "fixtures" / "monorepos" / "uv-service"
TOKEN = "ghs_check_T0ken_never_printed_64"
REPO = "/repos/acme/wormhole"
PREVIEWS = (
    "<!-- wormhole-ci:previews -->\n**Previews** of `0000000`: ready\n\n| web | http://p/ |  \n"
    "<!-- /wormhole-ci:previews -->"
)


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubServer]:
    monkeypatch.setattr(
        notify_status, "COMMENT_RETRY", Retry(deadline=1.5, first_delay=0.05, timeout=1.0)
    )
    with run_github(TOKEN) as state:
        monkeypatch.setenv("GH_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_API_URL", state.url)
        monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
        yield state


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    root = copy_tree(FIXTURE, tmp_path / "repo")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "fixture")
    return root, git(root, "rev-parse", "HEAD")


def check(root: Path, tmp: Path, *extra: str) -> int:
    return main([
        "check", "--source", str(root), "--progress", "plain", "--jobs", "2",
        "--json", str(tmp / "check.json"), "--pr-comment", "12", *extra,
    ])  # fmt: skip


GH = ("--github-token", "env:GH_TOKEN", "--github-repository", "acme/wormhole")


def test_check_writes_its_section_and_keeps_the_previews(
    repo: tuple[Path, str],
    github: GitHubServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, sha = repo
    existing = f"{COMMENT_MARKER}\n### wormhole-ci: `0000000`\n\n{PREVIEWS}\n"
    github.add_comment(12, "an unrelated comment")
    comment = github.add_comment(12, existing)
    github.fail("GET", f"{REPO}/issues/12/comments", 502)  # retried within the deadline
    assert check(root, tmp_path, *GH) == 0
    calls = github.api()
    page = {"per_page": "100", "page": "1"}
    assert [(r.method, r.path, r.query) for r in calls] == [
        ("GET", f"{REPO}/issues/12/comments", page),
        ("GET", f"{REPO}/issues/12/comments", page),
        ("PATCH", f"{REPO}/issues/comments/{comment}", {}),
    ]
    assert calls[2].headers["authorization"] == f"Bearer {TOKEN}"
    body = calls[2].body["body"]
    assert body == render_pr_comment(existing, sha, Section.CHECKS, section_body(body))
    assert section_of(body, Section.PREVIEWS) == PREVIEWS  # byte for byte
    checks = section_of(body, Section.CHECKS)
    assert checks is not None
    assert checks.startswith(
        f"<!-- wormhole-ci:checks -->\n**Checks** at `{sha[:7]}`: `check` passed"
    )
    assert "5 of 5 tasks passed" in checks
    assert github.bodies(12)[0] == "an unrelated comment"
    printed = capsys.readouterr()
    for text in (printed.out, printed.err, (tmp_path / "check.json").read_text()):
        assert TOKEN not in text
    assert "warning" not in printed.err


def section_body(body: str) -> str:
    checks = section_of(body, Section.CHECKS) or ""
    return checks.split("\n", 1)[1].rsplit("\n", 1)[0]


def test_a_failing_check_with_github_down_keeps_its_exit_code(
    repo: tuple[Path, str],
    github: GitHubServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _ = repo
    test_file = next((root / "greeter").rglob("test_*.py"))
    test_file.write_text(
        test_file.read_text() + "\n\ndef test_injected() -> None:\n    assert False\n"
    )
    github.fail("GET", "/repos/", *([503] * 10_000))
    assert check(root, tmp_path, *GH) == 1  # the check's verdict, not GitHub's
    printed = capsys.readouterr()
    warnings = [line for line in printed.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "HTTP 503" in warnings[0], printed.err
    assert "comment was not updated" in warnings[0]
    assert TOKEN not in printed.out + printed.err
    report = json.loads((tmp_path / "check.json").read_text())
    assert TOKEN not in json.dumps(report)
    assert github.bodies(12) == []


def test_a_read_only_token_only_warns(
    repo: tuple[Path, str],
    github: GitHubServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a fork's GITHUB_TOKEN: GitHub answers 403 to the comment, once (not retried)
    root, _ = repo
    github.fail("POST", f"{REPO}/issues/12/comments", 403)
    assert check(root, tmp_path, *GH) == 0
    assert [r.method for r in github.api()] == ["GET", "POST"]
    err = capsys.readouterr().err
    assert "warning: GitHub comment on #12: HTTP 403" in err and TOKEN not in err


def test_without_a_token_nothing_is_called(
    repo: tuple[Path, str],
    github: GitHubServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _ = repo
    assert check(root, tmp_path, "--github-repository", "acme/wormhole") == 0
    assert github.requests == []
    assert "--pr-comment 12 without --github-token" in capsys.readouterr().err
