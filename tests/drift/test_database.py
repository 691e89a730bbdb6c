"""The database area of `drift` on a real PostgreSQL: migration history and schema, read-only.

The example's migrations are applied once per module by the real `prisma migrate deploy`
(which also pins down the checksum format); every test then gets its own copy of that
database (`CREATE DATABASE … TEMPLATE`) and, where it changes the repository, its own copy
of the example.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from tests.conftest import copy_example, new_password
from wormhole_ci.drift.database import checksum_matches, database_drift, read_only_connection
from wormhole_ci.drift.report import Area, AreaResult, DriftItem
from wormhole_ci.manifest import load_manifest
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.migrate.job import database_service
from wormhole_ci.migrate.native import setup_service
from wormhole_ci.pgtemp import TempPostgres, create_role_and_database
from wormhole_ci.toolchains import default_cache_dir

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
MIGRATIONS = Path("api") / "prisma" / "migrations"
APPLIED = ("20260101000000_init", "20260201000000_workflow_runs")
VAR = "STAGING_DATABASE_URL"


@dataclass(frozen=True)
class Template:
    server: TempPostgres
    dbname: str
    role: str
    password: str


@pytest.fixture(scope="module")
def template(pg_server: TempPostgres, tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A database the example's migrations were applied to by `prisma migrate deploy`."""
    repo = copy_example(tmp_path_factory.mktemp("deployed"))
    setup_service(load_manifest(repo), "api", default_cache_dir(), lambda _: None)
    token = secrets.token_hex(4)
    made = Template(pg_server, f"wci_drift_tpl_{token}", f"wci_drift_{token}", new_password())
    create_role_and_database(pg_server, made.role, made.password, made.dbname)
    url = DatabaseUrl.parse(pg_server.url(made.dbname, made.role, made.password))
    _migrate_deploy(repo / "api", url)
    return made


