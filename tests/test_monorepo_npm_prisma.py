"""The npm + jest + Prisma fixture monorepo (issue 16), checked and scanned with no task overrides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_tree
from tests.test_check_e2e import outcomes, planned, run_check

pytestmark = pytest.mark.slow
NPM_PRISMA = Path(__file__).parent / "fixtures" / "monorepos" / "npm-prisma"


def test_check_passes_by_convention_then_fails_exactly_the_defective_test(
    tmp_path: Path,
) -> None:
    root = copy_tree(NPM_PRISMA, tmp_path / "npm-prisma")
    junit = tmp_path / "clean.xml"
    done = run_check(root, junit)
    assert done.returncode == 0, done.stdout + done.stderr
    results = outcomes(junit)
    # prisma generate from package.json's `prisma.schema`: the type check needs its client
    assert (
        set(results)
        == planned(root)
        == {
            ("api", "install"),
            ("api", "prepare"),
            ("api", "typecheck"),
            ("api", "test"),
        }
    )
    assert set(results.values()) == {"passed"}

    users = root / "api" / "src" / "users.js"
    users.write_text(users.read_text().replace(".trim().toLowerCase()", ".trim()"))
    junit = tmp_path / "defect.xml"
    done = run_check(root, junit)
    assert done.returncode == 1, done.stdout + done.stderr
    failed = {key for key, status in outcomes(junit).items() if status != "passed"}
    assert failed == {("api", "test")}
    assert "a new user's email is trimmed and lower-cased" in done.stdout + done.stderr


def test_npm_audit_row_is_never_clean_when_the_registry_cannot_answer(tmp_path: Path) -> None:
    root = copy_tree(NPM_PRISMA, tmp_path / "npm-prisma")
    (root / "legacy").mkdir()
    (root / "legacy" / "package.json").write_text("{}\n")
    (root / "legacy" / "yarn.lock").write_text("")
    manifest = root / "wormhole-ci.toml"
    manifest.write_text(
        manifest.read_text() + '\n[services.legacy]\nkind = "node"\npath = "legacy"\n'
    )
    out = tmp_path / "scan"
    # the one registry contact in the tests: npm audit's real request, bounded by the timeout
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wormhole_ci",
            "scan",
            "--source",
            str(root),
            "--output-dir",
            str(out),
            "--only",
            "audit",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads((out / "scan.json").read_text())
    rows = {(o["tool"], o["target"]): o for o in report["outcomes"]}
    assert set(rows) == {("npm-audit", "api"), ("audit", "legacy")}
    npm = rows[("npm-audit", "api")]
    assert npm["status"] in {"unavailable", "findings"}, npm  # here: the registry's 405
    if npm["status"] == "unavailable":
        assert npm["reason"].startswith("the registry's audit endpoint refused or failed: ")
    assert rows[("audit", "legacy")]["status"] == "unavailable"
    assert "no auditor for yarn" in rows[("audit", "legacy")]["reason"]
    assert done.returncode == 1, done.stdout + done.stderr  # fails closed
