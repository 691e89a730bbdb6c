"""The preview table of an environment, the PR database name, and the preview API's answers
on the Coolify contract server (each documented error case)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.coolify_server import CoolifyServer, run_coolify
from wormhole_ci.errors import CoolifyError, ManifestError
from wormhole_ci.manifest import load_manifest
from wormhole_ci.preview.coolify import PreviewCoolify
from wormhole_ci.preview.database import database_name
from wormhole_ci.preview.flow import preview_tag
from wormhole_ci.preview.native import preview_secrets

BASE = """
[services.api]
kind = "node"
[environments.staging]
coolify_url = "http://127.0.0.1:8000"
registry = "127.0.0.1:5000"
secrets = { coolify_token = "T", database_url = "STAGING_DB" }
[environments.staging.services.api]
application = "app-1"
health_url = "http://127.0.0.1:3000/healthz"
[environments.staging.preview]
database_url = "PREVIEW_DB"
[environments.staging.preview.services.api]
health_url = "http://127.0.0.1:3000/pr-{pr}/healthz"
"""
TOKEN = "preview-api-T0KEN"
APP = "app0preview0000000000001"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "api").mkdir(exist_ok=True)
    (tmp_path / "wormhole-ci.toml").write_text(text)
    return tmp_path


def test_the_preview_table(tmp_path: Path) -> None:
    env = load_manifest(write(tmp_path, BASE)).environment("staging")
    assert env.preview is not None
    assert env.preview.database_url == "PREVIEW_DB"
    assert env.preview.database_env == "DATABASE_URL"
    assert dict(env.preview.services) == {"api": "http://127.0.0.1:3000/pr-{pr}/healthz"}
    secrets = preview_secrets(env, {"T": "tok", "PREVIEW_DB": "postgresql://u:p@127.0.0.1/x"})
    assert secrets.database_url.reveal() == "postgresql://u:p@127.0.0.1/x"
    with pytest.raises(Exception, match=r"missing secrets: preview database_url \(\$PREVIEW_DB\)"):
        preview_secrets(env, {"T": "tok"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('database_url = "PREVIEW_DB"', 'database_url = "PREVIEW_DB"\nttl = 3'),
            r"unknown key environments\.staging\.preview\.ttl; allowed here: database_env, "
            r"database_url, services",
        ),
        (
            ('health_url = "http://127.0.0.1:3000/pr-{pr}/healthz"', 'health_url = "x"\nport = 1'),
            r"unknown key environments\.staging\.preview\.services\.api\.port",
        ),
        (
            ('database_url = "PREVIEW_DB"', 'database_url = "postgres://u:p@h/db"'),
            r"preview\.database_url must name the environment variable",
        ),
        (
            ('database_url = "PREVIEW_DB"', 'database_url = "STAGING_DB"'),
            r"preview\.database_url = 'STAGING_DB' is staging's database secret",
        ),
        (
            ("/pr-{pr}/healthz", "/healthz"),
            r"preview\.services\.api\.health_url is required: .* with \{pr\}",
        ),
        (
            ('application = "app-1"', 'tag = "api"'),
            r"\[environments\.staging\.preview\.services\.api\]: 'api' is not deployed by "
            r"application uuid",
        ),
        (
            ('database_url = "PREVIEW_DB"', 'database_url = "PREVIEW_DB"\ndatabase_env = "1X"'),
            r"preview\.database_env must be the environment variable name",
        ),
    ],
)
def test_bad_preview_tables_name_the_field_and_the_fix(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(write(tmp_path, BASE.replace(*change)))
    assert str(tmp_path / "wormhole-ci.toml") in str(info.value)


def test_database_names_are_safe_identifiers() -> None:
    assert database_name("wormhole", 17) == "wormhole_pr_17"
    assert database_name('Acme "Corp"; DROP', 3) == "acme_corp_drop_pr_3"
    assert database_name("9lives", 1) == "p_9lives_pr_1"
    long = database_name("x" * 100, 123456)
    assert len(long) == 63 and long.endswith("_pr_123456")
    for bad in (0, -1):
        with pytest.raises(Exception, match="must be positive"):
            database_name("wormhole", bad)
    assert preview_tag(17, "0123456789" * 4) == "pr-17-0123456"


@pytest.fixture
def coolify() -> Iterator[CoolifyServer]:
    with run_coolify({TOKEN: ("read", "write", "deploy")}) as server:
        server.add_app(APP, "wormhole-api")
        yield server


def client(server: CoolifyServer) -> PreviewCoolify:
    return PreviewCoolify(server.url, TOKEN, retry_deadline=2, poll_interval=0.01)


def test_env_api_creates_then_updates_the_preview_variable(coolify: CoolifyServer) -> None:
    with client(coolify) as api:
        first = api.set_preview_env(APP, "DATABASE_URL", "postgresql://a")
        assert first.created_uuid  # PATCH said "not found", then POST created it
        assert [(r.method, r.body) for r in coolify.calls(path=f"/api/v1/applications/{APP}/envs")] == [
            ("PATCH", {"key": "DATABASE_URL", "value": "postgresql://a", "is_preview": True}),
            ("POST", {"key": "DATABASE_URL", "value": "postgresql://a", "is_preview": True,
                      "is_runtime": True, "is_buildtime": False}),
        ]  # fmt: skip
        second = api.set_preview_env(APP, "DATABASE_URL", "postgresql://b")
        assert second.created_uuid is None
        assert api.preview_env_keys(APP) == ["DATABASE_URL"]
        (env,) = coolify.apps[APP].envs
        assert (env.value, env.is_preview) == ("postgresql://b", True)
        api.delete_env(APP, first.created_uuid)
        assert coolify.apps[APP].envs == []


def test_env_api_error_cases(coolify: CoolifyServer) -> None:
    http = httpx.Client(base_url=coolify.url, headers={"Authorization": f"Bearer {TOKEN}"})
    path = f"/api/v1/applications/{APP}/envs"
    extra = http.post(path, json={"key": "A", "value": "1", "is_preview": True, "color": "red"})
    assert extra.status_code == 422
    assert extra.json()["errors"] == {"color": ["This field is not allowed."]}
    assert http.post(path, json={"key": "A", "is_preview": "maybe"}).status_code == 422
    assert http.post(path, json={"key": "A", "value": "1", "is_preview": True}).status_code == 201
    again = http.post(path, json={"key": "A", "value": "2", "is_preview": True})
    assert again.status_code == 409 and "Use PATCH" in again.json()["message"]
    # the same key without the preview flag is another variable
    assert http.post(path, json={"key": "A", "value": "3"}).status_code == 201
    missing = http.patch(path, json={"key": "B", "value": "1", "is_preview": True})
    assert (missing.status_code, missing.json()) == (
        404,
        {"message": "Environment variable not found."},
    )
    assert http.delete(f"{path}/nosuchenv").status_code == 404
    assert http.get("/api/v1/applications/nope/envs").status_code == 404
    # values are shown to read:sensitive tokens only
    assert all("value" not in row for row in http.get(path).json())
    http.close()


def test_preview_deploy_and_delete_error_cases(coolify: CoolifyServer) -> None:
    http = httpx.Client(base_url=coolify.url, headers={"Authorization": f"Bearer {TOKEN}"})
    answers = {
        "tag+pr": http.post("/api/v1/deploy", params={"tag": "t", "pr": "3"}),
        "docker_tag alone": http.post("/api/v1/deploy", params={"uuid": APP, "docker_tag": "x"}),
        "tag+docker_tag": http.post(
            "/api/v1/deploy", params={"tag": "t", "docker_tag": "x", "pr": "0"}
        ),
    }
    assert {k: (v.status_code, v.json()["message"]) for k, v in answers.items()} == {
        "tag+pr": (400, "You can only use tag or pr, not both."),
        "docker_tag alone": (400, "docker_tag requires pull_request_id."),
        "tag+docker_tag": (400, "docker_tag requires pull_request_id."),
    }
    # a PR without a preview and without docker_tag: 200, no deployment
    unknown = http.post("/api/v1/deploy", params={"uuid": APP, "pr": "9"})
    assert unknown.json() == {
        "deployments": [
            {"message": "Pull request 9 not found for this resource.", "resource_uuid": APP}
        ]
    }
    bad = http.delete(f"/api/v1/applications/{APP}/previews/abc")
    assert (bad.status_code, bad.json()) == (422, {"message": "Invalid pull_request_id."})
    gone = http.delete(f"/api/v1/applications/{APP}/previews/9")
    assert (gone.status_code, gone.json()) == (404, {"message": "Preview not found."})
    http.close()
    with client(coolify) as api:
        # not a Docker-image application and no preview of PR 9: nothing is queued
        coolify.apps[APP].build_pack = "dockerfile"
        with pytest.raises(CoolifyError, match="Pull request 9 not found for this resource"):
            api.deploy_preview([APP], pr=9, docker_tag="pr-9-abcdef0")
        assert 9 not in coolify.apps[APP].previews
        coolify.apps[APP].build_pack = "dockerimage"
        (deployment,) = api.deploy_preview([APP], pr=9, docker_tag="pr-9-abcdef0")
        assert coolify.apps[APP].previews[9].tag == "pr-9-abcdef0"
        (status,) = api.wait_all([deployment], timeout=5)
        assert not isinstance(status, CoolifyError)
        assert coolify.apps[APP].previews[9].running == "pr-9-abcdef0"
        assert coolify.apps[APP].running is None
        assert api.delete_preview(APP, 9) is True
        assert api.delete_preview(APP, 9) is False  # "Preview not found.": already gone


def test_a_token_without_write_cannot_set_variables(coolify: CoolifyServer) -> None:
    coolify.tokens["readonly"] = frozenset({"read", "deploy"})
    with (
        PreviewCoolify(coolify.url, "readonly", retry_deadline=2) as api,
        pytest.raises(CoolifyError, match="403") as info,
    ):
        api.set_preview_env(APP, "DATABASE_URL", "postgresql://secret-value")
    assert "secret-value" not in str(info.value) and "readonly" not in str(info.value)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wormhole_ci", "preview", *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_cli_refuses_bad_input_before_doing_anything(tmp_path: Path) -> None:
    root = write(tmp_path, BASE.split("[environments.staging.preview]", maxsplit=1)[0])
    done = cli("--source", str(root), "--environment", "staging", "--pr", "3", "--tag", "a" * 40)
    assert done.returncode == 2
    assert "has no [environments.staging.preview] table" in done.stderr
    bad_pr = cli("--source", str(root), "--environment", "staging", "--pr", "0")
    assert bad_pr.returncode == 2 and "a pull request number is at least 1" in bad_pr.stderr
    write(tmp_path, BASE)
    missing = cli(
        "--source", str(root), "--environment", "staging", "--pr", "3", "--tag", "a" * 40,
        "--close", env={"T": "tok-value", "PREVIEW_DB": ""},
    )  # fmt: skip
    assert missing.returncode == 2
    assert "missing secrets: preview database_url ($PREVIEW_DB)" in missing.stderr
    assert "tok-value" not in missing.stderr + missing.stdout
