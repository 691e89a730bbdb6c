"""Applying Hasura metadata: repo_metadata, the client, diff and apply against the contract
engine over a real PostgreSQL holding the example's migrated schema."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLE, copy_example
from tests.hasura.hasura_server import EMPTY, HasuraServer, example_database, run_hasura
from wormhole_ci.errors import (
    HasuraApiError,
    HasuraConflictError,
    HasuraMetadataError,
    ManifestError,
)
from wormhole_ci.hasura.apply import RUNBOOK, HasuraApplyFailed, apply_metadata
from wormhole_ci.hasura.client import HasuraClient
from wormhole_ci.hasura.diff import Change, diff_metadata
from wormhole_ci.hasura.loader import load_yaml
from wormhole_ci.hasura.metadata import hasura_project, repo_metadata
from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.manifest import load_manifest
from wormhole_ci.pgtemp import TempPostgres

PROJECT = EXAMPLE / "hasura"
MIGRATIONS = EXAMPLE / "api" / "prisma" / "migrations"


@pytest.fixture(scope="module")
def database(pg_server: TempPostgres) -> Iterator[str]:
    """A database with the example's migrations applied as plain SQL (no Prisma)."""
    with example_database(pg_server) as url:
        yield url


@pytest.fixture
def secret() -> str:
    return f"adm-{secrets.token_hex(12)}"


@pytest.fixture
def engine(database: str, secret: str) -> Iterator[HasuraServer]:
    with run_hasura(database, secret) as server:
        yield server


@pytest.fixture
def client(engine: HasuraServer, secret: str) -> Iterator[HasuraClient]:
    with HasuraClient(engine.url, secret, timeout=5) as made:
        yield made


def example_metadata() -> dict[str, object]:
    return repo_metadata(PROJECT, EXAMPLE)


def tables_of(metadata: dict[str, object]) -> list[dict[str, object]]:
    source = as_dict((as_list(metadata["sources"]) or [None])[0]) or {}
    return [t for t in map(as_dict, as_list(source.get("tables")) or []) if t is not None]


def with_nickname(tmp_path: Path) -> dict[str, object]:
    """The example project with a select permission column `nickname` on public.users."""
    repo = copy_example(tmp_path)
    file = repo / "hasura/metadata/databases/default/tables/public_users.yaml"
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    data["select_permissions"][0]["permission"]["columns"].append("nickname")
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    return repo_metadata(repo / "hasura", repo)


# -- repo_metadata -------------------------------------------------------------------------


def test_repo_metadata_is_what_the_loader_sees_as_plain_json() -> None:
    metadata = example_metadata()
    assert json.loads(json.dumps(metadata)) == metadata  # plain JSON, no Sourced subclasses
    loaded = load_yaml(PROJECT / "metadata/databases/databases.yaml", EXAMPLE)
    loaded_tables = (as_dict((as_list(loaded) or [None])[0]) or {})["tables"]
    assert [t["table"] for t in tables_of(metadata)] == [
        (as_dict(t) or {})["table"] for t in as_list(loaded_tables) or []
    ]
    assert [t["table"] for t in tables_of(metadata)] == [
        {"name": n, "schema": "public"} for n in ("tenants", "users", "workflows", "workflow_runs")
    ]
    assert type(tables_of(metadata)[1]) is dict
    # Hasura's export leaves out empty lists: the example's are all empty
    assert set(metadata) == {"version", "sources"}
    assert metadata["version"] == 3
    source = as_dict((as_list(metadata["sources"]) or [None])[0]) or {}
    assert source["name"] == "default"
    assert source["kind"] == "postgres"


