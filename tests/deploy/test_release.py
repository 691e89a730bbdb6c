"""`wormhole-ci release` end to end against real local parts, then each gate made to fail.

The example monorepo in git, the real tools, a Docker engine building the real images, a
registry and PostgreSQL on loopback, and the Coolify contract server whose deployments start
those images behind their real /healthz. A successful release first; then each gate fails in
turn, proving nothing after it happened (no push, no migration, no Coolify call) and that the
manifest says where it stopped.

Each test runs alone and in any order: the gates that need a running previous release (the
migrate gate, the deploy and verify gates) ask for the `released` fixture, which makes that
release once per module; `isolated` puts the example repository (and the Coolify knobs) back
after every test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import PgDatabase, copy_example, git, new_password
from tests.dagger_module.fake_engine import ExecOutcome, FakeEngine
from tests.deploy.coolify_server import CoolifyServer, run_coolify
from tests.deploy.dagger_release import DaggerRelease, comparable, dagger_release
from tests.hasura.hasura_server import EMPTY, HasuraServer, run_hasura
from tests.images.engine import NODE_BASE, PYTHON_BASE, Engine
from tests.images.registry_server import (
    Platform,
    RegistryServer,
    free_port,
    make_image,
    push_image,
    registry_or_skip,
)
from tests.notify.github_server import run_github
from wormhole_ci.hasura.diff import diff_metadata
from wormhole_ci.hasura.metadata import repo_metadata
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.pgtemp import TempPostgres, create_role_and_database, drop_role_and_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
TOKEN = "coolify-release-T0KEN-9f8e7d"
USER = "release-bot"
PASSWORD = "registry-Pa55-for-release"
ADMIN = "hasura-Adm1n-for-release"
PORTS = {"api": 3000, "web": 3000, "runner": 8080}
MIGRATIONS = ["20260101000000_init", "20260201000000_workflow_runs"]
SECURITY_FIXTURES = Path(__file__).parent.parent / "security" / "fixtures"


@dataclass
class Stage:
    repo: Path
    engine: Engine
    registry: RegistryServer
    coolify: CoolifyServer
    database: PgDatabase
    hasura: HasuraServer
    ports: dict[str, int]
    wrong_sha_for: dict[str, str]
    """service → the tag whose container reports a wrong BUILD_SHA (a broken build)."""
    at_replace: list[tuple[list[str], int]] = field(default_factory=list[tuple[list[str], int]])
    """At each Hasura replace of the first release: (applied migrations, Coolify changes)."""

    def env(self) -> dict[str, str]:
        return {
            **self.engine.env(),
            "TEST_COOLIFY_TOKEN": TOKEN,
            "TEST_DATABASE_URL": self.database.raw,
            "TEST_REGISTRY_PASSWORD": PASSWORD,
            "TEST_HASURA_ADMIN_SECRET": ADMIN,
        }

    def secrets(self) -> tuple[str, ...]:
        return (TOKEN, PASSWORD, ADMIN, self.database.password, self.database.raw)

    def release(
        self, *extra: str, environ: dict[str, str] | None = None
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
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
            capture_output=True, text=True, timeout=1500, env={**self.env(), **(environ or {})},
            check=False,
        )  # fmt: skip
        text = out.read_text() if out.exists() else "{}"
        artifacts = [
            p.read_text(errors="replace") for p in (self.repo.parent / "work").rglob("*.json")
        ]
        for secret in self.secrets():
            for where in (done.stdout, done.stderr, text, *artifacts):
                assert secret not in where
        # the admin secret travels only in its header, never in a request body
        assert all(ADMIN not in json.dumps(r.body) for r in self.hasura.requests)
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


def manifest_for(
    coolify: CoolifyServer, registry: RegistryServer, ports: dict[str, int], hasura: HasuraServer
) -> str:
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
        "deploy_timeout = 120\nverify_timeout = 30\n"
        f'hasura = {{ url = "{hasura.url}", admin_secret = "TEST_HASURA_ADMIN_SECRET" }}\n'
        + services
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry_or_skip(
        tmp_path_factory.mktemp("release-registry"), users={USER: PASSWORD}
    ) as server:
        yield server


@pytest.fixture(scope="module")
def database(pg_server: TempPostgres) -> Iterator[PgDatabase]:
    role, dbname, password = "wci_release", "wci_release", new_password()
    create_role_and_database(pg_server, role, password, dbname)
    raw = pg_server.url(dbname, role, password)
    try:
        yield PgDatabase(DatabaseUrl.parse(raw), raw, role, password)
    finally:
        drop_role_and_database(pg_server, role, dbname)


@pytest.fixture(scope="module")
def stage(
    engine: Engine,
    registry: RegistryServer,
    database: PgDatabase,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stage]:
    work = tmp_path_factory.mktemp("release")
    with (
        run_coolify({TOKEN: ("read", "write", "deploy", "read:sensitive")}) as coolify,
        run_hasura(database.url.conninfo(), ADMIN) as hasura,
    ):
        ports = {s: free_port() for s in PORTS}
        repo = copy_example(work)
        manifest = repo / "wormhole-ci.toml"
        text = manifest.read_text()
        manifest.write_text(
            text[: text.index("\n# Where releases go")]
            + manifest_for(coolify, registry, ports, hasura)
        )
        git(repo, "init", "-q")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "example")
        stage = Stage(repo, engine, registry, coolify, database, hasura, ports, {})
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


@pytest.fixture(autouse=True)
def isolated(stage: Stage) -> Iterator[None]:
    """Whatever a test commits, scripts or breaks is undone after it: the next test (in any
    order) starts from the same commit with no Coolify script or broken build pending."""
    head = git(stage.repo, "rev-parse", "HEAD")
    try:
        yield
    finally:
        git(stage.repo, "reset", "-q", "--hard", head)
        git(stage.repo, "clean", "-qfd")
        stage.coolify.scripts.clear()
        stage.wrong_sha_for.clear()
        stage.hasura.on_export = stage.hasura.on_replace = None


@dataclass(frozen=True)
class Released:
    sha: str
    done: subprocess.CompletedProcess[str]
    record: dict[str, Any]


@pytest.fixture(scope="module")
def released(stage: Stage) -> Released:
    """A successful release of the example (once per module): the containers of that SHA
    run, its migrations are applied and its tags are in the registry. The gates that need
    a previous release to stop at (or roll back to) ask for this."""
    sha = git(stage.repo, "rev-parse", "HEAD")
    stage.hasura.on_replace = lambda _body: stage.at_replace.append(
        (stage.applied(), stage.coolify_changes())
    )
    done, record = stage.release()
    stage.hasura.on_replace = None
    assert done.returncode == 0, "the release the later gates need failed:\n" + done.stderr[-3000:]
    return Released(sha, done, record)


@pytest.fixture(scope="module")
def dagger_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The Dagger runs' own registry: the native runs' tags are in the other one."""
    with registry_or_skip(
        tmp_path_factory.mktemp("dagger-release-registry"), users={USER: PASSWORD}
    ) as server:
        yield server


