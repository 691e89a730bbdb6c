"""The uv-service fixture monorepo: `wormhole-ci check` with no task overrides passes every task."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "monorepos" / "uv-service"

pytestmark = pytest.mark.slow


def test_uv_service_passes_every_conventional_task(tmp_path: Path) -> None:
    root = Path(shutil.copytree(FIXTURE, tmp_path / "uv-service"))
    junit = tmp_path / "junit.xml"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "wormhole_ci", "check", "--source", str(root)),
            *("--junit", str(junit), "--progress", "plain", "--no-cache"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
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