def test_repo_metadata_keeps_non_empty_files_and_refuses_sdl_actions(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    meta = repo / "hasura/metadata"
    (meta / "cron_triggers.yaml").write_text(
        "- name: nightly\n  webhook: http://localhost:3000/nightly\n  schedule: 0 3 * * *\n",
        encoding="utf-8",
    )
    (meta / "inherited_roles.yaml").write_text("[]\n", encoding="utf-8")
    metadata = repo_metadata(repo / "hasura", repo)
    assert metadata["cron_triggers"] == [
        {"name": "nightly", "webhook": "http://localhost:3000/nightly", "schedule": "0 3 * * *"}
    ]
    assert "inherited_roles" not in metadata
    (meta / "actions.graphql").write_text(
        "# comment\ntype Mutation { ping: Boolean }\n", encoding="utf-8"
    )
    with pytest.raises(HasuraMetadataError, match=r"actions\.graphql.*not support"):
        repo_metadata(repo / "hasura", repo)


def test_hasura_project_of_the_example_manifest(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    manifest = load_manifest(repo)
    assert hasura_project(manifest) == repo / "hasura"
    spec = manifest.service("hasura")
    twice = replace(manifest, services=(*manifest.services, replace(spec, name="hasura2")))
    with pytest.raises(ManifestError, match=r"hasura, hasura2"):
        hasura_project(twice)
    none = replace(manifest, services=tuple(s for s in manifest.services if s is not spec))
    assert hasura_project(none) is None


# -- apply against the contract engine -------------------------------------------------------


@pytest.mark.postgres
def test_apply_to_an_empty_engine_then_again(engine: HasuraServer, client: HasuraClient) -> None:
    lines: list[str] = []
    result = apply_metadata(client, example_metadata(), lines.append)
    assert result.outcome == "applied"
    assert (result.before_version, result.after_version) == (1, 2)
    assert engine.resource_version == 2
    assert Change("added", "table public.users") in result.changes
    assert Change("added", "select permission on public.users for role user") in result.changes
    assert Change("added", "relationship public.users.tenant") in result.changes
    assert engine.metadata == example_metadata()
    assert engine.inconsistent_objects == []
    assert client.inconsistent() == []
    assert any("applied and consistent" in line for line in lines)
    # replace carried the exported resource_version and was strict
    (replace,) = engine.calls("replace_metadata")
    body = as_dict(replace.body) or {}
    assert body["resource_version"] == 1
    assert (as_dict(body["args"]) or {})["allow_inconsistent_metadata"] is False

    again = apply_metadata(client, example_metadata(), lines.append)
    assert again.outcome == "unchanged"
    assert again.changes == []
    assert engine.resource_version == 2
    assert len(engine.calls("replace_metadata")) == 1
    assert json.loads(json.dumps(again.to_dict()))["outcome"] == "unchanged"


@pytest.mark.postgres
def test_dry_run_writes_nothing_and_lists_the_changes(
    engine: HasuraServer, client: HasuraClient
) -> None:
    result = apply_metadata(client, example_metadata(), lambda _: None, dry_run=True)
    assert result.outcome == "dry-run"
    assert Change("added", "table public.workflows") in result.changes
    assert engine.metadata == EMPTY
    assert engine.resource_version == 1
    assert engine.calls("replace_metadata") == []


@pytest.mark.postgres
def test_a_column_the_database_lacks_fails_and_the_live_metadata_is_restored(
    engine: HasuraServer, client: HasuraClient, tmp_path: Path
) -> None:
    apply_metadata(client, example_metadata(), lambda _: None)
    before = copy.deepcopy(engine.metadata)
    with pytest.raises(HasuraApplyFailed) as caught:
        apply_metadata(client, with_nickname(tmp_path), lambda _: None)
    result = caught.value.result
    assert result.outcome == "failed"
    assert result.restored
    assert result.changes == [Change("changed", "select permission on public.users for role user")]
    assert engine.metadata == before
    assert engine.inconsistent_objects == []
    names = [o.name for o in result.inconsistent]
    assert names == ["select_permission user in table users in source default"]
    assert '"nickname"' in result.inconsistent[0].reason
    message = str(caught.value)
    assert "select_permission user in table users" in message
    assert "nickname" in message
    assert "restored to version 2" in message
    # the strict replace was refused (400), then the export was put back, allowing inconsistency
    replaces = [as_dict(r.body) or {} for r in engine.calls("replace_metadata")]
    assert len(replaces) == 3
    assert "resource_version" not in replaces[-1]
    assert (as_dict(replaces[-1]["args"]) or {})["allow_inconsistent_metadata"] is True


@pytest.mark.postgres
def test_inconsistent_after_the_replace_is_restored(
    engine: HasuraServer, client: HasuraClient
) -> None:
    """The strict replace held, but the check after it finds an inconsistency (the database
    changed in between): the exported metadata is put back."""
    found = {"type": "table", "name": "table users in source default", "reason": "gone"}
    engine.fail_next(
        "get_inconsistent_metadata", 200, {"is_consistent": False, "inconsistent_objects": [found]}
    )
    with pytest.raises(HasuraApplyFailed) as caught:
        apply_metadata(client, example_metadata(), lambda _: None)
    assert caught.value.result.restored
    assert caught.value.inconsistent[0].name == "table users in source default"
    assert "table users in source default: gone" in str(caught.value)
    assert RUNBOOK in str(caught.value)
    assert engine.metadata == EMPTY
    assert engine.resource_version == 3  # the apply, then the restore


@pytest.mark.postgres
def test_unchanged_but_inconsistent_live_metadata_fails_without_writing(
    engine: HasuraServer, client: HasuraClient
) -> None:
    broken = example_metadata()
    source = as_dict((as_list(broken["sources"]) or [None])[0]) or {}
    broken["sources"] = [{**source, "tables": [{"table": {"schema": "public", "name": "gone"}}]}]
    engine.edit_live(broken)
    with pytest.raises(HasuraApplyFailed, match="table gone in source default") as caught:
        apply_metadata(client, broken, lambda _: None)
    assert caught.value.result.outcome == "failed"
    assert not caught.value.result.restored
    assert engine.calls("replace_metadata") == []
    assert RUNBOOK in str(caught.value)


@pytest.mark.postgres
def test_a_failed_replace_is_not_retried_and_is_restored(
    engine: HasuraServer, client: HasuraClient
) -> None:
    engine.fail_next("replace_metadata", 500, {"error": "boom", "code": "unexpected"})
    with pytest.raises(HasuraApplyFailed, match="restored to version 1") as caught:
        apply_metadata(client, example_metadata(), lambda _: None)
    assert caught.value.result.outcome == "failed"
    assert caught.value.result.restored
    assert len(engine.calls("replace_metadata")) == 2  # the failed one, then the restore
    assert RUNBOOK not in str(caught.value)  # not about inconsistency
    assert engine.metadata == EMPTY


@pytest.mark.postgres
def test_a_missing_table_is_reported_by_the_engine(engine: HasuraServer, secret: str) -> None:
    metadata = example_metadata()
    tables = tables_of(metadata)
    tables.append({"table": {"schema": "public", "name": "invoices"}})
    source = as_dict((as_list(metadata["sources"]) or [None])[0]) or {}
    metadata["sources"] = [{**source, "tables": tables}]
    with HasuraClient(engine.url, secret) as client:
        with pytest.raises(HasuraApiError) as caught:
            client.replace(metadata, resource_version=None)
        assert [(o.type, o.name) for o in caught.value.inconsistent] == [
            ("table", "table invoices in source default")
        ]
        client.replace(metadata, resource_version=None, allow_inconsistent=True)
        assert [o.type for o in client.inconsistent()] == ["table"]


@pytest.mark.postgres
def test_a_console_edit_between_export_and_replace_is_refused_not_overwritten(
    engine: HasuraServer, client: HasuraClient
) -> None:
    console = copy.deepcopy(EMPTY)
    console["remote_schemas"] = [{"name": "billing", "definition": {"url": "http://localhost:9"}}]

    def edit_after_export() -> None:
        engine.on_export = None
        engine.edit_live(console)

    engine.on_export = edit_after_export
    lines: list[str] = []
    with pytest.raises(HasuraApplyFailed) as caught:
        apply_metadata(client, example_metadata(), lines.append)
    result = caught.value.result
    assert result.outcome == "refused"
    assert not result.restored
    assert isinstance(caught.value.__cause__, HasuraConflictError)
    assert "did not match current version" in str(caught.value)
    assert "wormhole-ci drift" in str(caught.value)
    assert engine.metadata == console
    assert engine.resource_version == 2
    assert len(engine.calls("replace_metadata")) == 1


@pytest.mark.postgres
def test_a_wrong_secret_is_401_and_the_secret_never_leaks(
    engine: HasuraServer, secret: str
) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    lines: list[str] = []
    with HasuraClient(engine.url, wrong) as client:
        assert wrong not in repr(client)
        with pytest.raises(HasuraApiError) as caught:
            apply_metadata(client, example_metadata(), lines.append)
    text = f"{caught.value} {caught.value!r} {caught.value.args}"
    assert "401" in text
    assert "admin_secret" in text
    assert engine.url in text
    assert wrong not in text
    assert lines
    assert all(wrong not in line for line in lines)
    (request,) = engine.requests
    assert request.headers["x-hasura-admin-secret"] == wrong
    assert wrong not in json.dumps(request.body)
    # and the right secret goes in the header only
    with HasuraClient(engine.url, secret) as client:
        client.export()
    assert engine.requests[-1].headers["x-hasura-admin-secret"] == secret
    assert all(secret not in json.dumps(r.body) for r in engine.requests)


@pytest.mark.postgres
def test_a_missing_secret_is_401_as_hasura_answers(engine: HasuraServer) -> None:
    with HasuraClient(engine.url, "") as client, pytest.raises(HasuraApiError, match="401"):
        client.export()


@pytest.mark.postgres
def test_an_unreachable_engine_names_the_url_after_bounded_retries(
    engine: HasuraServer, secret: str
) -> None:
    url = engine.url
    engine.down()
    pauses: list[float] = []
    with (
        HasuraClient(url, secret, timeout=5, sleep=pauses.append) as client,
        pytest.raises(HasuraApiError) as caught,
    ):
        client.export()
    assert url in str(caught.value)
    assert "could not connect" in str(caught.value)
    assert len(pauses) == 2  # three attempts in all


@pytest.mark.postgres
def test_a_5xx_export_is_retried_but_a_replace_is_not(engine: HasuraServer, secret: str) -> None:
    engine.fail_next("export_metadata", 503, {"error": "unavailable"})
    engine.fail_next("replace_metadata", 500, {"error": "boom", "code": "unexpected"})
    with HasuraClient(engine.url, secret, sleep=lambda _: None) as client:
        assert client.export().resource_version == 1
        with pytest.raises(HasuraApiError, match="500"):
            client.replace(example_metadata(), resource_version=1)
    assert len(engine.calls("export_metadata")) == 2
    assert len(engine.calls("replace_metadata")) == 1
    assert engine.resource_version == 1


@pytest.mark.postgres
def test_the_v1_api_shapes(engine: HasuraServer, secret: str) -> None:
    import httpx

    headers = {"X-Hasura-Admin-Secret": secret}
    endpoint = f"{engine.url}/v1/metadata"
    done = httpx.post(endpoint, json={"type": "replace_metadata", "args": EMPTY}, headers=headers)
    assert done.status_code == 200
    assert engine.resource_version == 2
    exported = httpx.post(endpoint, json={"type": "export_metadata", "args": {}}, headers=headers)
    assert exported.json() == EMPTY
    conflict = httpx.post(
        endpoint,
        json={"type": "replace_metadata", "resource_version": 1, "args": EMPTY},
        headers=headers,
    )
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "conflict"
    reload = httpx.post(endpoint, json={"type": "reload_metadata", "args": {}}, headers=headers)
    assert reload.json()["is_consistent"] is True


# -- diff_metadata ---------------------------------------------------------------------------


def _md(*tables: dict[str, object]) -> dict[str, object]:
    return {
        "version": 3,
        "sources": [{"name": "default", "kind": "postgres", "tables": list(tables)}],
    }


def _users(**parts: object) -> dict[str, object]:
    return {"table": {"schema": "public", "name": "users"}, **parts}


_SELECT = {"role": "user", "permission": {"columns": ["id", "email"], "filter": {}}}


def test_diff_tables_added_removed_and_equal() -> None:
    tenants: dict[str, object] = {"table": {"schema": "public", "name": "tenants"}}
    assert diff_metadata(_md(tenants), _md(_users())) == [
        Change("removed", "table public.tenants"),
        Change("added", "table public.users"),
    ]
    assert diff_metadata(_md(_users()), _md(_users())) == []


def test_diff_permissions_by_kind_and_role_ignoring_column_order() -> None:
    live = _md(_users(select_permissions=[_SELECT]))
    reordered = copy.deepcopy(_SELECT)
    reordered["permission"] = {"filter": {}, "columns": ["email", "id"]}
    assert diff_metadata(live, _md(_users(select_permissions=[reordered]))) == []
    changed = copy.deepcopy(_SELECT)
    changed["permission"] = {"columns": ["id"], "filter": {}}
    admin = {**_SELECT, "role": "admin"}
    assert diff_metadata(live, _md(_users(select_permissions=[changed, admin]))) == [
        Change("added", "select permission on public.users for role admin"),
        Change("changed", "select permission on public.users for role user"),
    ]
    assert diff_metadata(live, _md(_users(update_permissions=[_SELECT]))) == [
        Change("removed", "select permission on public.users for role user"),
        Change("added", "update permission on public.users for role user"),
    ]
    # empty lists are what Hasura's export omits: no change
    assert diff_metadata(_md(_users()), _md(_users(insert_permissions=[]))) == []


def test_diff_top_level_objects_and_source_configuration() -> None:
    live = {**_md(), "cron_triggers": [{"name": "nightly", "schedule": "0 3 * * *"}]}
    repo = {**_md(), "actions": [{"name": "create_user", "definition": {}}]}
    assert diff_metadata(live, repo) == [
        Change("added", "action create_user"),
        Change("removed", "cron trigger nightly"),
    ]
    configured = {
        "version": 3,
        "sources": [
            {"name": "default", "kind": "postgres", "tables": [], "configuration": {"x": 1}}
        ],
    }
    assert diff_metadata(_md(), configured) == [Change("changed", "source configuration default")]
    assert diff_metadata(_md(), {"version": 3, "sources": []}) == [
        Change("removed", "source default")
    ]