def dagger_run(
    stage: Stage,
    registry: RegistryServer,
    engine: FakeEngine,
    sha: str,
    out: Path,
    configure: Callable[[FakeEngine], None] | None = None,
) -> DaggerRelease:
    """The same scenario through `dagger call release` on the stand-in engine (same
    Coolify, same /healthz containers, same PostgreSQL), publishing to `registry`."""
    manifest = stage.repo / "wormhole-ci.toml"
    text = manifest.read_text()
    manifest.write_text(
        text.replace(f'registry = "{stage.registry.address}"', f'registry = "{registry.address}"')
    )
    try:
        run = dagger_release(
            stage.repo,
            sha=sha,
            registry=registry,
            secrets={
                "coolify_token": TOKEN,
                "database_url": stage.database.raw,
                "registry_password": PASSWORD,
                "hasura_admin_secret": ADMIN,
            },
            out=out,
            env=stage.env(),
            engine=engine,
            configure=configure,
        )
    finally:
        manifest.write_text(text)
    for secret in stage.secrets():
        assert secret not in json.dumps(run.files)
    return run


def assert_parity(
    stage: Stage, native: dict[str, Any], dagger: DaggerRelease, registry: RegistryServer
) -> None:
    """Both runtimes wrote the same record (modulo times, ids and tool output)."""
    assert comparable(dagger.record, registry.address) == comparable(native, stage.registry.address)
    assert dagger.files["status"] == f"{native['outcome']}\n"


