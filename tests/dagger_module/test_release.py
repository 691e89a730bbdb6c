"""Offline `deploy` and `release` in the Dagger layer.

The stand-in engine runs the containers; a real loopback registry, the Coolify contract
server and loopback /healthz servers answer the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagger import dag

from tests.dagger_module.conftest import PASSWORD, USER, call
from tests.dagger_module.fake_engine import ExecOutcome, FakeEngine, decode_id, readable
from tests.dagger_module.test_images import pushes_to, write_archive
from tests.deploy.coolify_server import CoolifyServer, run_coolify_apps
from tests.deploy.healthz import Health, run_health
from tests.images.registry_server import Platform, RegistryServer, make_image, push_image
from tests.notify.github_server import run_github
from tests.observability.gateway import run_pushgateway
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.main import WormholeCi
from wormhole_ci.notify import release as notify_release
from wormhole_ci.notify.http import Retry

TOKEN = "dagger-coolify-T0KEN-55aa"
DB_URL = "postgresql://wormhole:Db-pa55@db.internal:5432/wormhole"
SHA = "9a8b7c6d5e4f30211203a4b5c6d7e8f901234567"
# Another commit for the deploy tests: the registry is shared by the session, and the release
# tests publish other content under SHA's tag.
DEPLOYED = "5e4f30211203a4b5c6d7e8f9012345679a8b7c6d"


SERVICES = ("api", "web", "runner")


@pytest.fixture
def health() -> Iterator[Health]:
    with run_health(SERVICES) as state:
        yield state


@pytest.fixture
def coolify() -> Iterator[CoolifyServer]:
    with run_coolify_apps(TOKEN, SERVICES, "0000000") as server:
        yield server


def staged(example: Path, coolify: CoolifyServer, registry: RegistryServer, health: Health) -> Path:
    """The example's manifest pointed at the loopback stand-ins."""
    path = example / "wormhole-ci.toml"
    text = path.read_text()
    services = "".join(
        f'\n[environments.staging.services.{s}]\napplication = "app-{s}"\n'
        f'health_url = "http://127.0.0.1:{health.ports[s]}/healthz"\n'
        for s in SERVICES
    )
    path.write_text(
        text[: text.index("\n# Where releases go")]
        + f'\n[environments.staging]\ncoolify_url = "{coolify.url}"\nregistry = "{registry.address}"\n'
        f'registry_username = "{USER}"\nverify_timeout = 5\n'
        'secrets = { coolify_token = "T", database_url = "D", registry_password = "R" }\n'
        + services
    )

    def on_deploy(app_uuid: str, tag: str) -> None:
        health.versions[app_uuid.removeprefix("app-")] = SHA if tag == SHA[:7] else tag

    coolify.on_deploy = on_deploy
    return example


def release(example: Path, **kwargs: Any) -> dict[str, str]:
    """`dagger call release`: the files of the Directory it returns (path → contents)."""

    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        out = await module.release(
            environment="staging",
            tag=SHA,
            coolify_token=dag.set_secret("coolify-token", TOKEN),
            database_url=dag.set_secret("database-url", DB_URL),
            registry_password=dag.set_secret("registry-password", PASSWORD),
            **kwargs,
        )
        return await out.id()

    return written_files(call(run))


def written_files(directory_id: str) -> dict[str, str]:
    """Files a returned Directory holds: its own `withNewFile`s and those of directories
    mounted into it with `withDirectory` (under that path)."""
    _, chain = decode_id(directory_id)
    files: dict[str, str] = {}
    for _, name, args in chain:
        if name == "withNewFile":
            files[args["path"]] = args["contents"]
        elif name == "withDirectory":
            for path, text in written_files(args["source"]).items():
                files[f"{args['path']}/{path}"] = text
    return files


def publish_images(registry: RegistryServer, sha: str) -> None:
    """The commit's images in the registry, as a release would have left them."""
    with registry.client() as client:
        for service in SERVICES:
            image = make_image(Platform("linux", "amd64"), f"{service}-{sha}")
            push_image(client, f"wormhole-{service}", sha[:7], image)


