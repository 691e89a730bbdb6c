"""The uv-service fixture monorepo: `check` with no task overrides passes, or fails only for the code."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "monorepos" / "uv-service"

pytestmark = pytest.mark.slow


def check(root: Path, junit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "wormhole_ci", "check", "--source", str(root)),
            *("--junit", str(junit), "--progress", "plain", "--no-cache"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_uv_service_passes_every_conventional_task_then_fails_only_the_type_check(
    tmp_path: Path,
) -> None:
    root = Path(shutil.copytree(FIXTURE, tmp_path / "uv-service"))
    junit = tmp_path / "junit.xml"
    done = check(root, junit)
    assert done.returncode == 0, done.stdout + done.stderr
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("greeter", task) for task in ("install", "lint", "format", "typecheck", "test")
    ]
    unpassed = [
        c.get("name")
        for c in cases
        for tag in ("failure", "error", "skipped")
        if c.find(tag) is not None
    ]
    assert unpassed == [], done.stdout

    # a wrong annotation: the code still runs (pytest passes), pyright names the line
    module = root / "greeter" / "src" / "greeter" / "__init__.py"
    module.write_text(
        module.read_text().replace(
            "excited: bool = False) -> str:", "excited: bool = False) -> int:"
        )
    )
    done = check(root, junit)
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [
        c.get("name")
        for c in ET.parse(junit).getroot().iter("testcase")
        if c.find("failure") is not None
    ]
    assert failed == ["typecheck"], done.stdout
    assert 'is not assignable to return type "int"' in done.stdout + done.stderr
