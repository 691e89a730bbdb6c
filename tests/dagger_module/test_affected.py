"""`--since`/`--changed` through the Dagger module on the stand-in engine: the native answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import graphql
import pytest
from dagger import dag

from tests.conftest import committed_example, git, shared_reference
from tests.dagger_module.conftest import call
from tests.dagger_module.fake_engine import ExecOutcome, FakeEngine, Step
from tests.dagger_module.test_functions import (
    answer_versions,
    exec_leaves,
    plan_of,
    ran,
    scan_views,
)
from wormhole_ci.affected import affected, git_changes
from wormhole_ci.dagger_runtime.source import SOURCE_IGNORE
from wormhole_ci.main import WormholeCi
from wormhole_ci.manifest import load_manifest

EVERY = ["api", "web", "runner", "hasura", "delivery"]


@pytest.fixture
def host_files(engine: FakeEngine) -> FakeEngine:
    """`dag.host().file(PATH).contents()` answers PATH's text, as `--changed=FILE` uploads it."""

    def contents(chain: tuple[Step, ...]) -> str:
        assert chain[-1][:2] == ("Host", "file"), chain
        return Path(chain[-1][2]["path"]).read_text()

    engine.file_contents = contents  # the engine fixture resets it afterwards
    return engine


def module(repo: Path, since: str, changed: Path | None) -> WormholeCi:
    return WormholeCi(
        source=dag.host().directory(str(repo)),
        since=since,
        changed=dag.host().file(str(changed)) if changed else None,
    )


def changed_file(repo: Path, base: str) -> Path:
    """What ci.yml writes: `git diff --name-only BASE HEAD`."""
    listing = repo.parent / "changed.txt"
    listing.write_text(git(repo, "diff", "--name-only", base, "HEAD") + "\n")
    return listing


def dagger_affected(repo: Path, since: str, changed: Path | None) -> dict[str, Any]:
    async def run() -> str:
        return await module(repo, since, changed).affected()

    return json.loads(call(run))


def native_affected(repo: Path, since: str) -> dict[str, Any]:
    return json.loads(affected(load_manifest(repo), git_changes(repo, since)).to_json())


def commit_all(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("web/app.vue", ["web"]),
        ("api/prisma/migrations/20990101000000_add_tag/migration.sql", ["api", "hasura"]),
        ("wormhole-ci.toml", EVERY),
    ],
)
def test_the_same_selection_as_natively(
    host_files: FakeEngine, tmp_path: Path, edit: str, expected: list[str]
) -> None:
    repo = committed_example(tmp_path)
    base = git(repo, "rev-parse", "HEAD")
    path = repo / edit
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((path.read_text() if path.exists() else "") + "\n# edited\n")
    commit_all(repo)
    found = dagger_affected(repo, base, changed_file(repo, base))
    assert found["services"] == expected
    assert found == native_affected(repo, base)


def test_without_a_listing_the_base_is_unknown_and_everything_runs(
    host_files: FakeEngine, tmp_path: Path
) -> None:
    repo = committed_example(tmp_path)
    found = dagger_affected(repo, "0" * 40, None)
    assert found["services"] == EVERY
    assert found["base"] is None
    (note,) = found["notes"]
    assert isinstance(note, str)
    assert note.startswith(f"base '{'0' * 40}' is unknown (no list of changed paths was given")


def test_lint_since_runs_only_the_changed_services_tasks(
    host_files: FakeEngine, tmp_path: Path
) -> None:
    repo = committed_example(tmp_path)
    base = git(repo, "rev-parse", "HEAD")
    (repo / "web" / "app.vue").write_text("<template><p /></template>\n")
    commit_all(repo)

    async def run() -> str:
        return await module(repo, base, changed_file(repo, base)).lint()

    report = call(run)
    assert f"affected since {base[:12]}: web (changed web/app.vue)" in report
    assert report.splitlines()[-1].startswith("lint passed in ")
    assert ran(exec_leaves(host_files)) == {t.argv for t in plan_of(repo, "web", ("lint",)).tasks}