def reset_schema(stage: Stage) -> None:
    """The database as before any migration (both runtimes then migrate the same thing)."""
    with psycopg.connect(stage.database.url.conninfo(), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def reset_hasura(stage: Stage, metadata: dict[str, object] | None = None) -> None:
    """The engine as the first release found it (or holding `metadata`, at version 1)."""
    stage.hasura.metadata = json.loads(json.dumps(metadata or EMPTY))
    stage.hasura.resource_version = 1


def reset_tags(stage: Stage, tag: str) -> None:
    for app in stage.coolify.apps.values():
        app.image_tag = tag


def work_dir_listing(stage: Stage) -> list[tuple[str, int, int]] | None:
    """Every file under the release work dir (path, size, mtime), or None without one."""
    work = stage.repo.parent / "work"
    if not work.exists():
        return None
    return sorted(
        (str(p.relative_to(work)), p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in work.rglob("*")
    )


def healthz(stage: Stage, service: str) -> str:
    return str(
        httpx.get(f"http://127.0.0.1:{stage.ports[service]}/healthz", timeout=5).json()["version"]
    )


def test_1_dry_run_touches_nothing(stage: Stage) -> None:
    # a commit of its own: never released, whatever ran before
    path = stage.repo / "api" / "README.md"
    path.write_text(path.read_text() + "\ndry run\n")
    sha = stage.commit("dry run")
    requests_before = len(stage.coolify.requests)
    registry_before = stage.registry.requests_seen()
    applied_before, work_before = stage.applied(), work_dir_listing(stage)
    hasura_before = len(stage.hasura.calls())
    replaced_before = len(stage.hasura.calls("replace_metadata"))
    would = diff_metadata(stage.hasura.metadata, repo_metadata(stage.repo / "hasura", stage.repo))
    done, _ = stage.release("--dry-run")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"release {sha[:7]} to staging (dry run" in out
    assert f"{stage.registry.address}/wormhole-api:{sha[:7]}" in out
    assert f"on 127.0.0.1:{stage.database.url.port}/{stage.database.url.dbname}" in out
    assert "api -> application app-api" in out and stage.coolify.url in out
    # contact-free: the Hasura line names the engine only
    assert f"6. hasura   metadata to {stage.hasura.url} (not contacted; --probe" in out
    assert len(stage.hasura.calls()) == hasura_before
    assert len(stage.coolify.requests) == requests_before  # not even a read
    assert stage.registry.requests_seen() == registry_before
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, False)
    assert stage.applied() == applied_before
    assert work_dir_listing(stage) == work_before
    # --probe reads what would change (never writes), and Coolify only with GETs
    probed, _ = stage.release("--dry-run", "--probe")
    changes = "; ".join(f"{c.action} {c.object}" for c in would) or "no change"
    assert f"6. hasura   metadata to {stage.hasura.url}: {changes}" in probed.stdout
    assert len(stage.hasura.calls()) > hasura_before
    assert len(stage.hasura.calls("replace_metadata")) == replaced_before
    assert {r.method for r in stage.coolify.requests[requests_before:]} == {"GET"}
    assert stage.applied() == applied_before
    assert work_dir_listing(stage) == work_before


def test_2_release_end_to_end(stage: Stage, released: Released) -> None:
    sha, done, record = released.sha, released.done, released.record
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"released {sha[:7]} to staging" in done.stdout
    assert record["sha"] == sha and record["environment"] == "staging"
    assert record["outcome"] == "released" and record["stopped_at"] is None
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        (n, "passed") for n in ("check", "build", "scan", "publish", "migrate", "hasura", "deploy")
    ]
    # the metadata went in after the migrations and before anything was deployed
    assert stage.at_replace == [(MIGRATIONS, 0)]
    assert record["hasura"]["outcome"] == "applied" and record["hasura"]["restored"] is False
    assert stage.hasura.metadata == repo_metadata(stage.repo / "hasura", stage.repo)
    assert stage.hasura.inconsistent_objects == []
    assert all(s["seconds"] > 0 for s in record["steps"])
    assert [image["service"] for image in record["images"]] == list(PORTS)
    for image in record["images"]:
        assert image["reference"].startswith(
            f"{stage.registry.address}/wormhole-{image['service']}:{sha[:7]}@sha256:"
        )
    assert record["scan"]["allow_unavailable"] is True and "outcomes" in record["scan"]
    assert record["migrations"]["applied"] == MIGRATIONS
    assert Path(record["migrations"]["backup"]).name.endswith(f"-{sha[:7]}.dump")
    assert [(d["service"], d["status"]) for d in record["deployments"]] == [
        (s, "verified") for s in PORTS
    ]
    assert all(d["deployment"] for d in record["deployments"])
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, True)
    assert stage.applied() == MIGRATIONS
    # (the later gates roll back to this release, so it still runs whatever ran since)
    assert {s: healthz(stage, s) for s in PORTS} == dict.fromkeys(PORTS, sha)


