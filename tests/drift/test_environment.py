"""`wormhole-ci drift` over a whole environment: a real PostgreSQL (migrated as Prisma
records it), the Hasura contract engine over it and the Coolify contract server: clean, then
a difference in each area named with its fix."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.deploy.coolify_server import CoolifyServer, run_coolify
from tests.hasura.hasura_server import HasuraServer, example_database, run_hasura
from wormhole_ci.cli import main
from wormhole_ci.hasura.metadata import repo_metadata
from wormhole_ci.pgtemp import TempPostgres

pytestmark = [pytest.mark.postgres]
TOKEN = "drift-env-coolify-T0KEN"
ADMIN = "drift-env-hasura-Adm1n"
TAG = "4f3c2b1"
APPS = {
    "api": "stg0api0wormhole0000000a",
    "web": "stg0web0wormhole0000000w",
    "runner": "stg0run0wormhole0000000r",
}
PRISMA_TABLE = """CREATE TABLE "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ, "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ, "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0)"""


@pytest.fixture
def database(pg_server: TempPostgres, example: Path) -> Iterator[str]:
    """The example's migrations applied, and recorded the way `prisma migrate deploy` does
    (its checksum: the sha256 of migration.sql's bytes, see tests/drift/test_database.py)."""
    with example_database(pg_server) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(PRISMA_TABLE.encode())
            for sql in sorted((example / "api" / "prisma" / "migrations").glob("*/migration.sql")):
                conn.execute(
                    "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name,"
                    " applied_steps_count) VALUES (%s, %s, now(), %s, 1)",
                    (
                        str(uuid.uuid4()),
                        hashlib.sha256(sql.read_bytes()).hexdigest(),
                        sql.parent.name,
                    ),
                )
        yield url


@pytest.fixture
def hasura(database: str, example: Path) -> Iterator[HasuraServer]:
    with run_hasura(database, ADMIN, metadata=repo_metadata(example / "hasura", example)) as server:
        yield server


@pytest.fixture
def coolify() -> Iterator[CoolifyServer]:
    with run_coolify({TOKEN: ("read",)}) as server:
        for service, app in APPS.items():
            server.add_app(app, f"wormhole-{service}", image_tag=TAG)
        yield server


@pytest.fixture
def repo(
    example: Path,
    database: str,
    hasura: HasuraServer,
    coolify: CoolifyServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    manifest = example / "wormhole-ci.toml"
    text = manifest.read_text().replace(
        'coolify_url = "http://192.168.1.66:8000"', f'coolify_url = "{coolify.url}"', 1
    )
    text = re.sub(r"(?ms)^\[environments\.staging\.hasura\]\n.*?(?=^\[|\Z)", "", text)
    manifest.write_text(
        text + f'\n[environments.staging.hasura]\nurl = "{hasura.url}"\n'
        'admin_secret = "STAGING_HASURA_ADMIN_SECRET"\n'
    )
    monkeypatch.setenv("COOLIFY_TOKEN", TOKEN)
    monkeypatch.setenv("STAGING_HASURA_ADMIN_SECRET", ADMIN)
    monkeypatch.setenv("STAGING_DATABASE_URL", database)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return example


def drift(
    repo: Path, capsys: pytest.CaptureFixture[str], database: str
) -> tuple[int, dict[str, object]]:
    out = repo.parent / "drift.json"
    code = main(["drift", "--source", str(repo), "--environment", "staging", "--output", str(out)])
    captured = capsys.readouterr()
    text = out.read_text()
    password = re.search(r"://[^:]+:([^@]+)@", database)
    assert password is not None
    for secret in (TOKEN, ADMIN, password.group(1)):
        for where in (captured.out, captured.err, text, out.with_suffix(".md").read_text()):
            assert secret not in where
    return code, json.loads(text)


def items(report: dict[str, object]) -> list[tuple[str, str, str, str]]:
    areas = report["areas"]
    assert isinstance(areas, list)
    return [
        (i["area"], i["kind"], i["subject"], i["fix"])
        for a in areas
        for i in a["items"]  # type: ignore[index]
    ]


def test_a_clean_environment_then_one_drift_in_each_area(
    repo: Path,
    database: str,
    hasura: HasuraServer,
    coolify: CoolifyServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = drift(repo, capsys, database)
    assert code == 0, report
    assert report["outcome"] == "clean"
    assert [a["area"] for a in report["areas"]] == ["database", "hasura", "coolify"]  # type: ignore[union-attr]
    replaced = len(hasura.calls("replace_metadata"))

    # a column added by hand, a migration applied by hand that the repository lacks, an
    # applied migration edited afterwards, a new one not applied yet, a permission removed
    # in the console, an application on another tag
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute('ALTER TABLE "users" ADD COLUMN "nickname" TEXT')
        conn.execute(
            "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name,"
            " applied_steps_count) VALUES (%s, %s, now(), '20260115000000_hotfix', 1)",
            (str(uuid.uuid4()), "0" * 64),
        )
    migrations = repo / "api" / "prisma" / "migrations"
    init = migrations / "20260101000000_init" / "migration.sql"
    init.write_text(init.read_text() + "\n-- edited after it was applied\n")
    (migrations / "20260301000000_pending").mkdir()
    (migrations / "20260301000000_pending" / "migration.sql").write_text(
        'ALTER TABLE "tenants" ADD COLUMN "plan" TEXT;\n'
    )
    live = json.loads(json.dumps(hasura.metadata))
    users = next(t for t in live["sources"][0]["tables"] if t["table"]["name"] == "users")
    del users["update_permissions"]
    hasura.edit_live(live)
    coolify.apps[APPS["web"]].image_tag = "0badc0d"

    code, report = drift(repo, capsys, database)
    assert code == 1 and report["outcome"] == "drift"
    found = items(report)
    by_kind = {kind: (subject, fix) for _, kind, subject, fix in found}
    assert by_kind["schema-drift"][0] == "public.users.nickname"
    assert by_kind["unknown-migration"][0] == "20260115000000_hotfix"
    assert by_kind["edited-migration"][0] == "20260101000000_init"
    assert by_kind["pending-migration"] == (
        "20260301000000_pending",
        "wormhole-ci migrate --source . --service api --database-url env:STAGING_DATABASE_URL",
    )
    assert all(fix for _, _, _, fix in found)  # each item names its fix
    assert (
        "hasura",
        "metadata-changed",
        "update permission on public.users for role user",
        "wormhole-ci hasura-apply --environment staging (or, to keep the live edit, "
        "`hasura metadata export` and commit it)",
    ) in found
    assert (
        "coolify",
        "image-tag",
        f"web (application {APPS['web']})",
        f"wormhole-ci deploy --environment staging --tag {TAG}",
    ) in found
    assert len(found) == 6, found
    # read-only: nothing was replaced in Hasura, nothing changed in Coolify
    assert len(hasura.calls("replace_metadata")) == replaced
    assert {r.method for r in coolify.requests} == {"GET"}
