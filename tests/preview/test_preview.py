"""`wormhole-ci preview` end to end: the Coolify contract server and a real PostgreSQL.

Open → the PR database created and migrated with the release's migrate job (real Prisma),
each app's preview DATABASE_URL set, the preview deployed with `pr`/`docker_tag`, the preview
URL verified; synchronize → the new SHA deployed on the same database; close (through the
CLI) → previews deleted, database dropped. Failures (a Coolify deployment that fails, a
migrate job that fails) leave nothing behind, asserted from the server's state and
`pg_database`. Publishing is stubbed at the step boundary (no image engine here): the stub
records the tag it was asked to push.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from dagger import dag
from psycopg import sql

from tests.conftest import copy_example, new_password
from tests.dagger_module.conftest import call
from tests.dagger_module.fake_engine import FakeEngine
from tests.dagger_module.test_images import pushes_to, write_archive
from tests.deploy.coolify_server import CoolifyServer, run_coolify
from tests.deploy.dagger_release import HostMigrate
from tests.images.registry_server import RegistryServer, registry_or_skip
from tests.notify.github_server import GitHubServer, run_github
from wormhole_ci.errors import MigrateError
from wormhole_ci.images.spec import Revision
from wormhole_ci.main import WormholeCi
from wormhole_ci.manifest import Manifest, load_manifest
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.notify import status as notify_status
from wormhole_ci.notify.http import Retry
from wormhole_ci.notify.status import Section, render_pr_comment, section_of
from wormhole_ci.pgtemp import TempPostgres, create_role_and_database, drop_role_and_database
from wormhole_ci.preview.flow import PreviewFailed, PreviewRecord
from wormhole_ci.preview.native import (
    NativePreviewOptions,
    NativePreviewSteps,
    PreviewSecrets,
    preview_secrets,
    run_native_preview,
)
from wormhole_ci.secretref import Secret
from wormhole_ci.toolchains import default_cache_dir

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
TOKEN = "coolify-preview-T0KEN-51ab"
REGISTRY_PASSWORD = "registry-Pa55-for-preview"
APPS = {"api": "stg0api0wormhole0000000a", "web": "stg0web0wormhole0000000w"}
MIGRATIONS = ["20260101000000_init", "20260201000000_workflow_runs"]
SHA1 = "1a2b3c4" + "d" * 33
SHA2 = "5e6f708" + "a" * 33


@dataclass
class PreviewHealth:
    """`/pr-<N>/<service>/healthz` on loopback: what each app's preview of PR N runs."""

    port: int = 0
    versions: dict[tuple[str, int], str] = field(default_factory=dict[tuple[str, int], str])