def test_check_report_of_an_empty_change_runs_nothing_and_passes(
    host_files: FakeEngine, tmp_path: Path
) -> None:
    repo = committed_example(tmp_path)
    base = git(repo, "rev-parse", "HEAD")

    async def run() -> tuple[str, str]:
        reports = await module(repo, base, changed_file(repo, base)).check_report()
        return await reports.file("status").contents(), await reports.file("check.txt").contents()

    status, text = call(run)
    assert status == "passed\n"
    assert f"affected since {base[:12]}: no service" in text
    assert not exec_leaves(host_files)


def test_test_since_without_a_listing_runs_every_service(
    host_files: FakeEngine, tmp_path: Path
) -> None:
    repo = committed_example(tmp_path)

    async def run() -> str:
        return await module(repo, "main", None).test()

    report = call(run)
    assert "base 'main' is unknown" in report
    assert ran(exec_leaves(host_files)) == {t.argv for t in plan_of(repo, None, ("test",)).tasks}


def test_the_v021_schema_can_read_history_but_only_from_a_directory_holding_git() -> None:
    """Which route works on v0.21: the fields the history route needs exist in the schema."""
    schema = graphql.build_schema(
        shared_reference("dagger-v0.21-schema.graphqls").read_text(encoding="utf-8")
    )

    def fields(name: str) -> set[str]:
        kind = schema.get_type(name)
        assert isinstance(kind, graphql.GraphQLObjectType), name
        return set(kind.fields)

    assert {"asGit", "changes"} <= fields("Directory")
    assert {"commit", "ref", "head"} <= fields("GitRepository")
    assert {"commonAncestor", "tree", "commit"} <= fields("GitRef")
    assert {"addedPaths", "modifiedPaths", "removedPaths"} <= fields("Changeset")
    # GitRef.tree clones at depth 1 unless told otherwise: history needs a deeper clone
    git_ref = schema.get_type("GitRef")
    assert isinstance(git_ref, graphql.GraphQLObjectType)
    depth = git_ref.fields["tree"].args["depth"].ast_node
    assert depth is not None and depth.default_value is not None
    assert graphql.print_ast(depth.default_value) == "1"
    # ... from a Directory holding `.git`, which the module's Source never uploads (a new
    # commit would change every function's cache key): so the workflow lists the paths
    assert ".git" in SOURCE_IGNORE


def test_scan_report_since_scans_the_changed_service_and_the_monorepo_only(
    host_files: FakeEngine, tmp_path: Path
) -> None:
    repo = committed_example(tmp_path)
    base = git(repo, "rev-parse", "HEAD")
    (repo / "runner" / "src" / "extra.py").write_text("X = 1\n")
    commit_all(repo)
    answer_versions(host_files)
    host_files.on_exec(
        lambda argv: argv[:2] == ["semgrep", "scan"],
        ExecOutcome(0, '{"results": [], "errors": []}'),
    )
    host_files.on_exec(
        lambda argv: argv[:2] == ["trivy", "fs"], ExecOutcome(0, '{"SchemaVersion": 2}')
    )
    host_files.on_exec(
        lambda argv: argv[0] == "pip-audit", ExecOutcome(0, '{"dependencies": [], "fixes": []}')
    )

    async def run() -> None:
        reports = await module(repo, base, changed_file(repo, base)).scan_report()
        await reports.id()

    call(run)
    written = {
        args["path"]: args["contents"]
        for chain, _ in host_files.leaves
        for _, name, args in chain
        if name == "withNewFile"
    }
    targets = {o["target"] for o in json.loads(written["scan.json"])["outcomes"]}
    assert targets == {"monorepo", "runner"}
    assert not any(argv[:2] == ("pnpm", "audit") for _, argv in scan_views(host_files))
