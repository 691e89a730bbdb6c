"""`wormhole-ci drift` on the Coolify area (the contract server on loopback): one release's
tag everywhere or each stray application named with its fix; `--only` contacts nothing else;
exit 0/1/2; drift.json, drift.md and the GitHub step summary."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import copy_example
from tests.deploy.coolify_server import CoolifyServer, run_coolify
from wormhole_ci.cli import main
from wormhole_ci.hasura.environment import ENGINE_TAG

TOKEN = "drift-coolify-T0KEN-31337"
APPS = {
    "api": "stg0api0wormhole0000000a",
    "web": "stg0web0wormhole0000000w",
    "runner": "stg0run0wormhole0000000r",
}
ENGINE_APP = "stg0hsr0wormhole0000000h"
RELEASED = "4f3c2b1"


class Listener:
    """A TCP port on loopback that counts who connects (and answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.sock.settimeout(0.1)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def coolify() -> Iterator[CoolifyServer]:
    with run_coolify({TOKEN: ("read",)}) as server:
        for service, uuid in APPS.items():
            server.add_app(uuid, f"wormhole-{service}", image_tag=RELEASED)
        server.add_app(ENGINE_APP, "hasura", image_tag=ENGINE_TAG)
        yield server


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def repo(tmp_path: Path, coolify: CoolifyServer, listener: Listener) -> Path:
    """The example, staging pointed at the contract server, its database and its Hasura
    engine at a port that counts connections."""
    root = copy_example(tmp_path)
    manifest = root / "wormhole-ci.toml"
    text = manifest.read_text().replace(
        'coolify_url = "http://192.168.1.66:8000"', f'coolify_url = "{coolify.url}"', 1
    )
    # the example's own staging Hasura table (if any) makes way for one at the counting port
    text = re.sub(r"(?ms)^\[environments\.staging\.hasura\]\n.*?(?=^\[|\Z)", "", text)
    manifest.write_text(
        text
        + f'\n[environments.staging.hasura]\nurl = "http://127.0.0.1:{listener.port}"\n'
        + f'admin_secret = "DRIFT_HASURA_SECRET"\napplication = "{ENGINE_APP}"\n'
    )
    return root


def drift(
    repo: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, dict[str, object], str]:
    monkeypatch.setenv("COOLIFY_TOKEN", TOKEN)
    out = repo.parent / "out" / "drift.json"
    code = main(
        ["drift", "--source", str(repo), "--environment", "staging", "--output", str(out), *args]
    )
    report = json.loads(out.read_text()) if out.exists() else {}
    markdown = out.with_suffix(".md").read_text() if out.exists() else ""
    for text in (json.dumps(report), markdown):
        assert TOKEN not in text
    return code, report, markdown


def items(report: dict[str, object]) -> list[dict[str, str]]:
    areas = report["areas"]
    assert isinstance(areas, list)
    return [item for area in areas for item in area["items"]]  # type: ignore[index]


def test_one_release_everywhere_is_no_drift(
    repo: Path,
    coolify: CoolifyServer,
    listener: Listener,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("STAGING_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFT_HASURA_SECRET", raising=False)
    code, report, markdown = drift(repo, monkeypatch, "--only", "coolify", "--expect-sha", RELEASED)
    assert code == 0
    assert report["outcome"] == "clean" and items(report) == []
    assert [a["area"] for a in report["areas"]] == ["coolify"]  # type: ignore[union-attr]
    assert "## Drift: staging: clean" in markdown
    assert summary.read_text().startswith("earlier step\n## Drift: staging: clean")
    # --only coolify: the database and Hasura (both at the counting port) were never contacted
    assert listener.accepted == 0
    assert {r.method for r in coolify.requests} == {"GET"}  # read-only


def test_an_application_on_another_tag_is_named_with_its_fix(
    repo: Path, coolify: CoolifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    coolify.apps[APPS["web"]].image_tag = "0badc0d"
    coolify.apps[ENGINE_APP].image_tag = "v2.40.0"
    code, report, markdown = drift(repo, monkeypatch, "--only", "coolify")
    assert code == 1 and report["outcome"] == "drift"
    (web, engine) = items(report)
    assert web["kind"] == "image-tag"
    assert web["subject"] == f"web (application {APPS['web']})"
    assert "runs image tag 0badc0d, not 4f3c2b1" in web["detail"]
    assert web["fix"] == f"wormhole-ci deploy --environment staging --tag {RELEASED}"
    assert engine["kind"] == "engine-image"
    assert f"runs v2.40.0, not the pinned {ENGINE_TAG}" in engine["detail"]
    assert engine["fix"] == "wormhole-ci hasura-apply --environment staging"
    assert "| image-tag | `web (application" in markdown


def test_expect_sha_compares_every_application_with_the_release(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, report, _ = drift(
        repo, monkeypatch, "--only", "coolify", "--expect-sha", "1234567890abcdef"
    )
    assert code == 1
    assert sorted(i["subject"].split()[0] for i in items(report)) == ["api", "runner", "web"]
    assert all(i["fix"].endswith("--tag 1234567") for i in items(report))


def test_unreachable_coolify_is_an_error_not_a_verdict(
    repo: Path, coolify: CoolifyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    coolify.tokens.clear()  # every request now answers 401
    code, report, markdown = drift(repo, monkeypatch, "--only", "coolify")
    assert code == 2 and report["outcome"] == "error"
    (area,) = report["areas"]  # type: ignore[misc]
    assert area["error"].startswith(f"Coolify at {coolify.url}")
    assert "**error**" in markdown


def test_a_missing_secret_names_its_variable_and_reads_nothing(
    repo: Path,
    coolify: CoolifyServer,
    listener: Listener,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("STAGING_DATABASE_URL", raising=False)
    monkeypatch.setenv("DRIFT_HASURA_SECRET", "hasura-secret-value")
    code, report, _ = drift(repo, monkeypatch)
    assert code == 2 and report == {}
    err = capsys.readouterr().err
    assert "missing secrets: database_url ($STAGING_DATABASE_URL)" in err
    assert "hasura-secret-value" not in err
    assert coolify.requests == [] and listener.accepted == 0