@contextmanager
def run_preview_health() -> Generator[PreviewHealth]:
    state = PreviewHealth()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            version = None
            if len(parts) == 3 and parts[0].startswith("pr-") and parts[2] == "healthz":
                version = state.versions.get((parts[1], int(parts[0][3:])))
            body = json.dumps({"status": "ok", "version": version or "dev"}).encode()
            self.send_response(200 if version else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = int(server.server_address[1])
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Stage:
    repo: Path
    manifest: Manifest
    coolify: CoolifyServer
    health: PreviewHealth
    admin: DatabaseUrl
    admin_raw: str
    password: str

    def environ(self) -> dict[str, str]:
        return {
            "TEST_COOLIFY_TOKEN": TOKEN,
            "TEST_PREVIEW_DATABASE_URL": self.admin_raw,
            "REGISTRY_PASSWORD": REGISTRY_PASSWORD,
        }

    def secrets(self) -> PreviewSecrets:
        return preview_secrets(self.manifest.environment("staging"), self.environ())

    def hidden(self) -> tuple[str, ...]:
        return (TOKEN, self.password, self.admin_raw, REGISTRY_PASSWORD)

    def databases(self) -> list[str]:
        with psycopg.connect(self.admin.conninfo()) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'wormhole_pr_%' ORDER BY 1"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def applied(self, dbname: str) -> list[str]:
        with psycopg.connect(self.admin.conninfo(dbname)) as conn:
            rows = conn.execute(
                "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL "
                "ORDER BY 1"
            ).fetchall()
        return [str(r[0]) for r in rows]


class StubPublishSteps(NativePreviewSteps):
    """The native steps with publishing stubbed: records each tag; migrate is the real job."""

    def __init__(self, manifest: Manifest, secrets: PreviewSecrets, sha: str, say: list[str]):
        super().__init__(
            manifest,
            manifest.environment("staging"),
            engine=None,  # type: ignore[arg-type]  # publish is overridden: no engine used
            secrets=secrets,
            options=NativePreviewOptions(
                revision=Revision(sha),
                work_dir=manifest.root / "work",
                cache_dir=default_cache_dir(),
            ),
            say=say.append,
        )
        self.published: list[str] = []
        self.fail_migrate = False

    async def publish(self, tag: str) -> str:
        self.published.append(tag)
        return f"(stub registry) {tag}"

    async def migrate(self, url: DatabaseUrl) -> str:
        done = await super().migrate(url)
        if self.fail_migrate:
            # After the real job ran: the database has tables, and must still be dropped.
            raise MigrateError(f"{url.display}: migrate job failed (injected after: {done})")
        return done


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, pg_server: TempPostgres) -> Iterator[Stage]:
    repo = copy_example(tmp_path_factory.mktemp("preview"))
    role, password = f"wci_preview_{secrets.token_hex(4)}", new_password()
    create_role_and_database(pg_server, role, password, role)
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier(role)))
    admin_raw = pg_server.url(role, role, password)
    with (
        run_coolify({TOKEN: ("read", "write", "deploy")}) as coolify,
        run_preview_health() as health,
    ):
        for service, uuid in {**APPS, "runner": "stg0run0wormhole0000000r"}.items():
            coolify.add_app(uuid, f"wormhole-{service}")
        coolify.default_script = ("queued", "in_progress", "finished")

        def started(app_uuid: str, pr: int, tag: str) -> None:
            service = next(s for s, u in APPS.items() if u == app_uuid)
            sha = {SHA1[:7]: SHA1, SHA2[:7]: SHA2}[tag.rsplit("-", 1)[1]]
            health.versions[(service, pr)] = sha

        def deleted(app_uuid: str, pr: int) -> None:
            service = next(s for s, u in APPS.items() if u == app_uuid)
            health.versions.pop((service, pr), None)

        coolify.on_preview = started
        coolify.on_preview_deleted = deleted
        toml = repo / "wormhole-ci.toml"
        text = toml.read_text().replace("http://192.168.1.66:8000", coolify.url, 2)
        text = text.replace('"STAGING_DATABASE_URL"', '"TEST_STAGING_DATABASE_URL"', 1)
        text = text.replace('"COOLIFY_TOKEN"', '"TEST_COOLIFY_TOKEN"')
        # the example's own preview table, pointed at the loopback servers
        base = f"http://127.0.0.1:{health.port}/pr-{{pr}}"
        for old, new in (
            ('"PREVIEW_DATABASE_URL"', '"TEST_PREVIEW_DATABASE_URL"'),
            ('"http://{pr}.preview.192.168.1.66.sslip.io/api/healthz"', f'"{base}/api/healthz"'),
            ('"http://{pr}.preview.192.168.1.66.sslip.io/healthz"', f'"{base}/web/healthz"'),
        ):
            assert old in text
            text = text.replace(old, new)
        toml.write_text(text)
        # only the staging coolify_url is the contract server's; everything else stays put
        assert "192.168.1.66" in text
        yield Stage(
            repo, load_manifest(repo), coolify, health, DatabaseUrl.parse(admin_raw), admin_raw,
            password,
        )  # fmt: skip
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'wormhole_pr_%'"
        ).fetchall():
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    drop_role_and_database(pg_server, role, role)


def open_preview(stage: Stage, pr: int, sha: str, steps: StubPublishSteps | None = None, *,
                 said: list[str] | None = None) -> tuple[PreviewRecord, StubPublishSteps]:  # fmt: skip
    lines = said if said is not None else []
    steps = steps or StubPublishSteps(stage.manifest, stage.secrets(), sha, lines)
    record = run_native_preview(
        stage.manifest, stage.manifest.environment("staging"), stage.secrets(), pr=pr, sha=sha,
        close=False, say=lines.append, steps=steps, poll_interval=0.05,
    )  # fmt: skip
    assert_hidden(stage, *lines)
    return record, steps


def assert_hidden(stage: Stage, *texts: str) -> None:
    for text in texts:
        for secret in stage.hidden():
            assert secret not in text


def preview_envs(stage: Stage, service: str) -> list[tuple[str, str | None, bool]]:
    app = stage.coolify.apps[APPS[service]]
    return [(e.key, e.value, e.is_preview) for e in app.envs]


