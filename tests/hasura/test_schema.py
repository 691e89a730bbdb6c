"""The schema source: the example's real migrations on a throwaway PostgreSQL, and Prisma's DMMF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from tests.hasura.test_validate import example_schema
from wormhole_ci.errors import HasuraMetadataError
from wormhole_ci.hasura.model import ForeignKey
from wormhole_ci.hasura.schema import migration_files, parse_dmmf, schema_from_migrations

MIGRATIONS = EXAMPLE / "api" / "prisma" / "migrations"
FIXTURES = Path(__file__).parent / "fixtures"


def test_migrations_are_applied_in_folder_order() -> None:
    assert [p.parent.name for p in migration_files(MIGRATIONS)] == [
        "20260101000000_init",
        "20260201000000_workflow_runs",
    ]


@pytest.mark.postgres
def test_schema_is_what_the_migrations_produce(pg_bindir: Path) -> None:
    schema = schema_from_migrations(MIGRATIONS, EXAMPLE, pg_bindir)
    assert schema.origin == "schema produced by api/prisma/migrations (2 migrations)"
    expected = example_schema()
    assert expected.tables, "example_schema() has no table to compare"
    for name, table in expected.tables.items():
        assert schema.tables[name].columns == table.columns
        assert set(schema.tables[name].foreign_keys) == set(table.foreign_keys)


@pytest.mark.postgres
def test_a_broken_migration_is_named(tmp_path: Path, pg_bindir: Path) -> None:
    migrations = tmp_path / "api" / "prisma" / "migrations"
    (migrations / "1_bad").mkdir(parents=True)
    (migrations / "1_bad" / "migration.sql").write_text(
        "CREATE TABLE t (id int);\nALTER TABLE nope ADD COLUMN x int;\n"
    )
    with pytest.raises(
        HasuraMetadataError,
        match=r"api/prisma/migrations/1_bad/migration\.sql: migration fails on PostgreSQL: relation \"nope\" does not exist",
    ):
        schema_from_migrations(migrations, tmp_path, pg_bindir)


def test_dmmf_fallback_maps_db_names_and_relations() -> None:
    raw = json.loads((FIXTURES / "dmmf_datamodel.json").read_text())
    schema = parse_dmmf(raw, "Prisma datamodel of api")
    expected = example_schema()
    assert set(schema.tables) == set(expected.tables)
    for name, table in expected.tables.items():
        assert schema.tables[name].columns == table.columns, name
        assert set(schema.tables[name].foreign_keys) == set(table.foreign_keys), name
    assert schema.tables[("public", "users")].foreign_keys == (
        ForeignKey(("tenant_id",), ("public", "tenants"), ("id",)),
    )


def test_dmmf_of_the_wrong_shape() -> None:
    with pytest.raises(HasuraMetadataError, match="unexpected DMMF shape"):
        parse_dmmf({"enums": []}, "x")
