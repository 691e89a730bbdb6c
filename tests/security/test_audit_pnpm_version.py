"""pnpm audit runs with the project's pnpm (issue 16), provisioned or `unavailable` with why."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.conftest import ROOT, copy_example
from wormhole_ci.containers import scanner_spec
from wormhole_ci.manifest import load_manifest
from wormhole_ci.plan import build_plan
from wormhole_ci.security.model import Status
from wormhole_ci.security.parsers.common import services_by_path
from wormhole_ci.security.runner import NativeScanner
from wormhole_ci.security.scan import provision_target_versions
from wormhole_ci.security.tasks import Family, ScanTask, ScanTool, rules_dir, scan_plan
from wormhole_ci.toolchains import PNPM_VERSION, HostTools

PNPM9 = ROOT / "tests" / "fixtures" / "monorepos" / "pnpm9"
RECORDED = ROOT / "tests" / "security" / "fixtures" / "pnpm-audit" / "pnpm_9_bad_response.json"
AUDIT = frozenset({Family.AUDIT})
SERVICE_OF = services_by_path({"app": "app"})


def audit_task(root: Path) -> ScanTask:
    (task,) = (t for t in scan_plan(load_manifest(root), AUDIT) if t.tool is ScanTool.PNPM_AUDIT)
    return task


def pnpm9_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(PNPM9, tmp_path / "pnpm9"))


def test_a_pnpm_9_project_is_audited_by_pnpm_9() -> None:
    task = audit_task(PNPM9)
    assert (task.tool_version, task.executable, task.argv) == (
        "9.15.0",
        "pnpm@9.15.0",
        ("pnpm", "audit", "--json"),
    )
    # the Dagger runtime activates the same pnpm with corepack
    assert ("corepack", "prepare", "pnpm@9.15.0", "--activate") in scanner_spec(
        task.tool, task.env, task.tool_version
    ).toolchain


@pytest.mark.parametrize(
    ("lockfile_version", "pnpm"),
    # 9.0 is written by pnpm 9 and every pnpm since: without packageManager it means the pin
    [("'9.0'", ""), ("'6.0'", "8.15.9"), ("5.4", "7.33.7"), ("'99.0'", "")],
)
def test_without_package_manager_the_lock_file_decides_for_install_and_audit_alike(
    tmp_path: Path, lockfile_version: str, pnpm: str
) -> None:
    root = pnpm9_copy(tmp_path)
    package = root / "app" / "package.json"
    data = json.loads(package.read_text())
    del data["packageManager"]
    package.write_text(json.dumps(data))
    lock = root / "app" / "pnpm-lock.yaml"
    lock.write_text(lock.read_text().replace("'9.0'", lockfile_version, 1))
    assert audit_task(root).tool_version == pnpm  # "": the scanner's pin
    (install,) = (t for t in build_plan(load_manifest(root)).tasks if t.name == "install")
    assert install.tool_version == (pnpm or PNPM_VERSION)


def test_the_examples_pinned_pnpm_needs_no_second_pnpm(tmp_path: Path) -> None:
    tasks = scan_plan(load_manifest(copy_example(tmp_path / "example")), AUDIT)
    assert [t.executable for t in tasks if t.tool is ScanTool.PNPM_AUDIT] == ["pnpm", "pnpm"]


def scanner(
    root: Path, host: HostTools, unavailable: dict[str, str] | None = None
) -> NativeScanner:
    return NativeScanner(
        root,
        host,
        rules=rules_dir(),
        out=root / "out",
        versions={"pnpm": "12.4.2"},
        jobs=1,
        unavailable=unavailable,
    )


def test_the_task_runs_the_projects_pnpm_not_the_pin(tmp_path: Path) -> None:
    root = pnpm9_copy(tmp_path)
    fake = tmp_path / "fake-pnpm-9"
    fake.write_text(f"#!/bin/sh\ncat {RECORDED}\nexit 1\n")
    fake.chmod(0o755)
    host = HostTools({"pnpm": ("/bin/false",), "pnpm@9.15.0": (str(fake),)})
    task = audit_task(root)
    run = anyio.run(scanner(root, host).run, (task,), SERVICE_OF)
    (outcome,) = run.outcomes
    assert (outcome.status, outcome.tool_version) == (Status.UNAVAILABLE, "9.15.0")
    assert "responded with 405" in outcome.reason


def test_a_pnpm_that_cannot_be_provisioned_makes_the_row_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    node = bin_dir / "node"  # Node 20 present, npm (the installer) absent
    node.write_text("#!/bin/sh\necho v20.19.0\n")
    node.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    task = audit_task(PNPM9)
    host, unavailable = provision_target_versions((task,), HostTools({}), tmp_path / "cache")
    assert "pnpm@9.15.0" not in host.executables
    reason = unavailable["pnpm@9.15.0"]
    assert reason.startswith("pnpm 9.15.0 (the project's): pnpm 9.15.0 is needed by app")
    assert "npm is not on PATH" in reason
    run = anyio.run(scanner(PNPM9, host, unavailable).run, (task,), SERVICE_OF)
    (outcome,) = run.outcomes
    assert (outcome.status, outcome.reason) == (Status.UNAVAILABLE, reason)


@pytest.mark.slow
def test_real_scan_of_a_pnpm_9_project(tmp_path: Path) -> None:
    """One real `scan --only audit`: pnpm 9.15.0 from npm, the registry's refusal as the row."""
    root = pnpm9_copy(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wormhole_ci",
            "scan",
            "--source",
            str(root),
            "--only",
            "audit",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads((tmp_path / "out" / "scan.json").read_text())
    (row,) = [o for o in report["outcomes"] if o["tool"] == "pnpm-audit"]
    assert row["target"] == "app"
    assert row["tool_version"] == "9.15.0"
    assert row["status"] != "clean"
    assert "config dependency" not in row["reason"]
    assert row["status"] == "unavailable", row["reason"]
    assert "ERR_PNPM_AUDIT_BAD_RESPONSE" in row["reason"]
    assert done.returncode == 1, done.stderr  # unavailable fails closed
