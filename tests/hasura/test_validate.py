"""The Hasura metadata check against a schema: every kind of inconsistency, with its file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from wormhole_ci.errors import HasuraMetadataError
from wormhole_ci.hasura.loader import Sourced, load_yaml
from wormhole_ci.hasura.model import DbSchema, DbTable, ForeignKey
from wormhole_ci.hasura.validate import check_project

TABLES = EXAMPLE / "hasura" / "metadata" / "databases" / "default" / "tables"


def example_schema() -> DbSchema:
    """The example's schema, as its migrations define it (checked for real in test_schema)."""

    def t(name: str, cols: str, *fks: ForeignKey) -> tuple[tuple[str, str], DbTable]:
        return ("public", name), DbTable(("public", name), frozenset(cols.split()), fks)

    return DbSchema(
        dict(
            [
                t("tenants", "id name slug created_at"),
                t(
                    "users",
                    "id tenant_id email display_name role created_at",
                    ForeignKey(("tenant_id",), ("public", "tenants"), ("id",)),
                ),
                t(
                    "workflows",
                    "id tenant_id name definition is_active created_at updated_at",
                    ForeignKey(("tenant_id",), ("public", "tenants"), ("id",)),
                ),
                t(
                    "workflow_runs",
                    "id workflow_id status started_at finished_at error created_at",
                    ForeignKey(("workflow_id",), ("public", "workflows"), ("id",)),
                ),
            ]
        ),
        origin="test schema",
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    target = tmp_path / "hasura"
    shutil.copytree(EXAMPLE / "hasura", target)
    return target


def tables_dir(project: Path) -> Path:
    return project / "metadata" / "databases" / "default" / "tables"


def problems(project: Path, schema: DbSchema | None = None) -> list[str]:
    return [
        str(p) for p in check_project(project, schema or example_schema(), project.parent).problems
    ]


def test_example_metadata_is_consistent(project: Path) -> None:
    report = check_project(project, example_schema(), project.parent)
    assert report.problems == []
    assert report.tables == [
        "public.tenants",
        "public.users",
        "public.workflows",
        "public.workflow_runs",
    ]


def test_includes_resolve_and_remember_their_file(project: Path) -> None:
    data = load_yaml(project / "metadata" / "databases" / "databases.yaml", project.parent)
    assert isinstance(data, list)
    tables = data[0]["tables"]
    assert isinstance(tables[0], Sourced)
    assert tables[0].source == tables_dir(project) / "public_tenants.yaml"
    # The YAML-tag form is accepted too.
    (tables_dir(project) / "tables.yaml").write_text("- !include public_tenants.yaml\n")
    tagged = load_yaml(project / "metadata" / "databases" / "databases.yaml", project.parent)
    assert tagged[0]["tables"][0]["table"] == {"name": "tenants", "schema": "public"}  # type: ignore[index]


def test_permission_on_a_missing_column(project: Path) -> None:
    path = tables_dir(project) / "public_users.yaml"
    path.write_text(
        path.read_text().replace(
            "        - display_name\n      filter", "        - nickname\n      filter"
        )
    )
    assert problems(project) == [
        "hasura/metadata/databases/default/tables/public_users.yaml: table public.users: "
        "update permission for role 'user': column 'nickname' does not exist "
        "(columns: created_at, display_name, email, id, role, tenant_id)"
    ]


def test_filter_through_a_relationship_to_a_missing_column(project: Path) -> None:
    path = tables_dir(project) / "public_workflow_runs.yaml"
    path.write_text(path.read_text().replace("          tenant_id:\n", "          owner_id:\n"))
    assert problems(project) == [
        "hasura/metadata/databases/default/tables/public_workflow_runs.yaml: table public.workflow_runs: "
        "select permission for role 'user': filter (via workflow): 'owner_id' is neither a column nor "
        "a relationship of public.workflows"
    ]


def test_untracked_table_relationships_and_presets(project: Path) -> None:
    schema = example_schema()
    tables = dict(schema.tables)
    del tables[("public", "workflow_runs")]
    tables[("public", "workflows")] = DbTable(
        ("public", "workflows"), tables[("public", "workflows")].columns - {"is_active"}
    )
    found = problems(project, DbSchema(tables, "migrations"))
    assert any(
        "public_workflow_runs.yaml: table public.workflow_runs is tracked but does not exist in the migrations"
        in p
        for p in found
    )
    assert any(
        "public_workflows.yaml: table public.workflows: relationship 'tenant': no foreign key on public.workflows(tenant_id)"
        in p
        for p in found
    )
    assert any("relationship 'runs': remote table" in p and "does not exist" in p for p in found)
    assert any(
        "insert permission for role 'user': column 'is_active' does not exist" in p for p in found
    )


def test_manual_relationship_and_duplicate_role(project: Path) -> None:
    path = tables_dir(project) / "public_tenants.yaml"
    path.write_text(
        path.read_text()
        + """object_relationships:
  - name: owner
    using:
      manual_configuration:
        remote_table: {name: users, schema: public}
        column_mapping: {id: tenant_ident}
delete_permissions:
  - role: user
    permission: {filter: {}}
  - role: user
    permission: {filter: {}}
"""
    )
    found = problems(project)
    assert any(
        "relationship 'owner': column 'tenant_ident' does not exist on public.users" in p
        for p in found
    )
    assert any("delete permission for role 'user' is declared twice" in p for p in found)


@pytest.mark.parametrize(
    ("relative", "content", "message"),
    [
        (
            "config.yaml",
            "version: 2\n",
            r"hasura/config\.yaml: version is 2; only config v3 is supported",
        ),
        (
            "metadata/version.yaml",
            "version: 2\n",
            r"metadata/version\.yaml: metadata version must be 3",
        ),
        (
            "metadata/databases/default/tables/tables.yaml",
            '- "!include missing.yaml"\n',
            r"tables/missing\.yaml: file not found",
        ),
        (
            "metadata/databases/default/tables/public_users.yaml",
            "table: [unclosed\n",
            r"public_users\.yaml: invalid YAML",
        ),
    ],
)
def test_structural_errors_raise_with_the_file(
    project: Path, relative: str, content: str, message: str
) -> None:
    (project / relative).write_text(content)
    with pytest.raises(HasuraMetadataError, match=message):
        check_project(project, example_schema(), project.parent)