def _migrate_deploy(service_dir: Path, url: DatabaseUrl) -> None:
    """`prisma migrate deploy`, stopped once it reports success: the CLI then lingers ~10 s
    (DESIGN.md §4) with nothing left to do."""
    process = subprocess.Popen(
        [str(service_dir / "node_modules" / ".bin" / "prisma"), "migrate", "deploy"],
        cwd=service_dir,
        env={**os.environ, "DATABASE_URL": url.reveal(), "CHECKPOINT_DISABLE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        for line in process.stdout:
            output.append(line)
            if "All migrations have been successfully applied" in line:
                return
        pytest.fail("prisma migrate deploy did not succeed:\n" + "".join(output))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)


@dataclass(frozen=True)
class Live:
    url: DatabaseUrl
    raw: str
    password: str

    def run(self, *statements: str) -> None:
        with psycopg.connect(self.url.conninfo(), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())


@pytest.fixture
def live(template: Template) -> Iterator[Live]:
    """A fresh copy of the migrated database (owned by the template's role)."""
    dbname = f"wci_drift_{secrets.token_hex(4)}"
    with psycopg.connect(template.server.conninfo(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                sql.Identifier(dbname),
                sql.Identifier(template.dbname),
                sql.Identifier(template.role),
            )
        )
    raw = template.server.url(dbname, template.role, template.password)
    yield Live(DatabaseUrl.parse(raw), raw, template.password)
    with psycopg.connect(template.server.conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


Drift = Callable[..., tuple[AreaResult, list[str]]]


@pytest.fixture
def drift(repo: Path, tmp_path: Path, pg_server: TempPostgres) -> Drift:
    """Runs the comparison; the reference schema is built on the session cluster unless
    `own_cluster` (the default path: a throwaway cluster of its own)."""

    def run(
        target: Live | DatabaseUrl, *, own_cluster: bool = False
    ) -> tuple[AreaResult, list[str]]:
        url = target.url if isinstance(target, Live) else target
        manifest = load_manifest(repo)
        said: list[str] = []
        result = database_drift(
            url,
            manifest,
            database_service(manifest, None),
            cache_dir=tmp_path / "cache",
            say=said.append,
            environment="staging",
            throwaway=None if own_cluster else pg_server,
        )
        assert result.area is Area.DATABASE
        return result, said

    return run


def only(result: AreaResult, kind: str) -> DriftItem:
    assert result.error is None, result.error
    found = [i for i in result.items if i.kind == kind]
    assert len(found) == 1, result.items
    return found[0]


def test_prisma_stores_the_sha256_of_the_file_bytes(live: Live, repo: Path) -> None:
    with psycopg.connect(live.url.conninfo()) as conn:
        rows = conn.execute(
            "SELECT migration_name, checksum FROM _prisma_migrations ORDER BY 1"
        ).fetchall()
    expected = [
        (
            name,
            hashlib.sha256((repo / MIGRATIONS / name / "migration.sql").read_bytes()).hexdigest(),
        )
        for name in APPLIED
    ]
    assert rows == expected


def test_checksum_matches_like_prisma() -> None:
    script = b"CREATE TABLE a (\n  id int\n);\n"
    lf = hashlib.sha256(script).hexdigest()
    crlf = hashlib.sha256(script.replace(b"\n", b"\r\n")).hexdigest()
    assert checksum_matches(script, lf)
    assert checksum_matches(script, crlf)  # checked out with autocrlf after being applied
    assert checksum_matches(script.replace(b"\n", b"\r\n"), lf)
    assert not checksum_matches(script + b"-- edited\n", lf)
    digest = hashlib.sha256(script).digest()
    unpadded = "".join(f"{b:x}" for b in digest)  # prisma-engines#1887's old rendering
    assert len(unpadded) < 64
    assert checksum_matches(script, unpadded)


def test_clean_database_has_no_drift(live: Live, drift: Drift) -> None:
    result, said = drift(live, own_cluster=True)
    assert result.error is None
    assert result.items == []
    assert "_prisma_migrations: 2 applied, 0 failed, 0 rolled back" in result.checked
    assert any(
        c.startswith("schema (public): 4 live tables compared with the 2 applied migrations")
        for c in result.checked
    ), result.checked
    assert said


def test_pending_migration(live: Live, repo: Path, drift: Drift) -> None:
    folder = repo / MIGRATIONS / "20260301000000_nickname"
    folder.mkdir()
    (folder / "migration.sql").write_text('ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n')
    result, _ = drift(live)
    item = only(result, "pending-migration")
    assert item.subject == "20260301000000_nickname"
    assert item.fix == f"wormhole-ci migrate --source . --service api --database-url env:{VAR}"
    assert [i.kind for i in result.items] == ["pending-migration"]  # not schema drift too


def test_migration_applied_by_hand_is_unknown(live: Live, drift: Drift) -> None:
    live.run(
        'CREATE TABLE "audit_log" ("id" SERIAL PRIMARY KEY, "note" TEXT)',
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at, "
        "applied_steps_count) VALUES ('x1', 'abc', '20260215000000_audit_log', now(), 1)",
    )
    result, _ = drift(live)
    item = only(result, "unknown-migration")
    assert item.subject == "20260215000000_audit_log"
    assert "git checkout <commit> -- api/prisma/migrations/20260215000000_audit_log" in item.fix
    assert (
        "DELETE FROM _prisma_migrations WHERE migration_name = '20260215000000_audit_log'"
        in item.fix
    )
    table = only(result, "schema-drift")  # its table, once (not each column and index)
    assert table.subject == "public.audit_log"


def test_edited_applied_migration(live: Live, repo: Path, drift: Drift) -> None:
    script = repo / MIGRATIONS / APPLIED[0] / "migration.sql"
    script.write_bytes(script.read_bytes() + b"-- a comment added later\n")
    result, _ = drift(live)
    item = only(result, "edited-migration")
    assert item.subject == APPLIED[0]
    assert "git checkout <commit> -- api/prisma/migrations/20260101000000_init" in item.fix
    assert [i.kind for i in result.items] == ["edited-migration"]


def test_line_endings_alone_are_no_edit(live: Live, repo: Path, drift: Drift) -> None:
    script = repo / MIGRATIONS / APPLIED[0] / "migration.sql"
    script.write_bytes(script.read_bytes().replace(b"\n", b"\r\n"))
    result, _ = drift(live)
    assert result.items == []


def test_column_added_by_hand_is_schema_drift(live: Live, drift: Drift) -> None:
    live.run("ALTER TABLE users ADD COLUMN nickname text")
    result, _ = drift(live)
    item = only(result, "schema-drift")
    assert item.subject == "public.users.nickname"
    assert "no applied migration creates" in item.detail
    assert "text null" in item.detail
    assert 'ALTER TABLE "public"."users" DROP COLUMN "nickname";' in item.fix
    assert 'ALTER TABLE "public"."users" ADD COLUMN "nickname" text null;' in item.fix


def test_changed_default_and_dropped_index(live: Live, drift: Drift) -> None:
    live.run(
        "ALTER TABLE users ALTER COLUMN role SET DEFAULT 'admin'",
        "DROP INDEX workflow_runs_workflow_id_created_at_idx",
    )
    result, _ = drift(live)
    assert result.error is None
    subjects = {i.subject: i.detail for i in result.items}
    assert set(subjects) == {
        "public.users.role",
        "public.workflow_runs.workflow_runs_workflow_id_created_at_idx",
    }
    assert "'admin'::text" in subjects["public.users.role"]
    assert (
        "missing from the live database"
        in subjects["public.workflow_runs.workflow_runs_workflow_id_created_at_idx"]
    )


def test_failed_migration(live: Live, repo: Path, drift: Drift) -> None:
    folder = repo / MIGRATIONS / "20260301000000_broken"
    folder.mkdir()
    (folder / "migration.sql").write_text('ALTER TABLE "users" ALTER COLUMN "role" SET NOT NULL;\n')
    live.run(
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, logs, "
        "applied_steps_count) VALUES ('x2', 'abc', '20260301000000_broken', "
        "'ERROR: column contains null values', 0)"
    )
    result, _ = drift(live)
    item = only(result, "failed-migration")
    assert item.subject == "20260301000000_broken"
    assert "docs/runbooks/failed-migration.md" in item.fix
    assert "prisma migrate resolve --rolled-back 20260301000000_broken" in item.fix
    assert "column contains null values" in item.detail
    assert [i.kind for i in result.items] == ["failed-migration"]  # not also pending


def test_never_migrated_database_has_everything_pending(template: Template, drift: Drift) -> None:
    dbname = f"wci_drift_empty_{secrets.token_hex(4)}"
    with psycopg.connect(template.server.conninfo(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(template.role)
            )
        )
    try:
        url = DatabaseUrl.parse(template.server.url(dbname, template.role, template.password))
        result, _ = drift(url)
    finally:
        with psycopg.connect(template.server.conninfo(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(dbname)))
    assert result.error is None
    assert [(i.kind, i.subject) for i in result.items] == [
        ("pending-migration", name) for name in APPLIED
    ]
    assert any("no such table" in c and "all 2 migrations pending" in c for c in result.checked)


def test_unreachable_database_is_an_error_not_an_exception(drift: Drift) -> None:
    password = new_password()
    raw = f"postgresql://someone:{quote(password, safe='')}@127.0.0.1:1/app"
    result, said = drift(DatabaseUrl.parse(raw))
    assert result.items == []
    assert result.error is not None
    assert result.error.startswith("127.0.0.1:1/app: cannot connect (")
    assert VAR in result.error
    for text in [result.error, *said, *result.checked]:
        assert password not in text and raw not in text


def test_the_session_cannot_write(live: Live) -> None:
    with read_only_connection(live.url) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE intruder (id int)")
        conn.rollback()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM _prisma_migrations")


def test_live_database_unchanged_and_no_secret_shown(
    live: Live, pg_bindir: Path, drift: Drift
) -> None:
    live.run(
        "ALTER TABLE users ADD COLUMN nickname text",
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, applied_steps_count) "
        "VALUES ('x3', 'abc', '20260301000000_broken', 0)",
    )
    before = _dump(live, pg_bindir)
    result, said = drift(live)
    assert _dump(live, pg_bindir) == before
    assert {i.kind for i in result.items} == {"schema-drift", "failed-migration"}
    texts = [*said, *result.checked, result.error or "", json.dumps(asdict(result))]
    for text in texts:
        assert live.password not in text
        assert live.raw not in text
        assert live.url.user not in text


def _dump(live: Live, bindir: Path) -> str:
    """Schema and data, as pg_dump sees them."""
    done = subprocess.run(
        [str(bindir / "pg_dump"), "--no-owner"],
        env={**os.environ, **live.url.libpq_env()},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # pg_dump 15.14+ brackets its output with a random \\restrict key: not the database's.
    return "\n".join(
        line
        for line in done.stdout.splitlines()
        if not line.startswith(("\\restrict", "\\unrestrict"))
    )
