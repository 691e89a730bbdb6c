"""The full `scan` of each fixture monorepo (issue 16), with no overrides: every row as it should be."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_tree

pytestmark = pytest.mark.slow
MONOREPOS = ROOT / "tests" / "fixtures" / "monorepos"
# (tool, target) → the statuses it may have here. The registries reachable here answer no
# advisory queries (npm: 405; PyPI's JSON API: absent), so a dependency audit is never
# `clean` unless there is nothing to audit: the uv fixture has no runtime dependencies.
EXPECTED: dict[str, dict[tuple[str, str], set[str]]] = {
    "npm-prisma": {("npm-audit", "api"): {"unavailable", "findings"}},
    "pnpm9": {("pnpm-audit", "app"): {"unavailable", "findings"}},
    "uv-service": {("pip-audit", "greeter"): {"clean"}},
    "hasura-migrations": {},  # metadata and SQL: no packages, no audit row
}
SBOMS = {"npm-prisma": {"api"}, "pnpm9": {"app"}, "uv-service": {"greeter"}}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_full_scan_of_a_fixture_monorepo(name: str, tmp_path: Path) -> None:
    root = copy_tree(MONOREPOS / name, tmp_path / name)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "wormhole_ci", "scan", "--source", str(root)),
            *("--output-dir", str(out), "--allow-unavailable"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "scan.json").read_text())
    rows = {(o["tool"], o["target"]): o for o in report["outcomes"]}
    expected = {("semgrep", "monorepo"): {"clean"}, ("trivy", "monorepo"): {"clean"}}
    expected |= EXPECTED[name]
    assert set(rows) == set(expected)
    for key, statuses in expected.items():
        assert rows[key]["status"] in statuses, rows[key]
        if rows[key]["status"] == "unavailable":  # the registry's own answer, not ours
            assert rows[key]["reason"], rows[key]
    sboms = {p.name.removeprefix("sbom-").removesuffix(".cdx.json") for p in out.glob("sbom-*")}
    assert sboms == SBOMS.get(name, set())
    for service in sboms:
        sbom = json.loads((out / f"sbom-{service}.cdx.json").read_text())
        assert sbom["bomFormat"] == "CycloneDX"
    assert done.stdout.rstrip().splitlines()[-1] == "scan passed"