def deploys(stage: Stage, pr: int) -> list[dict[str, str]]:
    return [
        r.query
        for r in stage.coolify.calls("POST", "/api/v1/deploy")
        if r.query.get("pr") == str(pr)
    ]


def close_cli(stage: Stage, pr: int) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "wormhole_ci", "preview", "--source", str(stage.repo),
         "--environment", "staging", "--pr", str(pr), "--tag", SHA2, "--close"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **stage.environ(), "REGISTRY_PASSWORD": ""},  # a close needs none
    )  # fmt: skip
    assert_hidden(stage, done.stdout, done.stderr)
    return done


def test_open_synchronize_close(stage: Stage) -> None:
    pr = 41
    record, steps = open_preview(stage, pr, SHA1)
    assert record.outcome == "verified"
    assert record.database == "wormhole_pr_41" and record.database_created
    assert steps.published == ["pr-41-1a2b3c4"]
    assert "wormhole_pr_41" in stage.databases()
    assert stage.applied("wormhole_pr_41") == MIGRATIONS
    pr_url = stage.admin.with_database("wormhole_pr_41").reveal()
    for service in APPS:
        # one preview variable, runtime only, holding the PR database's URL
        (env,) = stage.coolify.apps[APPS[service]].envs
        assert (env.key, env.value, env.is_preview) == ("DATABASE_URL", pr_url, True)
        assert env.flags["is_buildtime"] is False
        preview = stage.coolify.apps[APPS[service]].previews[pr]
        assert preview.tag == preview.running == "pr-41-1a2b3c4"
        assert stage.coolify.apps[APPS[service]].running is None  # the app itself untouched
    assert deploys(stage, pr) == [
        {"uuid": f"{APPS['api']},{APPS['web']}", "pr": "41", "docker_tag": "pr-41-1a2b3c4"}
    ]
    assert {s.service: s.status for s in record.services} == {"api": "verified", "web": "verified"}
    assert not stage.coolify.apps["stg0run0wormhole0000000r"].previews  # no preview declared

    # synchronize: the new SHA on the same database, the variable updated in place
    record, steps = open_preview(stage, pr, SHA2)
    assert record.outcome == "verified" and not record.database_created
    assert steps.published == ["pr-41-5e6f708"]
    assert stage.applied("wormhole_pr_41") == MIGRATIONS
    for service in APPS:
        assert preview_envs(stage, service) == [("DATABASE_URL", pr_url, True)]
        assert stage.coolify.apps[APPS[service]].previews[pr].running == "pr-41-5e6f708"
        assert stage.health.versions[(service, pr)] == SHA2
    assert [d["docker_tag"] for d in deploys(stage, pr)] == ["pr-41-1a2b3c4", "pr-41-5e6f708"]

    # close, through the CLI: previews deleted, then the database dropped
    done = close_cli(stage, pr)
    assert done.returncode == 0, done.stderr
    assert "database wormhole_pr_41 dropped" in done.stdout
    assert all(pr not in stage.coolify.apps[u].previews for u in APPS.values())
    assert [r.path for r in stage.coolify.calls("DELETE")] == [
        f"/api/v1/applications/{APPS['api']}/previews/41",
        f"/api/v1/applications/{APPS['web']}/previews/41",
    ]
    assert "wormhole_pr_41" not in stage.databases()
    again = close_cli(stage, pr)  # idempotent: a second close finds nothing and says so
    assert again.returncode == 0, again.stderr
    assert "was already gone" in again.stderr


def test_failed_deployment_on_first_open_leaves_nothing(stage: Stage) -> None:
    pr = 42
    before = {u: list(stage.coolify.apps[u].envs) for u in APPS.values()}
    stage.coolify.script(APPS["web"], "queued", "in_progress", "failed", logs=["pull failed"])
    said: list[str] = []
    with pytest.raises(PreviewFailed) as caught:
        open_preview(stage, pr, SHA1, said=said)
    message = str(caught.value)
    assert_hidden(stage, message)
    assert "web" in message and "undone" in message
    assert "wormhole_pr_42" not in stage.databases()
    for uuid in APPS.values():
        assert pr not in stage.coolify.apps[uuid].previews  # api's finished preview deleted too
        # the variables this run created are deleted again; older ones are left as they were
        assert [e.uuid for e in stage.coolify.apps[uuid].envs] == [e.uuid for e in before[uuid]]
    assert caught.value.record.outcome == "failed"