def test_2b_dagger_release_matches_the_native_one(
    stage: Stage,
    released: Released,
    dagger_registry: RegistryServer,
    engine_server: FakeEngine,
    tmp_path: Path,
) -> None:
    """Parity, success: the same commit released again through `dagger call release` from
    the same starting point (empty database, applications on their first tag)."""
    reset_schema(stage)
    reset_tags(stage, "none")
    reset_hasura(stage)
    dagger = dagger_run(stage, dagger_registry, engine_server, released.sha, tmp_path / "out")
    assert_parity(stage, released.record, dagger, dagger_registry)
    # the migrate job really ran (on the host, as the container would) and its backup is kept
    assert dagger.files["migrate/status"] == "applied\n"
    assert stage.applied() == MIGRATIONS
    assert len(list((dagger.migrate_out / "backups").glob(f"*-{released.sha[:7]}.dump"))) == 1
    assert {s: healthz(stage, s) for s in PORTS} == dict.fromkeys(PORTS, released.sha)


def change_and_release(
    stage: Stage, change: Callable[[Path], None], message: str
) -> tuple[str, subprocess.CompletedProcess[str], dict[str, Any], int, list[str]]:
    """Commit `change`, release it (expecting a stop). (`isolated` undoes the commit.)"""
    change(stage.repo)
    sha = stage.commit(message)
    before_coolify, before_applied = stage.coolify_changes(), stage.applied()
    done, record = stage.release()
    assert done.returncode == 1, done.stderr[-3000:]
    return sha, done, record, before_coolify, before_applied


def assert_stopped(record: dict[str, Any], step: str) -> None:
    assert record["outcome"] == "stopped" and record["stopped_at"] == step
    names = [s["name"] for s in record["steps"]]
    assert names == ["check", "build", "scan", "publish", "migrate", "hasura", "deploy"]
    statuses = {s["name"]: s["status"] for s in record["steps"]}
    assert statuses[step] == "failed"
    assert all(statuses[n] == "passed" for n in names[: names.index(step)])
    assert all(statuses[n] == "skipped" for n in names[names.index(step) + 1 :])


def test_3_check_gate(stage: Stage) -> None:
    def lint_error(repo: Path) -> None:
        path = repo / "runner" / "src" / "runner" / "health.py"
        path.write_text(path.read_text() + "\nimport os\n")

    sha, done, record, coolify_before, applied_before = change_and_release(
        stage, lint_error, "lint error"
    )
    assert_stopped(record, "check")
    assert "release stopped at check" in done.stderr and "runner (lint" in done.stderr
    assert (
        stage.engine.docker("image", "inspect", f"wormhole-api:{sha[:7]}", check=False).returncode
        != 0
    )
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, False)
    assert stage.applied() == applied_before and stage.coolify_changes() == coolify_before


def test_4_scan_gate(
    stage: Stage, dagger_registry: RegistryServer, engine_server: FakeEngine, tmp_path: Path
) -> None:
    def leak_a_key(repo: Path) -> None:
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(repo / "runner" / "deploy_key.pem")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    sha, done, record, coolify_before, applied_before = change_and_release(
        stage, leak_a_key, "a key"
    )
    assert_stopped(record, "scan")
    assert "scan failed" in done.stderr
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, False)  # built, never pushed
    assert stage.applied() == applied_before and stage.coolify_changes() == coolify_before

    # parity: the stand-in's Trivy reports the key the real one found
    trivy = (SECURITY_FIXTURES / "trivy" / "many.json").read_text()

    def leaked(engine: FakeEngine) -> None:
        engine.on_exec(lambda argv: argv[:2] == ["trivy", "fs"], ExecOutcome(0, trivy, ""))

    dagger = dagger_run(stage, dagger_registry, engine_server, sha, tmp_path / "out", leaked)
    assert_parity(stage, record, dagger, dagger_registry)
    assert stage.applied() == applied_before and stage.coolify_changes() == coolify_before


