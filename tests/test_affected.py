"""Affected selection on real git repositories of the example: native CLI and core."""

from __future__ import annotations

import json
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import committed_example, copy_example, git
from wormhole_ci.affected import Changes, affected_plan, affected_scan, git_changes
from wormhole_ci.cli import main
from wormhole_ci.manifest import load_manifest
from wormhole_ci.security.tasks import scan_plan

EVERY = ["api", "web", "runner", "hasura", "delivery"]


def affected_json(repo: Path, since: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["affected", "--source", str(repo), "--since", since, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return committed_example(tmp_path)


def test_a_web_change_selects_web_only(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = git(repo, "rev-parse", "HEAD")
    page = repo / "web" / "app.vue"
    page.write_text(page.read_text() + "\n<!-- edited -->\n")
    commit_all(repo, "web: edit")
    assert affected_json(repo, base, capsys) == {
        "services": ["web"],
        "reasons": {"web": ["changed web/app.vue"]},
        "base": base,
        "notes": [],
    }


def test_a_new_migration_selects_api_and_hasura(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    migration = repo / "api" / "prisma" / "migrations" / "20990101000000_add_tag" / "migration.sql"
    migration.parent.mkdir(parents=True)
    migration.write_text('ALTER TABLE "Workflow" ADD COLUMN "tag" TEXT;\n')
    commit_all(repo, "api: migration")
    found = affected_json(repo, base, capsys)
    path = "api/prisma/migrations/20990101000000_add_tag/migration.sql"
    assert found["services"] == ["api", "hasura"]
    assert found["reasons"] == {
        "api": [f"changed {path}"],
        "hasura": [f"api's migrations changed: {path}"],
    }


def test_a_manifest_change_selects_every_service(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    manifest = repo / "wormhole-ci.toml"
    manifest.write_text(manifest.read_text() + "\n# edited\n")
    commit_all(repo, "manifest")
    found = affected_json(repo, base, capsys)
    assert found["services"] == EVERY
    assert found["reasons"] == {key: ["manifest wormhole-ci.toml"] for key in EVERY}


def test_a_missing_base_in_a_shallow_clone_selects_every_service_with_a_note(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "web" / "app.vue").write_text("<template><div /></template>\n")
    commit_all(repo, "web")
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)],
        check=True,
        capture_output=True,
    )
    # the base commit really is absent from the shallow clone
    missing = subprocess.run(["git", "-C", str(shallow), "cat-file", "-e", base], check=False)
    assert missing.returncode != 0
    found = affected_json(shallow, base, capsys)
    assert found["services"] == EVERY
    assert found["base"] is None
    (note,) = found["notes"]
    assert isinstance(note, str)
    assert note.startswith(f"base '{base}' is unknown (not in this clone")
    assert note.endswith("every service is selected")
    # the plain listing says it too, on stderr
    assert main(["affected", "--source", str(shallow), "--since", base]) == 0
    out = capsys.readouterr()
    assert f"note: base '{base}' is unknown" in out.err
    assert [line.split("\t")[0] for line in out.out.splitlines()] == EVERY


def test_the_merge_base_is_compared_and_uncommitted_files_count(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main_branch = git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    git(repo, "switch", "-qc", "feature")
    (repo / "web" / "app.vue").write_text("<template><main /></template>\n")
    commit_all(repo, "feature: web")
    git(repo, "switch", "-q", main_branch)
    (repo / "api" / "src" / "extra.ts").write_text("export const extra = 1;\n")
    commit_all(repo, "main: api moved on")
    git(repo, "switch", "-q", "feature")
    # an untracked runner file: the check would run on it, so it counts
    (repo / "runner" / "src" / "new_module.py").parent.mkdir(parents=True, exist_ok=True)
    (repo / "runner" / "src" / "new_module.py").write_text("X = 1\n")
    # our own logs and installed dependencies are not changes
    (repo / ".wormhole-ci" / "logs").mkdir(parents=True)
    (repo / ".wormhole-ci" / "logs" / "api-lint.log").write_text("log\n")
    (repo / "api" / "node_modules").mkdir()
    (repo / "api" / "node_modules" / "x.js").write_text("x\n")
    found = affected_json(repo, main_branch, capsys)
    # api changed on main only: not this branch's change
    assert found["services"] == ["web", "runner"]
    assert found["notes"] == []
    assert found["base"] == git(repo, "merge-base", main_branch, "HEAD")


def test_workflows_and_a_monorepo_in_a_subfolder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = copy_example(tmp_path)  # tmp_path/wormhole inside the repository at tmp_path
    workflow = tmp_path / ".github" / "workflows" / "ci.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text("name: ci\n")
    git(tmp_path, "init", "-q")
    base = commit_all(tmp_path, "repo")
    (tmp_path / "README.md").write_text("outside the monorepo\n")
    (example / "runner" / "README.md").write_text("edited\n")
    commit_all(tmp_path, "runner docs")
    found = affected_json(example, base, capsys)
    assert found["services"] == ["runner"]
    assert found["notes"] == ["1 changed path(s) belong to no service: README.md"]
    workflow.write_text("name: ci\non: push\n")
    commit_all(tmp_path, "workflow")
    found = affected_json(example, base, capsys)
    assert found["services"] == EVERY
    assert found["reasons"]["api"] == ["workflow .github/workflows/ci.yml"]


def test_root_lock_files_select_the_services_of_their_kind(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "uv.lock").write_text("version = 1\n")
    commit_all(repo, "a workspace lock at the root")
    found = affected_plan(load_manifest(repo), git_changes(repo, base))
    assert [s.service for s in found.services] == ["runner"]


def test_the_plan_holds_only_the_affected_services_tasks(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "web" / "app.vue").write_text("<template><p /></template>\n")
    manifest = load_manifest(repo)
    changes = git_changes(repo, base)
    plan = affected_plan(manifest, changes, families=("lint",))
    assert {t.service for t in plan.tasks} == {"web"}
    assert any(t.name == "lint" for t in plan.tasks)
    assert "affected since " + base[:12] + ": web (changed web/app.vue)" in plan.notes
    # scan: web's own audit plus the monorepo-wide scans; nobody else's
    tasks, notes = affected_scan(scan_plan(manifest), manifest, changes)
    assert {t.target for t in tasks} == {"web", "monorepo"}
    assert {"api", "runner"} <= {t.target for t in scan_plan(manifest)}
    assert notes == (f"affected since {base[:12]}: web (changed web/app.vue)",)


def test_a_no_op_check_since_head_runs_nothing_and_passes_fast(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    junit = tmp_path / "junit.xml"
    argv = ["check", "--source", str(repo), "--since", "HEAD", "--log-dir", str(tmp_path)]
    code = main([*argv, "--junit", str(junit)])
    elapsed = time.monotonic() - started
    out = capsys.readouterr()
    assert code == 0
    assert out.out == "check: nothing to run (no service is affected)\n"
    assert "note: affected since" in out.err
    assert not any(tmp_path.glob("*.log"))
    # an empty report for the CI step that uploads it
    suite = ET.parse(junit).getroot()
    assert (suite.tag, list(suite.iter("testcase"))) == ("testsuites", [])
    assert elapsed < 5.0, elapsed  # generous: the bench measures the real target


def test_no_git_means_every_service_with_a_note(example: Path) -> None:
    changes = git_changes(example, "main")
    assert changes == Changes("main", None, (), why_unknown=f"{example} is not in a git work tree")
    plan = affected_plan(load_manifest(example), changes)
    assert [s.service for s in plan.services] == EVERY
    assert plan.notes[0].startswith("base 'main' is unknown")
