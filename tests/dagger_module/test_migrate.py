"""Offline call chain of `migrate`: one container, the URL only as a Dagger secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagger import dag

from tests.dagger_module.conftest import call
from tests.dagger_module.fake_engine import ExecOutcome, FakeEngine, decode_id, readable
from tests.dagger_module.test_functions import view
from tests.dagger_module.test_release import written_files
from tests.observability.gateway import run_pushgateway
from wormhole_ci.containers import (
    MIGRATE_TOOLCHAIN,
    MODULE_SOURCE,
    NODE_IMAGE,
    OUT_PATH,
    SOURCE_ROOT,
    migrate_argv,
)
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.main import WormholeCi

URL = "postgresql://wormhole:S3cret-db-pw@db.internal:5432/wormhole"
SHA = "4f3c2b1a0918273645546372819a0b1c2d3e4f50"


def run_migrate(example: Path, **kwargs: object) -> str:
    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        out = await module.migrate(database_url=dag.set_secret("database-url", URL), **kwargs)  # type: ignore[arg-type]
        return await out.id()

    return call(run)


def test_migrate_runs_the_native_job_in_one_container_with_the_url_as_a_secret(
    engine: FakeEngine, example: Path
) -> None:
    result = run_migrate(example, tag=SHA, allow_destructive=True)
    execs = [(c, step) for c, step in engine.leaves if step[1] == "exitCode"]
    ((chain, _),) = execs
    v = view(chain)
    assert v.image == NODE_IMAGE
    argvs = [argv for _, argv, _ in v.execs]
    assert argvs[: len(MIGRATE_TOOLCHAIN)] == [list(a) for a in MIGRATE_TOOLCHAIN]
    expected = list(
        migrate_argv(
            service=None, tag=SHA, lock_timeout=600, allow_destructive=True, no_backup=False
        )
    )
    assert argvs[-1] == expected and v.execs[-1][2] == "ANY"
    assert "--backup-dir" in expected and "env:DATABASE_URL" in expected
    assert v.workdir == SOURCE_ROOT
    assert v.directories[MODULE_SOURCE] == [("currentModule", {}), ("source", {})]
    assert [(n, a.get("path")) for n, a in v.directories[SOURCE_ROOT]] == [
        ("host", None),
        ("directory", str(example)),
    ]
    # the URL is a Secret made by setSecret, bound to DATABASE_URL; never a plain value
    assert v.secrets == ["DATABASE_URL"]
    (secret,) = [a["secret"] for _, n, a in chain if n == "withSecretVariable"]
    assert readable(secret) == [("setSecret", {"name": "database-url", "plaintext": URL})]
    plain = json.dumps([a for _, n, a in chain if n != "withSecretVariable"])
    assert "S3cret-db-pw" not in plain and "db.internal" not in plain
    # a job is never answered from the cache: a fresh nonce per call
    assert len(v.env["WORMHOLE_CI_JOB"]) == 16
    # the result is the /out directory of that container, with the job's log and status
    _, out = decode_id(result)
    (at,) = [i for i, (_, n, a) in enumerate(out) if n == "directory" and a["path"] == OUT_PATH]
    assert out[:at] == chain
    assert [(n, a["path"]) for _, n, a in out[at + 1 :]] == [
        ("withNewFile", "migrate.log"),
        ("withNewFile", "status"),
    ]


def test_migrate_flags_reach_the_job(engine: FakeEngine, example: Path) -> None:
    run_migrate(example, service="api", lock_timeout=30, no_backup=True)
    ((chain, _),) = [(c, s) for c, s in engine.leaves if s[1] == "exitCode"]
    argv = view(chain).execs[-1][1]
    assert argv[argv.index("--service") + 1] == "api"
    assert argv[argv.index("--lock-timeout") + 1] == "30"
    assert "--no-backup" in argv and "--backup-dir" not in argv and "--tag" not in argv


def test_a_dry_run_is_the_same_job_with_dry_run_and_nothing_else(
    engine: FakeEngine, example: Path
) -> None:
    """`migrate(dry_run=True)`: one container running the native job's `--dry-run` (the code
    the native tests run against PostgreSQL); no other exec (no pg_dump, no Prisma, no
    `migrate deploy`), the result directory gets only the log and the status the job names."""
    engine.file_contents = lambda chain: json.dumps({"outcome": "would-block", "pending": ["x"]})
    result = run_migrate(example, tag=SHA, dry_run=True)
    ((chain, _),) = [(c, s) for c, s in engine.leaves if s[1] == "exitCode"]
    v = view(chain)
    argvs = [argv for _, argv, _ in v.execs]
    assert argvs[: len(MIGRATE_TOOLCHAIN)] == [list(a) for a in MIGRATE_TOOLCHAIN]
    expected = list(
        migrate_argv(
            service=None,
            tag=SHA,
            lock_timeout=600,
            allow_destructive=False,
            no_backup=False,
            dry_run=True,
        )
    )
    assert argvs[len(MIGRATE_TOOLCHAIN) :] == [expected]  # the job, once, and nothing after
    assert expected[1] == "migrate" and expected[-1] == "--dry-run"
    # --backup-dir only names the backup a real run would write; nothing else runs
    joined = [" ".join(argv) for argv in argvs]
    assert not any(
        "pg_dump" in a or "prisma" in a or "migrate deploy" in a or "restore" in a for a in joined
    )
    _, out = decode_id(result)
    (at,) = [i for i, (_, n, a) in enumerate(out) if n == "directory" and a["path"] == OUT_PATH]
    assert [(n, a["path"]) for _, n, a in out[at + 1 :]] == [
        ("withNewFile", "migrate.log"),
        ("withNewFile", "status"),
    ]
    assert not any("backups" in json.dumps(a) for _, n, a in out if n != "withExec")
    assert written_files(result)["status"] == "would-block\n"
    # still never answered from the cache: a dry run reads the live database
    assert len(v.env["WORMHOLE_CI_JOB"]) == 16


def test_a_failed_job_returns_its_result_log_and_status(engine: FakeEngine, example: Path) -> None:
    """A blocked or failed job still returns its directory (result, backup, log): the
    status file says what happened, so nothing it wrote is lost."""
    engine.on_exec(
        lambda argv: argv[1:2] == ["migrate"],
        ExecOutcome(1, "", "migrate blocked: prisma/migrations/x/migration.sql:3 DROP TABLE"),
    )
    engine.file_contents = lambda chain: json.dumps({"outcome": "blocked", "pending": ["x"]})
    files = written_files(run_migrate(example))
    assert files["status"] == "blocked\n"
    assert "migration.sql:3 DROP TABLE" in files["migrate.log"]


def test_a_job_that_wrote_no_result_is_failed(engine: FakeEngine, example: Path) -> None:
    engine.on_exec(lambda argv: argv[1:2] == ["migrate"], ExecOutcome(2, "", "bad input"))
    files = written_files(run_migrate(example))
    assert files == {"migrate.log": "bad input", "status": "failed\n"}


def test_a_tag_that_is_not_a_sha_is_refused(engine: FakeEngine, example: Path) -> None:
    with pytest.raises(WormholeCiError, match="expected a commit SHA"):
        run_migrate(example, tag="main")


def test_migrate_with_an_environment_pushes_its_outcome_from_the_module(
    engine: FakeEngine, example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job container never pushes (its argv has no --environment); the module does, after
    it, with the outcome the job's result names and the credential as a Dagger secret."""
    manifest = example / "wormhole-ci.toml"
    engine.on_exec(lambda argv: argv[1:2] == ["migrate"], ExecOutcome(1, "", "migrate blocked"))
    engine.file_contents = lambda chain: json.dumps({"outcome": "blocked", "pending": ["x"]})

    def migrate(**kwargs: object) -> dict[str, str]:
        async def run() -> str:
            module = WormholeCi(source=dag.host().directory(str(example)))
            out = await module.migrate(
                database_url=dag.set_secret("database-url", URL),
                tag=SHA,
                environment="staging",
                **kwargs,  # type: ignore[arg-type]
            )
            return await out.id()

        return written_files(call(run))

    with run_pushgateway(tmp_path) as gateway:
        manifest.write_text(
            manifest.read_text()
            + f'\n[environments.staging.observability]\npushgateway_url = "{gateway.url}"\n'
            'pushgateway_auth = "STAGING_PUSHGATEWAY_AUTH"\n'
        )
        # the manifest names a credential that was not passed: the push is skipped, saying so
        assert migrate()["status"] == "blocked\n"
        assert gateway.samples() == []
        assert "--pushgateway-auth was given" in capsys.readouterr().err
        assert migrate(pushgateway_auth=dag.set_secret("gw", "ci:gw-Pa55word"))["status"] == (
            "blocked\n"
        )
        labels, value = gateway.value("wormhole_ci_last_run_success", "migrate", "staging")
        assert (labels["outcome"], labels["sha"], value) == ("blocked", SHA[:7], 0.0)
        assert gateway.value("wormhole_ci_failures_total", "migrate", "staging")[1] == 1.0
        exposition = gateway.exposition()
    assert "S3cret-db-pw" not in exposition and "gw-Pa55word" not in exposition
    assert "gw-Pa55word" not in capsys.readouterr().err
    argvs = [view(chain).execs[-1][1] for chain, step in engine.leaves if step[1] == "exitCode"]
    assert argvs and all("--environment" not in argv for argv in argvs)
