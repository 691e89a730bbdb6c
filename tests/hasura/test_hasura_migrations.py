"""A Hasura project whose schema comes from Hasura's own migrations: layout, per-source schemas, check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from wormhole_ci.check.container import service_spec
from wormhole_ci.errors import HasuraMetadataError, ProvisionError
from wormhole_ci.hasura.check import validate_hasura
from wormhole_ci.hasura.migrations import hasura_migration_files
from wormhole_ci.manifest import load_manifest
from wormhole_ci.plan import build_plan

FIXTURE = Path(__file__).parents[1] / "fixtures" / "monorepos" / "hasura-migrations"
POSTS = "hasura/metadata/databases/default/tables/public_posts.yaml"
DEFAULT = "hasura/migrations/default"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "hasura-migrations"))


def run_check(
    root: Path, junit: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`wormhole-ci check` with no task overrides, plain progress, a JUnit report, no cache."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "wormhole_ci", "check", "--source", str(root)),
            *("--junit", str(junit), "--progress", "plain", "--no-cache"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def outcomes(junit: Path) -> dict[tuple[str, str], str]:
    """(service, task) → passed / failed, from the JUnit report."""
    return {
        (case.get("classname") or "", case.get("name") or ""): (
            "failed" if case.find("failure") is not None else "passed"
        )
        for case in ET.parse(junit).getroot().iter("testcase")
    }


def test_plan_reads_only_the_hasura_project(repo: Path) -> None:
    plan = build_plan(load_manifest(repo))
    (task,) = plan.tasks
    # dagger call check mounts only this (and PLAN_INPUTS): the migrations live inside it.
    assert service_spec(plan.services[0]).include == ("hasura",)
    assert (task.service, task.name, task.inputs, task.after) == (
        "hasura",
        "validate",
        ("hasura",),
        (),
    )


@pytest.mark.postgres
def test_fixture_checks_clean(repo: Path, tmp_path: Path, pg_bindir: Path) -> None:
    junit = tmp_path / "junit.xml"
    done = run_check(repo, junit)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcomes(junit) == {("hasura", "validate"): "passed"}


@pytest.mark.postgres
def test_permission_on_a_column_no_migration_creates_fails_validate(
    repo: Path, tmp_path: Path, pg_bindir: Path
) -> None:
    posts = repo / POSTS
    text = posts.read_text(encoding="utf-8")
    posts.write_text(
        text.replace("        - published_at\n", "        - published_at\n        - body\n", 1)
    )
    junit = tmp_path / "junit.xml"
    done = run_check(repo, junit)
    assert done.returncode == 1, done.stdout + done.stderr
    assert outcomes(junit) == {("hasura", "validate"): "failed"}
    assert (
        f"{POSTS}: table public.posts: select permission for role 'user': column 'body' does not "
        "exist (columns: author_id, id, published_at, title)"
    ) in done.stdout + done.stderr
    assert "inconsistent with the schema produced by hasura/migrations" in done.stdout + done.stderr


@pytest.mark.postgres
def test_migrations_apply_in_version_order_not_name_order(repo: Path, pg_bindir: Path) -> None:
    # 10000000000000 sorts before 1700… by name but after it by version (it needs posts).
    later = repo / DEFAULT / "10000000000000_posts_summary"
    later.mkdir()
    (later / "up.sql").write_text("ALTER TABLE public.posts ADD COLUMN summary text;\n")
    files = hasura_migration_files(repo / "hasura" / "migrations", repo)
    assert [p.parent.name for p in files["default"]] == [
        "1700000000000_init",
        "1700000000100_posts_published",
        "10000000000000_posts_summary",
    ]
    report = validate_hasura(load_manifest(repo), "hasura")
    assert report.tables == ["public.authors", "public.posts"]
    assert (
        report.origin == "schema produced by hasura/migrations (migrations per source: default: 3)"
    )


@pytest.mark.postgres
def test_each_source_is_checked_against_its_own_migrations(repo: Path, pg_bindir: Path) -> None:
    analytics = repo / "hasura" / "migrations" / "analytics" / "1_events"
    analytics.mkdir(parents=True)
    (analytics / "up.sql").write_text("CREATE TABLE public.events (id bigint PRIMARY KEY);\n")
    databases = repo / "hasura" / "metadata" / "databases" / "databases.yaml"
    databases.write_text(
        databases.read_text(encoding="utf-8")
        + "- name: analytics\n  kind: postgres\n  configuration:\n    connection_info:\n"
        "      database_url:\n        from_env: ANALYTICS_DATABASE_URL\n"
        "  tables:\n    - table:\n        name: events\n        schema: public\n"
        "    - table:\n        name: posts\n        schema: public\n"
    )
    with pytest.raises(HasuraMetadataError) as info:
        validate_hasura(load_manifest(repo), "hasura")
    # posts exists in the default source's database, not in analytics'.
    assert (
        "table public.posts is tracked but does not exist in the schema produced by "
        "hasura/migrations/analytics (1 migration)"
    ) in str(info.value)
    assert "(1 problems)" in str(info.value)


@pytest.mark.postgres
def test_metadata_source_without_migrations_is_named(repo: Path, pg_bindir: Path) -> None:
    (repo / DEFAULT).rename(repo / "hasura" / "migrations" / "main")
    with pytest.raises(HasuraMetadataError) as info:
        validate_hasura(load_manifest(repo), "hasura")
    assert str(info.value).startswith(
        "hasura/metadata/databases/databases.yaml: database source 'default' has no migrations"
    )
    assert "(sources with migrations: main); add default/<version>_<name>/up.sql" in str(info.value)


@pytest.mark.postgres
def test_failing_migration_names_its_file(repo: Path, pg_bindir: Path) -> None:
    (repo / DEFAULT / "1700000000100_posts_published" / "up.sql").write_text(
        "ALTER TABLE public.nope ADD COLUMN x int;\n"
    )
    with pytest.raises(
        HasuraMetadataError, match=r'relation "public\.nope" does not exist'
    ) as info:
        validate_hasura(load_manifest(repo), "hasura")
    assert str(info.value).startswith(
        f"{DEFAULT}/1700000000100_posts_published/up.sql: migration fails on PostgreSQL"
    )


def test_without_postgres_binaries_there_is_no_fallback(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORMHOLE_CI_PG_BINDIR", "none")
    with pytest.raises(ProvisionError) as info:
        validate_hasura(load_manifest(repo), "hasura")
    message = str(info.value)
    assert message.startswith("hasura/migrations: PostgreSQL server binaries")
    assert "schema comes from Hasura migrations (there is no datamodel fallback)" in message
    assert "apt-get install postgresql-15" in message
    assert "WORMHOLE_CI_PG_BINDIR" in message


def test_without_postgres_binaries_check_fails_the_task(repo: Path, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    done = run_check(repo, junit, env={**os.environ, "WORMHOLE_CI_PG_BINDIR": "none"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert outcomes(junit) == {("hasura", "validate"): "failed"}
    assert "PostgreSQL server binaries (initdb, pg_ctl, postgres) are needed" in done.stderr


def _empty_root(root: Path) -> None:
    shutil.rmtree(root / DEFAULT)


def _no_up_sql(root: Path) -> None:
    (root / DEFAULT / "1700000000100_posts_published" / "up.sql").unlink()


def _named_version(root: Path) -> None:
    (root / DEFAULT / "init").mkdir()


def _config_v2(root: Path) -> None:
    shutil.move(root / DEFAULT / "1700000000000_init", root / "hasura" / "migrations")


def _duplicate_version(root: Path) -> None:
    (root / DEFAULT / "1700000000000_again").mkdir()
    (root / DEFAULT / "1700000000000_again" / "up.sql").write_text("SELECT 1;\n")


def _no_versions(root: Path) -> None:
    (root / "hasura" / "migrations" / "analytics").mkdir()


def _no_directory(root: Path) -> None:
    shutil.rmtree(root / "hasura" / "migrations")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_empty_root, "hasura/migrations: no source directories; Hasura config v3 keeps"),
        (
            _no_up_sql,
            f"{DEFAULT}/1700000000100_posts_published/up.sql: missing; each migration directory "
            "needs an up.sql",
        ),
        (
            _named_version,
            f"{DEFAULT}/init: not a migration directory: the name must be <version>_<name> "
            "with a numeric version",
        ),
        (
            _config_v2,
            "hasura/migrations/1700000000000_init: a migration directly under hasura/migrations "
            "(config v2 layout)",
        ),
        (
            _duplicate_version,
            f"{DEFAULT}/1700000000000_init: version 1700000000000 is also "
            f"{DEFAULT}/1700000000000_again",
        ),
        (
            _no_versions,
            "hasura/migrations/analytics: no migrations; expected <version>_<name>/up.sql inside",
        ),
        (_no_directory, "hasura/migrations: Hasura migrations directory not found"),
    ],
)
def test_bad_layout_names_the_path(repo: Path, damage: object, expected: str) -> None:
    assert callable(damage)
    damage(repo)
    with pytest.raises(HasuraMetadataError) as info:
        hasura_migration_files(repo / "hasura" / "migrations", repo)
    assert str(info.value).startswith(expected), str(info.value)