def test_failed_migration_leaves_nothing_and_calls_no_coolify_write(stage: Stage) -> None:
    pr = 43
    writes = len([r for r in stage.coolify.requests if r.method != "GET"])
    steps = StubPublishSteps(stage.manifest, stage.secrets(), SHA1, [])
    steps.fail_migrate = True
    with pytest.raises(PreviewFailed) as caught:
        open_preview(stage, pr, SHA1, steps)
    assert "migrate job failed" in str(caught.value)
    assert "database wormhole_pr_43" in str(caught.value)  # named as undone
    assert "wormhole_pr_43" not in stage.databases()
    assert len([r for r in stage.coolify.requests if r.method != "GET"]) == writes


def test_failed_synchronize_keeps_the_running_preview_and_database(stage: Stage) -> None:
    pr = 44
    open_preview(stage, pr, SHA1)
    stage.coolify.script(APPS["api"], "queued", "failed")
    with pytest.raises(PreviewFailed) as caught:
        open_preview(stage, pr, SHA2)
    assert "kept the existing database wormhole_pr_44" in str(caught.value)
    assert "wormhole_pr_44" in stage.databases()
    assert stage.applied("wormhole_pr_44") == MIGRATIONS
    assert stage.coolify.apps[APPS["api"]].previews[pr].running == "pr-44-1a2b3c4"
    assert close_cli(stage, pr).returncode == 0
    assert "wormhole_pr_44" not in stage.databases()


def test_refused_deploy_is_an_error_with_nothing_left(stage: Stage) -> None:
    pr = 45
    stage.coolify.refuse_deploys()
    try:
        with pytest.raises(PreviewFailed) as caught:
            open_preview(stage, pr, SHA1)
    finally:
        stage.coolify.deploys_refused = False
    assert "404" in str(caught.value)
    assert "wormhole_pr_45" not in stage.databases()
    assert all(pr not in stage.coolify.apps[u].previews for u in APPS.values())


# --- the same flow through `dagger call preview` on the stand-in engine ----------------------


@pytest.fixture(scope="module")
def preview_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry_or_skip(
        tmp_path_factory.mktemp("preview-registry"), users={"wormhole-ci": REGISTRY_PASSWORD}
    ) as server:
        yield server