def test_5_publish_gate(
    stage: Stage, dagger_registry: RegistryServer, engine_server: FakeEngine, tmp_path: Path
) -> None:
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

    # parity: someone else's image under web's tag in the Dagger run's registry too
    with dagger_registry.client() as client:
        push_image(client, "wormhole-web", sha[:7], make_image(Platform("linux", "amd64"), "other"))
    dagger = dagger_run(stage, dagger_registry, engine_server, sha, tmp_path / "out")
    assert_parity(stage, record, dagger, dagger_registry)
    assert stage.applied() == applied_before and stage.coolify_changes() == coolify_before


def test_6_migrate_gate(stage: Stage, released: Released) -> None:
    # (Dropping a column Hasura tracks is already stopped by the check: the metadata no
    # longer matches the schema. SET NOT NULL keeps the columns and is still destructive.)
    def destructive(repo: Path) -> None:
        folder = repo / "api" / "prisma" / "migrations" / "20260301000000_require_name"
        folder.mkdir()
        (folder / "migration.sql").write_text(
            'ALTER TABLE "users" ALTER COLUMN "display_name" SET NOT NULL;\n'
        )

    sha, done, record, coolify_before, applied_before = change_and_release(
        stage, destructive, "require a display name"
    )
    assert_stopped(record, "migrate")
    assert applied_before == MIGRATIONS  # released: the destructive one comes on a live schema
    assert "SET NOT NULL" in done.stderr and "--allow-destructive" in done.stderr
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, True)  # published before the gate
    assert stage.applied() == applied_before and stage.coolify_changes() == coolify_before


NEW_MIGRATION = "20260401000000_release_notes"


def test_7_deploy_gate(
    stage: Stage,
    released: Released,
    dagger_registry: RegistryServer,
    engine_server: FakeEngine,
    tmp_path: Path,
) -> None:
    """A deploy that fails after a migration was applied: rolled back, the backup kept. Then
    the same through `dagger call release` (from the same database state, restored from the
    native run's backup): the same record, and its result directory holds the backup."""
    previous = released.sha
    assert {s: healthz(stage, s) for s in PORTS} == dict.fromkeys(PORTS, previous)

    def fail_api() -> None:
        stage.coolify.script(
            "app-api",
            "queued",
            "in_progress",
            "failed",
            logs=["image pull failed: manifest unknown"],
        )

    def migration_and_touch(repo: Path) -> None:
        folder = repo / "api" / "prisma" / "migrations" / NEW_MIGRATION
        folder.mkdir()
        # additive, and re-runnable after a restore (which keeps objects the dump lacks)
        (folder / "migration.sql").write_text(
            'CREATE TABLE IF NOT EXISTS "release_notes" ("id" TEXT NOT NULL PRIMARY KEY, '
            '"body" TEXT NOT NULL);\n'
        )
        (repo / "web" / "README.md").write_text((repo / "web" / "README.md").read_text() + "\nv3\n")

    fail_api()
    sha, done, record, _, _ = change_and_release(stage, migration_and_touch, "deploy gate")
    assert_stopped(record, "deploy")
    assert "image pull failed: manifest unknown" in done.stderr
    assert record["migrations"]["applied"] == [NEW_MIGRATION]
    native_backup = Path(record["migrations"]["backup"])
    assert native_backup.is_file() and native_backup.name.endswith(f"-{sha[:7]}.dump")
    # api's deployment failed; web's and runner's finished: every one is put back, all verified
    assert {d["service"]: d["status"] for d in record["deployments"]} == dict.fromkeys(
        PORTS, "rolled-back"
    )
    for service in PORTS:
        assert f"rolled back {service} to {previous[:7]}" in done.stderr
        assert healthz(stage, service) == previous
        assert stage.coolify.apps[f"app-{service}"].image_tag == previous[:7]

    from wormhole_ci.migrate.backup import restore

    restore(stage.database.url, native_backup)  # the rollback runbook's restore
    assert stage.applied() == MIGRATIONS
    fail_api()
    dagger = dagger_run(stage, dagger_registry, engine_server, sha, tmp_path / "out")
    try:
        assert_parity(stage, record, dagger, dagger_registry)
        assert dagger.record["stopped_at"] == "deploy"
        assert dagger.files["migrate/status"] == "applied\n"
        (backup,) = (dagger.migrate_out / "backups").glob(f"*-{sha[:7]}.dump")
        # (in a container the path is /out/backups/…; the stand-in ran the job on the host)
        assert Path(dagger.record["migrations"]["backup"]).name == backup.name
        for service in PORTS:
            assert healthz(stage, service) == previous
    finally:  # the database as the other tests expect it: the released migrations only
        restore(stage.database.url, native_backup)
        with psycopg.connect(stage.database.url.conninfo(), autocommit=True) as conn:
            conn.execute('DROP TABLE IF EXISTS "release_notes"')
    assert stage.applied() == MIGRATIONS


