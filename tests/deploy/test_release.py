"""`wormhole-ci release` end to end against real local parts, then each gate made to fail.

The example monorepo in git, the real tools, a Docker engine building the real images, a
registry and PostgreSQL on loopback, and the Coolify contract server whose deployments start
those images behind their real /healthz. A successful release first; then each gate fails in
turn, proving nothing after it happened (no push, no migration, no Coolify call) and that the
manifest says where it stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import PgDatabase, copy_example, git
from tests.deploy.coolify_server import CoolifyServer, run_coolify
from tests.images.engine import NODE_BASE, PYTHON_BASE, Engine
from tests.images.registry_server import (
    Platform,
    RegistryServer,
    RegistryUnavailable,
    free_port,
    make_image,
    push_image,
    run_registry,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
TOKEN = "coolify-release-T0KEN-9f8e7d"
USER = "release-bot"
PASSWORD = "registry-Pa55-for-release"
PORTS = {"api": 3000, "web": 3000, "runner": 8080}


@dataclass
class Stage:
    repo: Path
    engine: Engine
    registry: RegistryServer
    coolify: CoolifyServer
    database: PgDatabase
    ports: dict[str, int]
    wrong_sha_for: dict[str, str]
    """service → the tag whose container reports a wrong BUILD_SHA (a broken build)."""

    def env(self) -> dict[str, str]:
        return {
            **self.engine.env(),
            "TEST_COOLIFY_TOKEN": TOKEN,
            "TEST_DATABASE_URL": self.database.raw,
            "TEST_REGISTRY_PASSWORD": PASSWORD,
        }

    def secrets(self) -> tuple[str, ...]:
        return (TOKEN, PASSWORD, self.database.password, self.database.raw)

    def release(self, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        out = self.repo.parent / "release.json"
        out.unlink(missing_ok=True)
        done = subprocess.run(
            [
                sys.executable, "-m", "wormhole_ci", "release", "--source", str(self.repo),
                "--environment", "staging", "--allow-unavailable-scanners",
                "--build-arg", f"NODE_IMAGE={NODE_BASE}", "--build-arg", f"PYTHON_IMAGE={PYTHON_BASE}",
                "--output", str(out), "--work-dir", str(self.repo.parent / "work"),
                "--poll-interval", "0.2", *extra,
            ],
            capture_output=True, text=True, timeout=1500, env=self.env(), check=False,
        )  # fmt: skip
        text = out.read_text() if out.exists() else "{}"
        for secret in self.secrets():
            for where in (done.stdout, done.stderr, text):
                assert secret not in where
        return done, json.loads(text)

    def commit(self, message: str) -> str:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", message)
        return git(self.repo, "rev-parse", "HEAD")

    def tags_in_registry(self, sha: str) -> dict[str, bool]:
        with self.registry.client() as client:
            return {
                s: client.head(
                    f"/v2/wormhole-{s}/manifests/{sha[:7]}",
                    headers={
                        "Accept": "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.index.v1+json"
                    },
                ).status_code
                == 200
                for s in PORTS
            }

    def applied(self) -> list[str]:
        with psycopg.connect(self.database.url.conninfo()) as conn:
            exists = conn.execute("SELECT to_regclass('_prisma_migrations') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                return []
            return [
                str(r[0])
                for r in conn.execute(
                    "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY 1"
                )
            ]

    def coolify_changes(self) -> int:
        return sum(1 for r in self.coolify.requests if r.method in ("PATCH", "POST"))


def manifest_for(coolify: CoolifyServer, registry: RegistryServer, ports: dict[str, int]) -> str:
    services = "".join(
        f'\n[environments.staging.services.{s}]\napplication = "app-{s}"\n'
        f'health_url = "http://127.0.0.1:{ports[s]}/healthz"\n'
        for s in PORTS
    )
    return (
        "\n[environments.staging]\n"
        f'coolify_url = "{coolify.url}"\n'
        f'registry = "{registry.address}"\n'
        f'registry_username = "{USER}"\n'
        'secrets = { coolify_token = "TEST_COOLIFY_TOKEN", database_url = "TEST_DATABASE_URL", '
        'registry_password = "TEST_REGISTRY_PASSWORD" }\n'
        "deploy_timeout = 120\nverify_timeout = 30\n" + services
    )


@pytest.fixture(scope="module")
def stage(
    engine: Engine, pg_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stage]:
    from tests.conftest import new_password
    from wormhole_ci.migrate.dburl import DatabaseUrl
    from wormhole_ci.pgtemp import create_role_and_database, drop_role_and_database

    work = tmp_path_factory.mktemp("release")
    role, dbname, password = "wci_release", "wci_release", new_password()
    create_role_and_database(pg_server, role, password, dbname)
    raw = pg_server.url(dbname, role, password)
    database = PgDatabase(DatabaseUrl.parse(raw), raw, role, password)
    try:
        registry_cm = run_registry(work / "registry", users={USER: PASSWORD})
        registry = registry_cm.__enter__()
    except RegistryUnavailable as err:
        pytest.skip(str(err))
    with run_coolify({TOKEN: ("read", "write", "deploy", "read:sensitive")}) as coolify:
        ports = {s: free_port() for s in PORTS}
        repo = copy_example(work)
        manifest = repo / "wormhole-ci.toml"
        text = manifest.read_text()
        manifest.write_text(
            text[: text.index("\n# Where releases go")] + manifest_for(coolify, registry, ports)
        )
        git(repo, "init", "-q")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "example")
        stage = Stage(repo, engine, registry, coolify, database, ports, {})
        for service in PORTS:
            coolify.add_app(f"app-{service}", f"wormhole-{service}", image_tag="none")

        def on_deploy(app_uuid: str, tag: str) -> None:
            """Coolify 'runs' the image of that tag: the real container on its loopback port."""
            service = app_uuid.removeprefix("app-")
            name = f"wci-release-{service}"
            engine.docker("rm", "--force", name, check=False)
            broken = stage.wrong_sha_for.get(service) == tag
            extra = ["-e", "BUILD_SHA=0000000wrong"] if broken else []
            engine.docker(
                "run", "--detach", "--name", name, "--publish", f"127.0.0.1:{ports[service]}:{PORTS[service]}",
                *extra, f"wormhole-{service}:{tag}",
            )  # fmt: skip

        coolify.on_deploy = on_deploy
        try:
            yield stage
        finally:
            for service in PORTS:
                engine.docker("rm", "--force", f"wci-release-{service}", check=False)
            registry_cm.__exit__(None, None, None)
            drop_role_and_database(pg_server, role, dbname)


def healthz(stage: Stage, service: str) -> str:
    return str(
        httpx.get(f"http://127.0.0.1:{stage.ports[service]}/healthz", timeout=5).json()["version"]
    )


def test_1_dry_run_touches_nothing(stage: Stage) -> None:
    requests_before = len(stage.coolify.requests)
    registry_before = stage.registry.requests_seen()
    done, _ = stage.release("--dry-run")
    assert done.returncode == 0, done.stderr
    sha = git(stage.repo, "rev-parse", "HEAD")
    out = done.stdout
    assert f"release {sha[:7]} to staging (dry run" in out
    assert f"{stage.registry.address}/wormhole-api:{sha[:7]}" in out
    assert f"on 127.0.0.1:{stage.database.url.port}/{stage.database.url.dbname}" in out
    assert "api -> application app-api" in out and stage.coolify.url in out
    assert len(stage.coolify.requests) == requests_before  # not even a read
    assert stage.registry.requests_seen() == registry_before
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, False)
    assert stage.applied() == []
    assert not (stage.repo.parent / "work").exists()


def test_2_release_end_to_end(stage: Stage) -> None:
    sha = git(stage.repo, "rev-parse", "HEAD")
    done, record = stage.release()
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"released {sha[:7]} to staging" in done.stdout
    assert record["sha"] == sha and record["environment"] == "staging"
    assert record["outcome"] == "released" and record["stopped_at"] is None
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        (n, "passed") for n in ("check", "build", "scan", "publish", "migrate", "deploy")
    ]
    assert all(s["seconds"] > 0 for s in record["steps"])
    for image in record["images"]:
        assert image["reference"].startswith(
            f"{stage.registry.address}/wormhole-{image['service']}:{sha[:7]}@sha256:"
        )
    assert record["scan"]["allow_unavailable"] is True and "outcomes" in record["scan"]
    assert record["migrations"]["applied"] == [
        "20260101000000_init",
        "20260201000000_workflow_runs",
    ]
    assert Path(record["migrations"]["backup"]).name.endswith(f"-{sha[:7]}.dump")
    assert [(d["service"], d["status"]) for d in record["deployments"]] == [
        (s, "verified") for s in PORTS
    ]
    assert all(d["deployment"] for d in record["deployments"])
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, True)
    for service in PORTS:
        assert healthz(stage, service) == sha


def change_and_release(
    stage: Stage, change: Callable[[Path], None], message: str, *, revert: bool = False
) -> tuple[str, subprocess.CompletedProcess[str], dict[str, Any], int, list[str]]:
    """Commit `change`, release it (expecting a stop); `revert` undoes the commit afterwards
    whatever happened, so a failing test does not leave its change to the next one."""
    change(stage.repo)
    sha = stage.commit(message)
    before_coolify, before_applied = stage.coolify_changes(), stage.applied()
    try:
        done, record = stage.release()
    finally:
        if revert:
            git(stage.repo, "revert", "--no-edit", "HEAD")
    assert done.returncode == 1, done.stderr[-3000:]
    return sha, done, record, before_coolify, before_applied


def assert_stopped(record: dict[str, Any], step: str) -> None:
    assert record["outcome"] == "stopped" and record["stopped_at"] == step
    names = [s["name"] for s in record["steps"]]
    statuses = {s["name"]: s["status"] for s in record["steps"]}
    assert statuses[step] == "failed"
    assert all(statuses[n] == "passed" for n in names[: names.index(step)])
    assert all(statuses[n] == "skipped" for n in names[names.index(step) + 1 :])


def test_3_check_gate(stage: Stage) -> None:
    def lint_error(repo: Path) -> None:
        path = repo / "runner" / "src" / "runner" / "health.py"
        path.write_text(path.read_text() + "\nimport os\n")

    sha, done, record, coolify_before, applied_before = change_and_release(
        stage, lint_error, "lint error", revert=True
    )
    assert_stopped(record, "check")
    assert "release stopped at check" in done.stderr and "runner (lint" in done.stderr
    assert (
        stage.engine.docker("image", "inspect", f"wormhole-api:{sha[:7]}", check=False).returncode
        != 0
    )
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, False)
    assert stage.applied() == applied_before and stage.coolify_changes() == coolify_before


def test_4_scan_gate(stage: Stage) -> None:
    def leak_a_key(repo: Path) -> None:
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(repo / "runner" / "deploy_key.pem")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    sha, done, record, coolify_before, applied_before = change_and_release(
        stage, leak_a_key, "a key", revert=True
    )
    assert_stopped(record, "scan")
    assert "scan failed" in done.stderr
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, False)  # built, never pushed
    assert stage.applied() == applied_before and stage.coolify_changes() == coolify_before


def test_5_publish_gate(stage: Stage) -> None:
    def touch(repo: Path) -> None:
        (repo / "api" / "README.md").write_text((repo / "api" / "README.md").read_text() + "\nv2\n")

    touch(stage.repo)
    sha = stage.commit("docs")
    with stage.registry.client() as client:  # someone else's image already holds web's tag
        push_image(client, "wormhole-web", sha[:7], make_image(Platform("linux", "amd64"), "other"))
    coolify_before, applied_before = stage.coolify_changes(), stage.applied()
    done, record = stage.release()
    assert done.returncode == 1
    assert_stopped(record, "publish")
    assert "tags are immutable" in done.stderr and "nothing was pushed" in done.stderr
    tags = stage.tags_in_registry(sha)
    assert tags == {"api": False, "web": True, "runner": False}  # all or nothing
    assert stage.applied() == applied_before and stage.coolify_changes() == coolify_before


def test_6_migrate_gate(stage: Stage) -> None:
    # (Dropping a column Hasura tracks is already stopped by the check: the metadata no
    # longer matches the schema. SET NOT NULL keeps the columns and is still destructive.)
    def destructive(repo: Path) -> None:
        folder = repo / "api" / "prisma" / "migrations" / "20260301000000_require_name"
        folder.mkdir()
        (folder / "migration.sql").write_text(
            'ALTER TABLE "users" ALTER COLUMN "display_name" SET NOT NULL;\n'
        )

    sha, done, record, coolify_before, applied_before = change_and_release(
        stage, destructive, "require a display name", revert=True
    )
    assert_stopped(record, "migrate")
    assert "SET NOT NULL" in done.stderr and "--allow-destructive" in done.stderr
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, True)  # published before the gate
    assert stage.applied() == applied_before and stage.coolify_changes() == coolify_before


def test_7_deploy_gate(stage: Stage) -> None:
    previous = healthz(stage, "api")
    stage.coolify.script(
        "app-api", "queued", "in_progress", "failed", logs=["image pull failed: manifest unknown"]
    )

    def touch(repo: Path) -> None:
        (repo / "web" / "README.md").write_text((repo / "web" / "README.md").read_text() + "\nv3\n")

    _, done, record, _, _ = change_and_release(stage, touch, "deploy gate")
    assert_stopped(record, "deploy")
    assert "image pull failed: manifest unknown" in done.stderr
    statuses = {d["service"]: d["status"] for d in record["deployments"]}
    assert set(statuses.values()) <= {"rolled-back", "pending", "deployed"}
    assert "rolled back api" in done.stderr
    assert healthz(stage, "api") == previous


def test_8_verify_gate_rolls_back(stage: Stage) -> None:
    previous = {s: healthz(stage, s) for s in PORTS}

    path = stage.repo / "runner" / "README.md"
    path.write_text(path.read_text() + "\nv4\n")
    sha = stage.commit("verify gate")
    stage.wrong_sha_for["web"] = sha[:7]  # this commit's web build is "broken": a wrong SHA
    try:
        done, record = stage.release()
    finally:
        stage.wrong_sha_for.clear()
    assert done.returncode == 1, done.stderr[-3000:]
    assert_stopped(record, "deploy")
    assert (
        f"web (http://127.0.0.1:{stage.ports['web']}/healthz) reports 0000000wrong, not {sha[:7]}"
        in done.stderr
    )
    assert {d["service"]: d["status"] for d in record["deployments"]} == dict.fromkeys(
        PORTS, "rolled-back"
    )
    for service in PORTS:
        assert f"rolled back {service} to {previous[service][:7]}" in done.stderr
        assert healthz(stage, service) == previous[service]
        assert stage.coolify.apps[f"app-{service}"].image_tag == previous[service][:7]


def test_9_missing_secret_is_bad_input(stage: Stage) -> None:
    env = {k: v for k, v in stage.env().items() if k != "TEST_COOLIFY_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-m", "wormhole_ci", "release", "--source", str(stage.repo), "--environment", "staging"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "missing secrets: coolify_token ($TEST_COOLIFY_TOKEN)" in done.stderr
    assert os.environ.get("TEST_COOLIFY_TOKEN") is None
