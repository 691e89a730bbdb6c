"""`wormhole-ci hasura-apply` against the contract engine over a real PostgreSQL: applied,
dry run, a failed apply restored (exit 1), bad input (exit 2); the admin secret never shown."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hasura.hasura_server import EMPTY, HasuraServer, example_database, run_hasura
from wormhole_ci.cli import main
from wormhole_ci.hasura.metadata import repo_metadata
from wormhole_ci.pgtemp import TempPostgres

pytestmark = [pytest.mark.postgres]
ADMIN = "cli-hasura-Adm1n-s3cret"


@pytest.fixture(scope="module")
def database(pg_server: TempPostgres) -> Iterator[str]:
    with example_database(pg_server) as url:
        yield url


@pytest.fixture
def engine(database: str) -> Iterator[HasuraServer]:
    with run_hasura(database, ADMIN) as server:
        yield server


@pytest.fixture
def repo(example: Path, engine: HasuraServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest = example / "wormhole-ci.toml"
    text = re.sub(
        r"(?ms)^\[environments\.staging\.hasura\]\n.*?(?=^\[|\Z)", "", manifest.read_text()
    )
    manifest.write_text(
        text + f'\n[environments.staging.hasura]\nurl = "{engine.url}"\n'
        'admin_secret = "STAGING_HASURA_ADMIN_SECRET"\n'
    )
    monkeypatch.setenv("STAGING_HASURA_ADMIN_SECRET", ADMIN)
    return example


def apply(
    repo: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, dict[str, object]]:
    out = repo.parent / "hasura.json"
    out.unlink(missing_ok=True)
    argv = ["hasura-apply", "--source", str(repo), "--environment", "staging"]
    code = main([*argv, "--output", str(out), *extra])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    result = json.loads(out.read_text()) if out.exists() else {}
    assert ADMIN not in text and ADMIN not in json.dumps(result)
    return code, text, result


def test_apply_then_unchanged(
    repo: Path, engine: HasuraServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text, result = apply(repo, capsys)
    assert code == 0
    assert f"hasura-apply applied: staging {engine.url}" in text
    assert "added    table public.users" in text
    assert result["outcome"] == "applied" and result["after_version"] == 2
    assert engine.metadata == repo_metadata(repo / "hasura", repo)
    code, text, result = apply(repo, capsys)
    assert code == 0 and result["outcome"] == "unchanged"
    assert len(engine.calls("replace_metadata")) == 1


def test_dry_run_lists_the_changes_and_writes_nothing(
    repo: Path, engine: HasuraServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text, result = apply(repo, capsys, "--dry-run")
    assert code == 0 and result["outcome"] == "dry-run"
    assert "added    select permission on public.users for role user" in text
    assert engine.calls("replace_metadata") == [] and engine.metadata == EMPTY


def test_a_failed_apply_is_restored_and_exits_1(
    repo: Path, engine: HasuraServer, capsys: pytest.CaptureFixture[str]
) -> None:
    users = repo / "hasura" / "metadata" / "databases" / "default" / "tables" / "public_users.yaml"
    users.write_text(users.read_text().replace("- display_name", "- nickname", 1))
    code, text, result = apply(repo, capsys)
    assert code == 1
    assert "hasura-apply failed" in text and "nickname" in text
    assert result["restored"] is True and engine.metadata == EMPTY


def test_bad_input_exits_2_naming_the_fix(
    repo: Path,
    engine: HasuraServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STAGING_HASURA_ADMIN_SECRET")
    code, text, _ = apply(repo, capsys)
    assert code == 2
    assert "environment variable STAGING_HASURA_ADMIN_SECRET is not set" in text
    code, text, _ = main_output(repo, capsys, "production-eu")
    assert code == 2 and "no environment named 'production-eu'" in text
    monkeypatch.setenv("STAGING_HASURA_ADMIN_SECRET", "not-the-secret")
    code, text, result = apply(repo, capsys)
    assert code == 2 and "401" in text and "not-the-secret" not in text
    assert engine.requests and engine.calls("replace_metadata") == []
    assert result == {}


def main_output(
    repo: Path, capsys: pytest.CaptureFixture[str], environment: str
) -> tuple[int, str, None]:
    code = main(["hasura-apply", "--source", str(repo), "--environment", environment])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, None