def test_dagger_preview_runs_the_same_flow(
    stage: Stage,
    preview_registry: RegistryServer,
    engine_server: FakeEngine,
    tmp_path: Path,
    github: GitHubServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Open then close PR 46 with the module's `preview`: the stand-in engine pushes its
    (fake) images to a loopback registry, the migrate container's command (our CLI) runs on
    the host against the same PostgreSQL; Coolify and /healthz are the same servers, and the
    GitHub reports are the core's, from the function's github arguments."""
    pr, toml = 46, stage.repo / "wormhole-ci.toml"
    original = toml.read_text()
    toml.write_text(
        original.replace(
            'registry = "ghcr.io/wormhole-platform"',
            f'registry = "{preview_registry.address}"',
            1,
        )
    )
    engine = engine_server
    engine.reset()
    try:
        engine.file_writer = write_archive
        engine.publisher = pushes_to(preview_registry)
        migrate = HostMigrate(stage.repo, tmp_path / "out", {})
        engine.on_exec_run(migrate.matches, migrate)
        engine.file_contents = migrate.contents

        async def run(close: bool) -> str:
            module = WormholeCi(source=dag.host().directory(str(stage.repo)))
            return await module.preview(
                environment="staging",
                pr=pr,
                tag=SHA1,
                coolify_token=dag.set_secret("coolify-token", TOKEN),
                database_url=dag.set_secret("preview-database-url", stage.admin_raw),
                registry_password=dag.set_secret("registry-password", REGISTRY_PASSWORD),
                close=close,
                github_token=dag.set_secret("github-token", GH_TOKEN),
                github_repository="acme/wormhole",
                github_api_url=github.url,
                github_log_url=RUN_URL,
            )

        opened = call(lambda: run(False))
        assert_hidden(stage, opened)
        record = json.loads(opened)
        assert record["outcome"] == "verified" and record["database_created"] is True
        (ident,) = github.deployments
        assert github.deployments[ident]["environment"] == "staging-pr-46"
        assert github.deployments[ident]["transient_environment"] is True
        base = f"http://127.0.0.1:{stage.health.port}"
        assert [(s["state"], s.get("environment_url")) for s in github.statuses[ident]] == [
            ("in_progress", None),
            ("success", base),
        ]
        assert f"| web | {base}/pr-46/web/ | verified |" in github.bodies(pr)[0]
        assert stage.applied("wormhole_pr_46") == MIGRATIONS
        assert deploys(stage, pr) == [
            {"uuid": f"{APPS['api']},{APPS['web']}", "pr": "46", "docker_tag": "pr-46-1a2b3c4"}
        ]
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        with preview_registry.client() as client:
            for service in APPS:
                tagged = client.head(
                    f"/v2/wormhole-{service}/manifests/pr-46-1a2b3c4", headers=accept
                )
                assert tagged.status_code == 200
                # never the bare SHA tag: a preview cannot claim a release's tag
                bare = client.head(f"/v2/wormhole-{service}/manifests/{SHA1[:7]}", headers=accept)
                assert bare.status_code == 404
            # only the previewed services' images
            runner = client.head("/v2/wormhole-runner/manifests/pr-46-1a2b3c4", headers=accept)
            assert runner.status_code == 404
        closed_json = call(lambda: run(True))
        closed = json.loads(closed_json)
        assert closed["outcome"] == "closed"
        assert github.statuses[ident][-1]["state"] == "inactive"
        assert "**Previews**: closed at `1a2b3c4`" in github.bodies(pr)[0]
        printed = capsys.readouterr()
        for text in (opened, closed_json, printed.out, printed.err):
            assert GH_TOKEN not in text
        assert "wormhole_pr_46" not in stage.databases()
        assert all(pr not in stage.coolify.apps[u].previews for u in APPS.values())
    finally:
        engine.reset()
        toml.write_text(original)


# --- GitHub: the PR's deployment and the comment's previews section --------------------------

GH_TOKEN = "ghs_preview_e2e_T0ken_never_shown_58"
GH_REPO = "/repos/acme/wormhole"
RUN_URL = "https://github.com/acme/wormhole/actions/runs/99"
CHECKS = (
    "**Checks** at `1a2b3c4`: `check` passed\n\n```\n9 of 9 tasks passed (0 reused), 1.0 s\n```"
)


def gh_environ(github: GitHubServer) -> dict[str, str]:
    """What the runner sets (GITHUB_API_URL pointed at the contract server)."""
    return {
        "GITHUB_API_URL": github.url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/wormhole",
        "GITHUB_RUN_ID": "99",
    }


def open_reported(stage: Stage, github: GitHubServer, pr: int, said: list[str]) -> PreviewRecord:
    secrets = replace(stage.secrets(), github_token=Secret("env:GH_TOKEN", GH_TOKEN))
    steps = StubPublishSteps(stage.manifest, secrets, SHA1, said)
    return run_native_preview(
        stage.manifest, stage.manifest.environment("staging"), secrets, pr=pr, sha=SHA1,
        close=False, say=said.append, steps=steps, poll_interval=0.05,
        github_repository="acme/wormhole", environ=gh_environ(github),
    )  # fmt: skip


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubServer]:
    # a short budget: the outage test must not wait out the production deadline
    monkeypatch.setattr(
        notify_status, "COMMENT_RETRY", Retry(deadline=1.5, first_delay=0.05, timeout=1.0)
    )
    with run_github(GH_TOKEN) as state:
        yield state


def test_preview_open_and_close_report_to_github(stage: Stage, github: GitHubServer) -> None:
    pr = 47
    checks = render_pr_comment(None, SHA1, Section.CHECKS, CHECKS)  # a check run wrote first
    comment = github.add_comment(pr, checks)
    github.fail("POST", f"{GH_REPO}/deployments", 502)  # retried within the deadline
    said: list[str] = []
    record = open_reported(stage, github, pr, said)
    assert record.outcome == "verified"
    (ident,) = github.deployments
    statuses = f"{GH_REPO}/deployments/{ident}/statuses"
    calls = github.api()
    assert [(r.method, r.path) for r in calls] == [
        ("POST", f"{GH_REPO}/deployments"),  # 502
        ("POST", f"{GH_REPO}/deployments"),
        ("POST", statuses),
        ("GET", f"{GH_REPO}/issues/{pr}/comments"),
        ("PATCH", f"{GH_REPO}/issues/comments/{comment}"),
        ("POST", statuses),
        ("GET", f"{GH_REPO}/issues/{pr}/comments"),
        ("PATCH", f"{GH_REPO}/issues/comments/{comment}"),
    ]
    assert calls[1].body == {
        "ref": SHA1,
        "environment": "staging-pr-47",
        "description": "wormhole-ci preview pr-47-1a2b3c4 of PR #47",
        "auto_merge": False,
        "required_contexts": [],
        "transient_environment": True,
        "production_environment": False,
    }
    base = f"http://127.0.0.1:{stage.health.port}"
    assert [
        (s["state"], s.get("environment_url"), s["log_url"]) for s in github.statuses[ident]
    ] == [
        ("in_progress", None, RUN_URL),
        ("success", base, RUN_URL),
    ]
    (body,) = github.bodies(pr)
    assert section_of(body, Section.CHECKS) == section_of(checks, Section.CHECKS)  # kept as is
    assert section_of(body, Section.PREVIEWS) == (
        "<!-- wormhole-ci:previews -->\n"
        f"**Previews** of `1a2b3c4` (images `pr-47-1a2b3c4`): ready ([log]({RUN_URL}))\n\n"
        "| service | preview | status |\n|---|---|---|\n"
        f"| api | {base}/pr-47/api/ | verified |\n"
        f"| web | {base}/pr-47/web/ | verified |\n"
        "<!-- /wormhole-ci:previews -->"
    )
    assert not [line for line in said if "warning" in line]
    assert all(GH_TOKEN not in line for line in said)

    # close, through the CLI: the PR environment's deployments inactive, the section says so
    github.requests.clear()
    out = stage.repo / "close-47.json"
    done = subprocess.run(
        [sys.executable, "-m", "wormhole_ci", "preview", "--source", str(stage.repo),
         "--environment", "staging", "--pr", str(pr), "--tag", SHA1, "--close",
         "--github-token", "env:GH_TOKEN", "--github-repository", "acme/wormhole",
         "--output", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **stage.environ(), **gh_environ(github), "GH_TOKEN": GH_TOKEN,
             "REGISTRY_PASSWORD": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for text in (done.stdout, done.stderr, out.read_text()):
        assert GH_TOKEN not in text
    calls = github.api()
    assert [(r.method, r.path, r.query) for r in calls] == [
        ("GET", f"{GH_REPO}/deployments", {"environment": "staging-pr-47", "per_page": "100"}),
        ("POST", statuses, {}),
        ("GET", f"{GH_REPO}/issues/{pr}/comments", {"per_page": "100", "page": "1"}),
        ("PATCH", f"{GH_REPO}/issues/comments/{comment}", {}),
    ]
    assert calls[1].body == {
        "state": "inactive",
        "description": "preview of PR #47 closed",
        "log_url": RUN_URL,
    }
    (body,) = github.bodies(pr)
    assert section_of(body, Section.CHECKS) == section_of(checks, Section.CHECKS)
    assert "**Previews**: closed at `1a2b3c4`" in body and "| api |" not in body
    assert "wormhole_pr_47" not in stage.databases()


def test_a_failed_preview_is_a_failure_status(stage: Stage, github: GitHubServer) -> None:
    pr = 48
    stage.coolify.script(APPS["web"], "queued", "in_progress", "failed", logs=["pull failed"])
    said: list[str] = []
    with pytest.raises(PreviewFailed):
        open_reported(stage, github, pr, said)
    (ident,) = github.deployments
    assert [(s["state"], s.get("environment_url")) for s in github.statuses[ident]] == [
        ("in_progress", None),
        ("failure", None),
    ]
    assert github.statuses[ident][1]["description"] == "preview pr-48-1a2b3c4 failed"
    (body,) = github.bodies(pr)
    assert "(images `pr-48-1a2b3c4`): failed" in body and "| web |" in body and "| failed |" in body
    assert "wormhole_pr_48" not in stage.databases()


def test_github_down_never_fails_a_preview(stage: Stage, github: GitHubServer) -> None:
    pr = 49
    github.fail("POST", "/repos/", *([503] * 10_000))
    github.fail("GET", "/repos/", *([503] * 10_000))
    said: list[str] = []
    record = open_reported(stage, github, pr, said)
    assert record.outcome == "verified"
    warnings = [line for line in said if "warning" in line]
    assert len(warnings) == 1, warnings
    assert "GitHub create deployment: HTTP 503" in warnings[0]
    assert "the preview goes on without a GitHub deployment" in warnings[0]
    assert all(GH_TOKEN not in line for line in said)
    assert len({r.path for r in github.api()}) == 1 and not github.deployments
    assert close_cli(stage, pr).returncode == 0
