"""`wormhole-ci deploy --dry-run` and `release --dry-run [--probe]` against the Coolify contract
server and loopback /healthz servers: GET requests only (the exact list), each application's
tag change, and every refusal (invalid token, unknown application, busy, missing image,
unreachable health URL) exiting 1 with its fix; the token never printed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import copy_example
from tests.deploy.coolify_server import CoolifyServer, Logged, run_coolify_apps
from tests.deploy.healthz import Health, run_health
from wormhole_ci.cli import main

TOKEN = "dry-run-coolify-T0KEN-9f8e"
SHA = "4f3c2b1a0918273645546372819a0b1c2d3e4f50"
PREVIOUS = "0123456789abcdef0123456789abcdef01234567"
SERVICES = ("api", "web", "runner")
SECRETS = {
    "DRY_COOLIFY_TOKEN": TOKEN,
    "DRY_DATABASE_URL": "postgresql://wormhole:Db-dry-pa55@127.0.0.1:5432/wormhole",
    "DRY_REGISTRY_PASSWORD": "dry-registry-pa55",
}


@pytest.fixture
def health() -> Iterator[Health]:
    with run_health(SERVICES) as state:
        state.versions.update(dict.fromkeys(SERVICES, PREVIOUS))
        yield state


@pytest.fixture
def coolify() -> Iterator[CoolifyServer]:
    with run_coolify_apps(TOKEN, SERVICES, PREVIOUS[:7]) as server:
        server.apps["app-web"].image_tag = SHA[:7]  # already configured: unchanged
        yield server


class FakeRegistry:
    """Stands in for `images.registry.Registry` in `check_published` (read-only by nature):
    it holds every image of SHA unless the test removes some."""

    missing: ClassVar[set[str]] = set()

    def __init__(self, *args: object) -> None:
        pass

    def __enter__(self) -> FakeRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def resolve(self, repository: str, tag: str) -> object | None:
        if tag != SHA[:7] or repository.rpartition("/")[2] in self.missing:
            return None
        return object()


@pytest.fixture
def example(
    tmp_path: Path, coolify: CoolifyServer, health: Health, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The example monorepo with its staging environment on the loopback stand-ins."""
    import wormhole_ci.deploy.published

    repo = copy_example(tmp_path)
    path = repo / "wormhole-ci.toml"
    text = path.read_text()
    services = "".join(
        f'\n[environments.staging.services.{s}]\napplication = "app-{s}"\n'
        f'health_url = "http://127.0.0.1:{health.ports[s]}/healthz"\n'
        for s in SERVICES
    )
    path.write_text(
        text[: text.index("\n# Where releases go")]
        + f'\n[environments.staging]\ncoolify_url = "{coolify.url}"\n'
        'registry = "127.0.0.1:5999/wormhole"\nregistry_username = "ci-bot"\n'
        'secrets = { coolify_token = "DRY_COOLIFY_TOKEN", database_url = "DRY_DATABASE_URL", '
        'registry_password = "DRY_REGISTRY_PASSWORD" }\n' + services
    )
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    FakeRegistry.missing = set()
    monkeypatch.setattr(wormhole_ci.deploy.published, "Registry", FakeRegistry)
    return repo


def run(
    capsys: pytest.CaptureFixture[str], *argv: str, secrets: tuple[str, ...] = (TOKEN,)
) -> tuple[int, str]:
    """The CLI's exit code and its whole output (stdout, then stderr); no secret in it."""
    code = main(list(argv))
    captured = capsys.readouterr()
    output = captured.out + captured.err
    for secret in (*secrets, *SECRETS.values()):
        assert secret not in output
    return code, output


def deploy_dry_run(
    capsys: pytest.CaptureFixture[str], example: Path, *extra: str, secrets: tuple[str, ...] = ()
) -> tuple[int, str, dict[str, object]]:
    output = example.parent / "dry-run.json"
    code, text = run(
        capsys,
        *("deploy", "--source", str(example), "--environment", "staging", "--tag", SHA),
        *("--dry-run", "--output", str(output), *extra),
        secrets=(TOKEN, *secrets),
    )
    written = output.read_text()
    assert TOKEN not in written
    return code, text, json.loads(written)