def deploy(example: Path, sha: str = SHA) -> dict[str, str]:
    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        out = await module.deploy(
            environment="staging",
            tag=sha,
            coolify_token=dag.set_secret("t", TOKEN),
            registry_password=dag.set_secret("r", PASSWORD),
        )
        return await out.id()

    return written_files(call(run))


def test_deploy_sets_tags_deploys_and_verifies(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    staged(example, coolify, registry, health)
    publish_images(registry, DEPLOYED)
    files = deploy(example, DEPLOYED)
    result = json.loads(files["deploy.json"])
    assert files["status"] == "verified\n"
    assert result["outcome"] == "verified"
    assert [s["status"] for s in result["services"]] == ["verified"] * 3
    tags = [r.body for r in coolify.calls("PATCH")]
    assert tags == [{"docker_registry_image_tag": DEPLOYED[:7]}] * 3
    assert TOKEN not in json.dumps(files)


def test_a_deploy_coolify_refuses_writes_the_refused_outcome(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    staged(example, coolify, registry, health)
    publish_images(registry, DEPLOYED)
    coolify.refuse_deploys()
    files = deploy(example, DEPLOYED)
    result = json.loads(files["deploy.json"])
    assert files["status"] == "refused\n" and result["outcome"] == "refused"
    assert all(app.image_tag == "0000000" for app in coolify.apps.values())
    assert not [r for r in coolify.requests if r.path.endswith("/rollback")]


def test_deploy_of_a_commit_never_published_is_refused_before_coolify(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    """The rollback path: `deploy --tag <earlier SHA>` only ships images the registry holds."""
    staged(example, coolify, registry, health)
    never = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(WormholeCiError) as info:
        deploy(example, never)
    message = str(info.value)
    assert f"deploy {never[:7]} to staging: not in the registry" in message
    assert f"wormhole-api:{never[:7]}" in message and "Nothing was deployed" in message
    assert coolify.requests == []


def test_release_runs_every_step_in_order(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    staged(example, coolify, registry, health)
    engine.file_writer = write_archive
    engine.publisher = pushes_to(registry)  # publish reads every pushed tag back
    engine.file_contents = lambda chain: json.dumps({"outcome": "applied", "applied": ["x"]})
    files = release(example, allow_unavailable_scanners=True)
    record = json.loads(files["release.json"])
    assert files["status"] == "released\n", record["steps"][3]
    assert record["outcome"] == "released" and record["sha"] == SHA
    # (this environment has no Hasura engine: that step is skipped, saying why)
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        (n, "skipped" if n == "hasura" else "passed")
        for n in ("check", "build", "scan", "publish", "migrate", "hasura", "deploy")
    ]
    assert [i["service"] for i in record["images"]] == ["api", "web", "runner"]
    assert all("@sha256:" in i["reference"] and i["action"] == "pushed" for i in record["images"])
    assert all(i["config_digest"].startswith("sha256:") for i in record["images"])
    assert record["scan"]["allow_unavailable"] is True and record["scan"]["outcomes"]
    # the reports the record lists are in the returned directory
    assert sorted(record["scan"]["reports"]) == sorted(f for f in files if f.startswith("scan/"))
    assert json.loads(files["scan/scan.json"])["passed"] is True
    assert record["migrations"] == {"outcome": "applied", "applied": ["x"]}
    assert files["migrate/status"] == "applied\n"
    assert [d["status"] for d in record["deployments"]] == ["verified"] * 3
    # the migration job got the URL as the Secret, and nothing printed any secret
    migrate = [c for c, step in engine.leaves if step[1] == "contents"]
    assert migrate
    secrets = [readable(a["secret"]) for c in migrate for _, n, a in c if n == "withSecretVariable"]
    assert [("setSecret", {"name": "database-url", "plaintext": DB_URL})] in secrets
    for secret in (TOKEN, PASSWORD, DB_URL):
        assert secret not in json.dumps(files)


def test_a_red_check_stops_the_release_before_anything_else(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    staged(example, coolify, registry, health)
    engine.file_writer = write_archive
    engine.on_exec(
        lambda argv: argv[-2:] == ["ruff", "check"] or argv[-3:-1] == ["ruff", "check"],
        ExecOutcome(1, "F401", ""),
    )
    files = release(example, allow_unavailable_scanners=True)
    record = json.loads(files["release.json"])
    assert files["status"] == "stopped\n"
    assert record["stopped_at"] == "check"
    assert record["steps"][0]["detail"].startswith(
        "check failed for 1 of 5 services: runner (lint)"
    )
    assert [s["status"] for s in record["steps"]][1:] == ["skipped"] * 6
    names = {step[1] for _, step in engine.leaves}
    assert "publish" not in names  # nothing pushed
    assert not any(n == "dockerBuild" for c, _ in engine.leaves for _, n, _ in c)
    assert not [r for r in coolify.requests if r.method in ("PATCH", "POST")]
    for secret in (TOKEN, PASSWORD, DB_URL):
        assert secret not in json.dumps(files)


def test_a_failed_deploy_after_migrate_keeps_the_backup_and_the_record(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    """Deploy fails after the database was migrated: the returned directory still holds the
    migration's result and backup, and release.json says it stopped at deploy."""
    staged(example, coolify, registry, health)
    engine.file_writer = write_archive
    engine.publisher = pushes_to(registry)
    backup = "/out/backups/wormhole-20261201T000000Z-9a8b7c6.dump"
    engine.file_contents = lambda chain: json.dumps(
        {"outcome": "applied", "applied": ["x"], "backup": backup}
    )
    coolify.script("app-web", "queued", "in_progress", "failed", logs=["npm ERR! boom"])
    files = release(example, allow_unavailable_scanners=True)
    record = json.loads(files["release.json"])
    assert files["status"] == "stopped\n"
    assert record["stopped_at"] == "deploy"
    assert [s["status"] for s in record["steps"]] == ["passed"] * 5 + ["skipped", "failed"]
    assert record["migrations"]["backup"] == backup
    assert files["migrate/status"] == "applied\n"
    assert "migrate/migrate.log" in files
    # the returned directory holds the migrate job's whole output directory (with backups/)
    mounted = [a for c, _ in engine.leaves for _, n, a in c if n == "withDirectory"]
    assert any(a["path"] == "migrate" for a in mounted)
    assert [d["service"] for d in record["deployments"]] == ["api", "web", "runner"]


def test_busy_coolify_refuses_before_anything(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    staged(example, coolify, registry, health)
    coolify.queue("app-api", statuses=("in_progress",))  # another release is deploying
    files = release(example, allow_unavailable_scanners=True)
    record = json.loads(files["release.json"])
    assert files["status"] == "refused\n"
    assert "in progress for app-api" in record["refused"]
    assert [s["status"] for s in record["steps"]] == ["skipped"] * 7
    assert not any(n == "withExec" for c, _ in engine.leaves for _, n, _ in c)
    assert not [r for r in coolify.requests if r.method in ("PATCH", "POST")]


def test_an_environment_with_hasura_needs_the_admin_secret_before_anything(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
) -> None:
    staged(example, coolify, registry, health)
    manifest = example / "wormhole-ci.toml"
    manifest.write_text(
        manifest.read_text()
        + '\n[environments.staging.hasura]\nurl = "http://127.0.0.1:9"\nadmin_secret = "H"\n'
    )
    with pytest.raises(WormholeCiError) as info:
        release(example, allow_unavailable_scanners=True)
    assert "[environments.staging.hasura] is set: pass --hasura-admin-secret=env:H" in str(
        info.value
    )
    assert coolify.requests == []  # refused before even the busy check
    assert not [s for _, s in engine.leaves if s[1] in ("exitCode", "stdout", "publish")]


def test_a_deploy_pushes_its_outcome_from_the_module(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
    tmp_path: Path,
) -> None:
    staged(example, coolify, registry, health)
    publish_images(registry, DEPLOYED)
    coolify.refuse_deploys()
    with run_pushgateway(tmp_path) as gateway:
        manifest = example / "wormhole-ci.toml"
        manifest.write_text(
            manifest.read_text()
            + f'\n[environments.staging.observability]\npushgateway_url = "{gateway.url}"\n'
        )
        assert deploy(example, DEPLOYED)["status"] == "refused\n"
        labels, value = gateway.value("wormhole_ci_last_run_success", "deploy", "staging")
        assert (labels["outcome"], labels["sha"], value) == ("refused", DEPLOYED[:7], 0.0)
        assert gateway.value("wormhole_ci_failures_total", "deploy", "staging")[1] == 1.0
        assert TOKEN not in gateway.exposition() and PASSWORD not in gateway.exposition()


GH_TOKEN = "ghs_dagger_T0ken_never_printed_77"
HOOK = "/hook/never-printed-hook-secret"


def test_the_module_release_reports_to_github_and_the_webhook(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the same reporters as the native release (notify/release.py via the core machine)
    staged(example, coolify, registry, health)
    engine.file_writer = write_archive
    engine.publisher = pushes_to(registry)
    engine.file_contents = lambda chain: json.dumps({"outcome": "applied", "applied": ["x"]})
    manifest = example / "wormhole-ci.toml"
    manifest.write_text(
        manifest.read_text()
        + '\n[environments.staging.notify]\nkind = "webhook"\nurl_secret = "STAGING_HOOK"\n'
    )
    with run_github(GH_TOKEN) as github:
        github.fail("POST", "/repos/acme/wormhole/deployments", 502)  # retried, not fatal
        files = release(
            example,
            allow_unavailable_scanners=True,
            github_token=dag.set_secret("github-token", GH_TOKEN),
            github_repository="acme/wormhole",
            github_api_url=github.url,
            github_log_url="https://github.com/acme/wormhole/actions/runs/5",
            notify_url=dag.set_secret("notify-url", f"{github.url}{HOOK}"),
        )
        assert files["status"] == "released\n"
        (ident,) = github.deployments
        assert github.deployments[ident]["ref"] == SHA
        assert [(s["state"], s.get("environment_url")) for s in github.statuses[ident]] == [
            ("in_progress", None),
            ("success", f"http://127.0.0.1:{health.ports['api']}"),
        ]
        for request in github.api():
            assert request.headers["authorization"] == f"Bearer {GH_TOKEN}"
            assert request.headers["x-github-api-version"] == "2022-11-28"
        (hook,) = github.webhooks
        assert hook.path == HOOK and hook.body["outcome"] == "released"
    printed = capsys.readouterr()
    for secret in (GH_TOKEN, "never-printed-hook-secret"):
        assert secret not in json.dumps(files) and secret not in printed.err + printed.out


def test_the_module_release_survives_a_github_outage(
    engine: FakeEngine,
    example: Path,
    coolify: CoolifyServer,
    registry: RegistryServer,
    health: Health,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a short budget so the test does not wait out the production deadline
    monkeypatch.setattr(notify_release, "RELEASE_RETRY", Retry(deadline=1.0, first_delay=0.05))
    staged(example, coolify, registry, health)
    engine.file_writer = write_archive
    engine.publisher = pushes_to(registry)
    engine.file_contents = lambda chain: json.dumps({"outcome": "applied", "applied": ["x"]})
    with run_github(GH_TOKEN) as github:
        github.fail("POST", "/repos/", *([503] * 10_000))
        files = release(
            example,
            allow_unavailable_scanners=True,
            github_token=dag.set_secret("github-token", GH_TOKEN),
            github_repository="acme/wormhole",
            github_api_url=github.url,
        )
    assert files["status"] == "released\n"
    printed = capsys.readouterr().err
    assert "warning: GitHub create deployment: HTTP 503" in printed
    assert GH_TOKEN not in printed and GH_TOKEN not in json.dumps(files)
