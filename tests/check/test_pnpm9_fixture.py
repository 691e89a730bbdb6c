"""A pnpm 9 Nuxt app with a `vue-tsc` typecheck script and no `test` script, checked for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_tree
from tests.test_check_e2e import outcomes, planned, run_check
from wormhole_ci.manifest import ServiceKind, load_manifest

pytestmark = pytest.mark.slow
PNPM9 = ROOT / "tests" / "fixtures" / "monorepos" / "pnpm9"


def test_the_kind_and_every_task_come_from_the_project() -> None:
    (app,) = load_manifest(PNPM9).services
    assert app.kind is ServiceKind.NUXT  # inferred from nuxt.config.ts: the manifest has no kind


def test_check_runs_the_projects_typecheck_with_pnpm_9_then_fails_only_on_a_type_error(
    tmp_path: Path,
) -> None:
    root = copy_tree(PNPM9, tmp_path / "pnpm9")
    junit = tmp_path / "clean.xml"
    done = run_check(root, junit)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[app] typecheck started: pnpm run typecheck" in done.stdout  # vue-tsc, not nuxi
    results = outcomes(junit)
    assert (
        set(results)
        == planned(root)
        == {("app", "install"), ("app", "prepare"), ("app", "typecheck")}
    )
    assert set(results.values()) == {"passed"}
    summary = done.stdout[done.stdout.index("app  passed") :].splitlines()
    assert summary[0] == "app  passed  install passed, prepare passed, typecheck passed"
    assert summary[1:5] == [
        "notes:",
        "  app: no `lint` script in package.json, lint skipped",
        "  app: no `format:check` script in package.json, format skipped",
        "  app: no `test` script in package.json, tests skipped",
    ]
    assert summary[-1].startswith("check passed in ")
    install_log = (root / ".wormhole-ci" / "logs" / "app" / "install.log").read_text()
    assert "ERR_PNPM" not in install_log  # pnpm 9 itself, not a newer pnpm on a 9 project

    app = root / "app" / "app.vue"
    app.write_text(app.read_text().replace("ref<string>('pnpm 9')", "ref<number>(9)"))
    junit = tmp_path / "defect.xml"
    done = run_check(root, junit)
    assert done.returncode == 1, done.stdout + done.stderr
    failed = {key for key, status in outcomes(junit).items() if status != "passed"}
    assert failed == {("app", "typecheck")}
    assert "app.vue(7,16): error TS2322: Type 'number' is not assignable to type 'string'." in (
        done.stdout + done.stderr
    )