def gets(*apps: str, deployments: bool = True) -> list[tuple[str, str, dict[str, str]]]:
    """The requests a probe of these applications makes, in order."""
    out: list[tuple[str, str, dict[str, str]]] = []
    for app in apps:
        out.append(("GET", f"/api/v1/applications/{app}", {}))
        if deployments:
            out.append(
                ("GET", f"/api/v1/deployments/applications/{app}", {"skip": "0", "take": "10"})
            )
    return out


def summary(output: str) -> str:
    """The one summary line (the last of stdout, or of stderr when refused)."""
    (line,) = [line for line in output.splitlines() if line.startswith("deploy dry run:")]
    return line


def logged(coolify: CoolifyServer) -> list[tuple[str, str, dict[str, str]]]:
    requests: list[Logged] = list(coolify.requests)
    assert all(r.body is None and r.auth for r in requests)
    return [(r.method, r.path, r.query) for r in requests]


def test_deploy_dry_run_gets_only_and_lists_each_tag_change(
    example: Path, coolify: CoolifyServer, health: Health, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output, result = deploy_dry_run(capsys, example)
    assert code == 0, output
    assert logged(coolify) == gets("app-api", "app-web", "app-runner")
    assert health.hits == 3
    lines = output.splitlines()
    assert lines[0] == (
        "deploy 4f3c2b1 to staging: dry run (GET requests only; nothing is changed or deployed)"
    )
    assert "registry: every image of 4f3c2b1 is in 127.0.0.1:5999/wormhole" in lines
    api = f"http://127.0.0.1:{health.ports['api']}/healthz"
    assert (
        "api (application app-api): tag 0123456 → 4f3c2b1; deployments: none queued or "
        f"running; {api}: reports {PREVIOUS} (running now)"
    ) in lines
    assert any(
        line.startswith("web (application app-web): unchanged (4f3c2b1; redeployed);")
        for line in lines
    )
    assert any(
        line.startswith("runner (application app-runner): tag 0123456 → 4f3c2b1;") for line in lines
    )
    assert "note: the token's write and deploy abilities are not checked" in output
    assert summary(output) == (
        "deploy dry run: staging 4f3c2b1: a deploy would proceed (2 application(s) to change, "
        "1 unchanged)"
    )
    assert result["outcome"] == "dry-run" and result["problems"] == []
    services = result["services"]
    assert isinstance(services, list)
    assert [s["current_tag"] for s in services] == [PREVIOUS[:7], SHA[:7], PREVIOUS[:7]]
    # nothing changed: tags as they were, no deployment
    assert [a.image_tag for a in coolify.apps.values()] == [PREVIOUS[:7], SHA[:7], PREVIOUS[:7]]
    assert coolify.deployments == {}


def test_an_invalid_token_exits_1_with_the_fix_after_one_get(
    example: Path,
    coolify: CoolifyServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = "revoked-T0KEN-not-printed-either"
    monkeypatch.setenv("DRY_COOLIFY_TOKEN", wrong)
    code, output, result = deploy_dry_run(capsys, example, secrets=(wrong,))
    assert code == 1, output
    # the token is rejected once: no other Coolify call is made with it
    assert logged(coolify) == gets("app-api", deployments=False)
    assert (
        "problem: staging/api: Coolify at "
        f"{coolify.url} rejected the API token on GET application app-api (HTTP 401 "
        "(Unauthenticated.)): the token is invalid, expired or revoked; check the environment's "
        "Coolify token secret (create a new token under Keys & Tokens → API tokens)"
    ) in output.splitlines()
    assert "web (application app-web): not checked (Coolify refused the token" in output
    assert summary(output) == (
        "deploy dry run: staging 4f3c2b1: a deploy would be refused or fail (1 problem(s) above)"
    )
    assert result["outcome"] == "refused"
    assert coolify.deployments == {}


def test_an_unknown_application_exits_1_naming_it_and_the_fix(
    example: Path, coolify: CoolifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    del coolify.apps["app-web"]
    code, output, result = deploy_dry_run(capsys, example)
    assert code == 1, output
    assert logged(coolify) == [
        *gets("app-api"),
        *gets("app-web", deployments=False),
        *gets("app-runner"),
    ]
    problems = [line for line in output.splitlines() if line.startswith("problem:")]
    assert problems == [
        "problem: staging/web: Coolify answered 404 (Application not found.) to GET application "
        "app-web: application app-web (from wormhole-ci.toml) does not exist there, or belongs to "
        "another team than the token's; check the uuid on the application's page in Coolify"
    ]
    assert "web (application app-web): unknown (HTTP 404)" in output
    assert result["outcome"] == "refused"


def test_a_busy_application_exits_1_with_the_deployment_and_the_fix(
    example: Path, coolify: CoolifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    running = coolify.queue("app-runner", statuses=("in_progress",))  # a push, the UI
    code, output, _ = deploy_dry_run(capsys, example)
    assert code == 1, output
    assert logged(coolify) == gets("app-api", "app-web", "app-runner")
    problems = [line for line in output.splitlines() if line.startswith("problem:")]
    assert problems == [
        f"problem: staging/runner: application app-runner has a deployment queued or running "
        f"({running} (in_progress)): a deploy would be refused; wait for it to finish (or "
        f"cancel it in Coolify at {coolify.url}) and run again"
    ]
    assert list(coolify.deployments) == [running]  # nothing queued, nothing advanced
    assert coolify.deployments[running].status == "in_progress"


def test_a_commit_not_in_the_registry_and_an_unreachable_health_url_are_problems(
    example: Path, coolify: CoolifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeRegistry.missing = {"wormhole-api"}
    path = example / "wormhole-ci.toml"
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = int(sock.getsockname()[1])
    text = path.read_text()
    start = text.index("[environments.staging.services.runner]")
    url = f"http://127.0.0.1:{closed}/healthz"
    path.write_text(
        text[:start] + f'[environments.staging.services.runner]\napplication = "app-runner"\n'
        f'health_url = "{url}"\n'
    )
    code, output, result = deploy_dry_run(capsys, example)
    assert code == 1, output
    assert logged(coolify) == gets("app-api", "app-web", "app-runner")
    problems = [line for line in output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2, problems
    assert problems[0].startswith(
        "problem: deploy 4f3c2b1 to staging: not in the registry: "
        "127.0.0.1:5999/wormhole/wormhole-api:4f3c2b1. Nothing was deployed."
    )
    assert problems[1].startswith(
        f"problem: staging/runner: health URL {url} is unreachable (ConnectError"
    )
    assert problems[1].endswith(
        "a deploy could not verify the SHA; check health_url in "
        "[environments.staging.services.runner] and that it is reachable from this machine"
    )
    assert result["registry"] == "images missing or unreadable (see problems)"


def test_release_dry_run_contacts_nothing_and_probe_only_gets(
    example: Path, coolify: CoolifyServer, health: Health, capsys: pytest.CaptureFixture[str]
) -> None:
    release = ("release", "--source", str(example), "--environment", "staging", "--tag", SHA)
    code, output = run(capsys, *release, "--dry-run")
    assert code == 0, output
    assert "release 4f3c2b1 to staging (dry run" in output
    assert coolify.requests == [] and health.hits == 0
    assert "→" not in output  # no probe without --probe

    code, output = run(capsys, *release, "--dry-run", "--probe")
    assert code == 0, output
    assert logged(coolify) == gets("app-api", "app-web", "app-runner")
    assert health.hits == 3
    assert "registry: not checked (the release builds and publishes the images first)" in output
    assert "api (application app-api): tag 0123456 → 4f3c2b1;" in output
    assert summary(output).startswith("deploy dry run: staging 4f3c2b1: a deploy would proceed")

    coolify.requests.clear()
    del coolify.apps["app-api"]
    code, output = run(capsys, *release, "--dry-run", "--probe")
    assert code == 1
    assert "problem: staging/api: Coolify answered 404" in output
    assert {r.method for r in coolify.requests} == {"GET"}


def test_probe_without_dry_run_is_bad_input(
    example: Path, coolify: CoolifyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    release = ("release", "--source", str(example), "--environment", "staging", "--tag", SHA)
    code, output = run(capsys, *release, "--probe")
    assert code == 2
    assert "--probe goes with --dry-run" in output
    assert coolify.requests == []