def test_8_verify_gate_rolls_back(stage: Stage, released: Released) -> None:
    previous = {s: healthz(stage, s) for s in PORTS}
    assert previous == dict.fromkeys(PORTS, released.sha)

    path = stage.repo / "runner" / "README.md"
    path.write_text(path.read_text() + "\nv4\n")
    # the wrong SHA is waited out for verify_timeout: 8 s is enough for healthy containers
    manifest = stage.repo / "wormhole-ci.toml"
    manifest.write_text(manifest.read_text().replace("verify_timeout = 30", "verify_timeout = 8"))
    sha = stage.commit("verify gate")
    stage.wrong_sha_for["web"] = sha[:7]  # this commit's web build is "broken": a wrong SHA
    done, record = stage.release()
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


def test_10_busy_coolify_refuses_in_both_runtimes(
    stage: Stage, dagger_registry: RegistryServer, engine_server: FakeEngine, tmp_path: Path
) -> None:
    """Another deployment of these applications is running: refused before the check,
    nothing built, pushed, migrated or deployed, natively and through Dagger alike."""
    running = stage.coolify.queue("app-web", statuses=("in_progress",))
    try:
        path = stage.repo / "runner" / "README.md"
        path.write_text(path.read_text() + "\nbusy\n")
        sha = stage.commit("busy")
        coolify_before, applied_before = stage.coolify_changes(), stage.applied()
        registry_before = stage.registry.requests_seen()
        done, record = stage.release()
        assert done.returncode == 1, done.stderr[-3000:]
        assert record["outcome"] == "refused" and record["stopped_at"] is None
        assert "a Coolify deployment is in progress for app-web" in record["refused"]
        assert "release refused" in done.stderr and "Nothing was done" in done.stderr
        assert [s["status"] for s in record["steps"]] == ["skipped"] * 7
        assert "== check" not in done.stderr
        dagger = dagger_run(stage, dagger_registry, engine_server, sha, tmp_path / "out")
        assert_parity(stage, record, dagger, dagger_registry)
        assert dagger.files["status"] == "refused\n"
        assert "migrate/status" not in dagger.files
        assert stage.applied() == applied_before and stage.coolify_changes() == coolify_before
        assert stage.registry.requests_seen() == registry_before
    finally:
        stage.coolify.deployments.pop(running)


def test_10b_the_native_cli_reports_the_release_to_github(stage: Stage) -> None:
    """--github-token through the CLI: the refused release (nothing heavy runs) is a GitHub
    Deployment that went in_progress then error, against the loopback contract server; the
    token is in no output."""
    gh_token = "ghs_native_cli_T0ken_never_printed"
    running = stage.coolify.queue("app-api", statuses=("in_progress",))
    try:
        with run_github(gh_token) as github:
            done, record = stage.release(
                "--github-token", "env:TEST_GITHUB_TOKEN",
                environ={
                    "TEST_GITHUB_TOKEN": gh_token,
                    "GITHUB_REPOSITORY": "acme/wormhole",
                    "GITHUB_API_URL": github.url,
                },
            )  # fmt: skip
        assert done.returncode == 1 and record["outcome"] == "refused"
        ((ident, deployment),) = github.deployments.items()
        assert deployment["ref"] == record["sha"] and deployment["environment"] == "staging"
        assert [s["state"] for s in github.statuses[ident]] == ["in_progress", "error"]
        for where in (done.stdout, done.stderr, json.dumps(record)):
            assert gh_token not in where
    finally:
        stage.coolify.deployments.pop(running)


