"""Offline call chains of `drift` (a job container, secrets as Dagger secrets under the names
the manifest gives them) and `hasura-apply` (HTTP from the module itself)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagger import dag

from tests.dagger_module.conftest import call
from tests.dagger_module.fake_engine import ExecOutcome, FakeEngine, decode_id, readable
from tests.dagger_module.test_functions import view
from tests.dagger_module.test_release import written_files
from tests.hasura.hasura_server import HasuraServer, example_database, run_hasura
from wormhole_ci.containers import (
    DRIFT_TOOLCHAIN,
    MODULE_SOURCE,
    NODE_IMAGE,
    OUT_PATH,
    SOURCE_ROOT,
    drift_argv,
)
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.hasura.metadata import repo_metadata
from wormhole_ci.main import WormholeCi
from wormhole_ci.pgtemp import TempPostgres

URL = "postgresql://wormhole:S3cret-db-pw@db.internal:5432/wormhole"
ADMIN = "hasura-Adm1n-secret-for-drift"
TOKEN = "coolify-T0ken-for-drift"
SHA = "4f3c2b1a0918273645546372819a0b1c2d3e4f50"
HASURA_TABLE = (
    '\n[environments.staging.hasura]\nurl = "http://127.0.0.1:9"\n'
    'admin_secret = "STAGING_HASURA_ADMIN_SECRET"\n'
)


def with_hasura(example: Path) -> Path:
    """The example with a Hasura engine in staging (added when the example has none)."""
    manifest = example / "wormhole-ci.toml"
    text = manifest.read_text()
    if "[environments.staging.hasura]" not in text:
        manifest.write_text(text + HASURA_TABLE)
    return example


def run_drift(example: Path, **kwargs: object) -> str:
    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        out = await module.drift(environment="staging", **kwargs)  # type: ignore[arg-type]
        return await out.id()

    return call(run)


def test_drift_runs_the_native_command_in_one_never_cached_job(
    engine: FakeEngine, example: Path
) -> None:
    result = run_drift(
        with_hasura(example),
        expect_sha=SHA,
        database_url=dag.set_secret("db", URL),
        hasura_admin_secret=dag.set_secret("admin", ADMIN),
        coolify_token=dag.set_secret("token", TOKEN),
    )
    ((chain, _),) = [(c, s) for c, s in engine.leaves if s[1] == "exitCode"]
    v = view(chain)
    assert v.image == NODE_IMAGE
    argvs = [argv for _, argv, _ in v.execs]
    assert argvs[: len(DRIFT_TOOLCHAIN)] == [list(a) for a in DRIFT_TOOLCHAIN]
    # the shadow database needs the server binaries, not only the client tools
    assert "postgresql-15" in DRIFT_TOOLCHAIN[1]
    assert argvs[-1] == list(drift_argv(environment="staging", only=(), expect_sha=SHA))
    assert v.execs[-1][2] == "ANY"  # exit 1 (drift) is a verdict, not a failed call
    assert v.workdir == SOURCE_ROOT
    assert v.directories[MODULE_SOURCE] == [("currentModule", {}), ("source", {})]
    # each secret under the variable the manifest names, as a Dagger secret only
    assert sorted(v.secrets) == [
        "COOLIFY_TOKEN",
        "STAGING_DATABASE_URL",
        "STAGING_HASURA_ADMIN_SECRET",
    ]
    bound = {a["name"]: readable(a["secret"]) for _, n, a in chain if n == "withSecretVariable"}
    assert bound["STAGING_DATABASE_URL"] == [("setSecret", {"name": "db", "plaintext": URL})]
    plain = json.dumps([a for _, n, a in chain if n != "withSecretVariable"])
    for secret in ("S3cret-db-pw", ADMIN, TOKEN):
        assert secret not in plain
    assert len(v.env["WORMHOLE_CI_JOB"]) == 16  # live state: never answered from the cache
    _, out = decode_id(result)
    (at,) = [i for i, (_, n, a) in enumerate(out) if n == "directory" and a["path"] == OUT_PATH]
    assert out[:at] == chain
    assert [(n, a["path"]) for _, n, a in out[at + 1 :]] == [
        ("withNewFile", "drift.log"),
        ("withNewFile", "status"),
    ]


def test_drift_only_passes_the_areas_and_only_the_secrets_given(
    engine: FakeEngine, example: Path
) -> None:
    run_drift(with_hasura(example), only=["database"], database_url=dag.set_secret("db", URL))
    ((chain, _),) = [(c, s) for c, s in engine.leaves if s[1] == "exitCode"]
    v = view(chain)
    argv = v.execs[-1][1]
    assert argv[argv.index("--only") + 1] == "database" and argv.count("--only") == 1
    assert "--expect-sha" not in argv
    assert v.secrets == ["STAGING_DATABASE_URL"]


def test_drift_status_is_the_reports_verdict(engine: FakeEngine, example: Path) -> None:
    engine.on_exec(lambda argv: argv[1:2] == ["drift"], ExecOutcome(1, "## Drift: staging", ""))
    engine.file_contents = lambda chain: json.dumps({"environment": "staging", "outcome": "drift"})
    files = written_files(
        run_drift(with_hasura(example), only=["coolify"], coolify_token=dag.set_secret("t", TOKEN))
    )
    assert files["status"] == "drift\n"
    assert "## Drift: staging" in files["drift.log"]


def test_drift_refuses_an_unknown_area_before_any_container(
    engine: FakeEngine, example: Path
) -> None:
    with pytest.raises(
        WormholeCiError, match="drift --only 'schema': unknown area; use database, hasura, coolify"
    ):
        run_drift(example, only=["schema"])
    assert not [s for _, s in engine.leaves if s[1] == "exitCode"]


# -- hasura-apply: HTTP from the module itself, against the contract engine


@pytest.fixture(scope="module")
def database(pg_server: TempPostgres) -> Iterator[str]:
    with example_database(pg_server) as url:
        yield url


@pytest.fixture
def hasura(database: str) -> Iterator[HasuraServer]:
    with run_hasura(database, ADMIN) as server:
        yield server


def run_apply(example: Path, hasura: HasuraServer, **kwargs: object) -> dict[str, str]:
    manifest = example / "wormhole-ci.toml"
    text = re.sub(
        r"(?ms)^\[environments\.staging\.hasura\]\n.*?(?=^\[|\Z)", "", manifest.read_text()
    )
    manifest.write_text(
        text + f'\n[environments.staging.hasura]\nurl = "{hasura.url}"\n'
        'admin_secret = "STAGING_HASURA_ADMIN_SECRET"\n'
    )

    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        out = await module.hasura_apply(
            environment="staging",
            hasura_admin_secret=dag.set_secret("admin", ADMIN),
            **kwargs,  # type: ignore[arg-type]
        )
        return await out.id()

    return written_files(call(run))


def test_hasura_apply_applies_the_repositorys_metadata_with_the_secret_as_a_secret(
    engine: FakeEngine, example: Path, hasura: HasuraServer
) -> None:
    files = run_apply(example, hasura)
    assert files["status"] == "applied\n"
    result = json.loads(files["hasura.json"])
    assert result["url"] == hasura.url and result["before_version"] == 1
    assert {c["object"] for c in result["changes"]} >= {"table public.users"}
    assert hasura.metadata == repo_metadata(example / "hasura", example)
    # the secret went only in the header, and nowhere in what the call returns
    assert [r.headers.get("x-hasura-admin-secret") for r in hasura.requests] == [ADMIN] * len(
        hasura.requests
    ) and len(hasura.requests) >= 3
    assert all(ADMIN not in json.dumps(r.body) for r in hasura.requests)
    assert ADMIN not in json.dumps(files)
    # no container: the metadata API is called from the module itself
    assert not [s for _, s in engine.leaves if s[1] == "exitCode"]


def test_hasura_apply_dry_run_and_a_failed_apply_return_their_status(
    engine: FakeEngine, example: Path, hasura: HasuraServer
) -> None:
    files = run_apply(example, hasura, dry_run=True)
    assert files["status"] == "dry-run\n"
    assert hasura.resource_version == 1 and hasura.calls("replace_metadata") == []
    tables = example / "hasura" / "metadata" / "databases" / "default" / "tables"
    users = tables / "public_users.yaml"
    users.write_text(users.read_text().replace("- display_name", "- nickname", 1))
    files = run_apply(example, hasura)
    assert files["status"] == "failed\n"
    result = json.loads(files["hasura.json"])
    assert result["restored"] is True and "nickname" in result["detail"]
