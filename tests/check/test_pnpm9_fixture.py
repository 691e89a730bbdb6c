"""A pnpm 9 project with its own `typecheck` script and no `test` script, checked for real."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
PNPM9 = ROOT / "tests" / "fixtures" / "monorepos" / "pnpm9"


def test_check_runs_the_projects_typecheck_with_pnpm_9_and_says_what_it_skipped(
    tmp_path: Path,
) -> None:
    root = Path(shutil.copytree(PNPM9, tmp_path / "pnpm9"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wormhole_ci",
            "check",
            "--source",
            str(root),
            "--progress",
            "plain",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[app] typecheck started: pnpm run typecheck" in done.stdout
    summary = done.stdout[done.stdout.index("app  passed") :].splitlines()
    assert summary[0] == "app  passed  install passed, typecheck passed"
    assert "  app: no `test` script in package.json, tests skipped" in summary
    assert summary[-1].startswith("check passed in ")
    log = (root / ".wormhole-ci" / "logs" / "app" / "install.log").read_text()
    assert "ERR_PNPM" not in log