def test_11_hasura_gate_restores_the_live_metadata(stage: Stage, released: Released) -> None:
    """A metadata change that references a column dropped by hand from the live database
    (the check passes: the migrations still have it): the engine refuses it, the exported
    metadata is put back, and nothing is deployed."""
    exported = json.loads(json.dumps(stage.hasura.metadata))
    version = stage.hasura.resource_version

    def auditor_reads_errors(repo: Path) -> None:
        tables = repo / "hasura" / "metadata" / "databases" / "default" / "tables"
        runs = tables / "public_workflow_runs.yaml"
        runs.write_text(
            runs.read_text()
            + "  - role: auditor\n    permission:\n      columns: [id, status, error]\n"
            + "      filter: {}\n"
        )

    with psycopg.connect(stage.database.url.conninfo(), autocommit=True) as conn:
        conn.execute('ALTER TABLE "workflow_runs" DROP COLUMN "error"')
    try:
        sha, done, record, coolify_before, applied_before = change_and_release(
            stage, auditor_reads_errors, "auditors read errors"
        )
    finally:
        with psycopg.connect(stage.database.url.conninfo(), autocommit=True) as conn:
            conn.execute('ALTER TABLE "workflow_runs" ADD COLUMN "error" TEXT')
    assert_stopped(record, "hasura")
    assert record["migrations"]["outcome"] == "up-to-date"
    hasura = record["hasura"]
    assert hasura["outcome"] == "failed" and hasura["restored"] is True
    assert any("error" in str(obj) for obj in hasura["inconsistent"])
    assert "restored" in done.stderr and "error" in record["steps"][5]["detail"]
    # the live metadata is the exported one again (one more version: the restore)
    assert stage.hasura.metadata == exported and stage.hasura.resource_version == version + 1
    assert stage.coolify_changes() == coolify_before  # nothing deployed
    assert stage.applied() == applied_before
    assert {s: healthz(stage, s) for s in PORTS} == dict.fromkeys(PORTS, released.sha)
    assert stage.tags_in_registry(sha) == dict.fromkeys(PORTS, True)  # published before the gate


def test_12_a_console_edit_during_the_release_is_refused_in_dagger(
    stage: Stage,
    released: Released,
    dagger_registry: RegistryServer,
    engine_server: FakeEngine,
    tmp_path: Path,
) -> None:
    """Someone edits the metadata in the console between the export and the replace: the
    replace is refused (resource_version moved), the edit is kept, nothing is deployed; the
    Dagger runtime runs the same step."""
    console = json.loads(json.dumps(stage.hasura.metadata))
    console["allowlist"] = [{"collection": "added-in-the-console", "scope": {"global": True}}]
    stage.hasura.on_export = lambda: stage.hasura.edit_live(console)
    coolify_before, applied_before = stage.coolify_changes(), stage.applied()
    # a metadata change to apply (valid this time), so that a replace is attempted at all
    runs = stage.repo / "hasura" / "metadata" / "databases" / "default" / "tables"
    runs = runs / "public_workflow_runs.yaml"
    runs.write_text(
        runs.read_text()
        + "  - role: auditor\n    permission:\n      columns: [id, status]\n      filter: {}\n"
    )
    sha = stage.commit("auditors read statuses")
    try:
        run = dagger_run(stage, dagger_registry, engine_server, sha, tmp_path / "out")
        record = run.record
        assert record["outcome"] == "stopped" and record["stopped_at"] == "hasura"
        assert record["hasura"]["outcome"] == "refused"
        assert record["hasura"]["restored"] is False
        assert "console" in record["steps"][5]["detail"]
        assert run.files["status"] == "stopped\n"
        assert stage.hasura.metadata == console  # not overwritten
        assert stage.coolify_changes() == coolify_before and stage.applied() == applied_before
    finally:
        git(stage.repo, "reset", "-q", "--hard", "HEAD~1")
        reset_hasura(stage, repo_metadata(stage.repo / "hasura", stage.repo))
