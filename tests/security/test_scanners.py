"""The scanner table, the container specs read from it, and the scan wrap-up both runtimes share."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path

import pytest

from tests.conftest import copy_example, copy_tree
from wormhole_ci.containers import NODE_IMAGE, PYTHON_IMAGE, REQUIREMENTS_PATH, scanner_spec
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.manifest import load_manifest
from wormhole_ci.security.model import Outcome, Status
from wormhole_ci.security.parsers.common import RawRun
from wormhole_ci.security.policy import FailOn
from wormhole_ci.security.scanners import SCANNERS, version_from_output
from wormhole_ci.security.tasks import Family, ScanTask, ScanTool, scan_plan
from wormhole_ci.security.wrapup import conclude, fail_on_level, failure, reported
from wormhole_ci.toolchains import PNPM_VERSION, UV_VERSION


def test_one_entry_per_tool_and_every_requirements_file_ships() -> None:
    assert set(SCANNERS) == set(ScanTool)
    requirements = resources.files("wormhole_ci.security") / "requirements"
    for tool, scanner in SCANNERS.items():
        assert scanner.tool is tool
        if scanner.requirements:
            assert (requirements / scanner.requirements).is_file(), tool


@pytest.mark.parametrize(
    ("binary", "output", "version"),
    [
        ("trivy", "Version: 0.76.0\nVulnerability DB:\n  Version: 2\n", "0.76.0"),
        ("pip-audit", "pip-audit 2.9.0\n", "2.9.0"),
        ("semgrep", "1.185.0\n", "1.185.0"),
        ("pnpm", "12.4.2", "12.4.2"),
        ("semgrep", "", ""),
    ],
)
def test_version_from_output(binary: str, output: str, version: str) -> None:
    assert version_from_output(binary, output) == version


def test_container_specs_follow_the_table() -> None:
    env = (("A", "1"),)
    pnpm = scanner_spec(ScanTool.PNPM_AUDIT, env)
    assert (pnpm.image, pnpm.requirements, pnpm.caches, pnpm.rules) == (NODE_IMAGE, "", (), False)
    assert ("corepack", "prepare", f"pnpm@{PNPM_VERSION}", "--activate") in pnpm.toolchain
    assert pnpm.env[-1] == ("A", "1")

    pip_audit = scanner_spec(ScanTool.PIP_AUDIT, ())
    assert (pip_audit.image, pip_audit.requirements) == (PYTHON_IMAGE, "pip-audit.txt")
    assert pip_audit.toolchain[0][-3:] == ("--require-hashes", "-r", REQUIREMENTS_PATH)
    assert pip_audit.toolchain[1][-1] == f"uv=={UV_VERSION}"

    for tool in (ScanTool.TRIVY, ScanTool.TRIVY_SBOM):
        trivy = scanner_spec(tool, ())
        assert trivy.requirements == "trivy.txt"
        assert [(c.volume, c.env) for c in trivy.caches] == [
            ("wormhole-ci-trivy-db", "TRIVY_CACHE_DIR")
        ]
        assert ("TRIVY_CACHE_DIR", trivy.caches[0].path) in trivy.env

    assert scanner_spec(ScanTool.SEMGREP, ()).rules
    assert not any(scanner_spec(t, ()).rules for t in ScanTool if t is not ScanTool.SEMGREP)


def sbom_task() -> ScanTask:
    return ScanTask(ScanTool.TRIVY_SBOM, "api", Family.SBOM, "api", ("trivy",), artifact="x.json")


def test_an_sbom_is_clean_when_written_and_an_error_when_not() -> None:
    parse = SCANNERS[ScanTool.TRIVY_SBOM].parse
    written = parse(sbom_task(), RawRun(0, "", "", "0.76.0"), lambda _: "")
    assert (written.status, written.tool, written.tool_version) == (
        Status.CLEAN,
        "trivy-sbom",
        "0.76.0",
    )
    failed = parse(sbom_task(), RawRun(1, "", "FATAL cannot write\n"), lambda _: "")
    assert (failed.status, failed.reason) == (Status.ERROR, "FATAL cannot write")


def test_wrap_up_drops_written_sboms_and_judges_the_rest(tmp_path: Path) -> None:
    manifest = load_manifest(copy_example(tmp_path))
    tasks = (*scan_plan(manifest, frozenset({Family.SAST})), sbom_task(), sbom_task())
    outcomes = [
        *(Outcome.of(t.tool.value, t.target, []) for t in tasks[:-2]),
        Outcome.of("trivy-sbom", "api", []),
        Outcome.error("trivy-sbom", "web", "disk full"),
    ]
    assert reported(tasks, outcomes) == [*outcomes[:-2], outcomes[-1]]
    verdict = conclude(
        tasks, outcomes, manifest, FailOn.HIGH, allow_unavailable=False, today=dt.date(2026, 1, 1)
    )
    assert not verdict.passed
    assert failure(verdict).startswith("scan failed: trivy-sbom on web error: disk full")
    with pytest.raises(ValueError, match="1 outcomes for 2 scan tasks"):
        reported(tasks[:2], outcomes[:1])


def test_fail_on_defaults_to_the_manifest_and_names_the_choices(tmp_path: Path) -> None:
    manifest = load_manifest(copy_example(tmp_path))
    assert fail_on_level(None, manifest) is FailOn(manifest.security.fail_on)
    assert fail_on_level("critical", manifest) is FailOn.CRITICAL
    with pytest.raises(WormholeCiError, match=r"--fail-on 'severe': use one of critical, high"):
        fail_on_level("severe", manifest)


NPM_PRISMA = Path(__file__).parents[1] / "fixtures" / "monorepos" / "npm-prisma"


def with_node_services(root: Path) -> Path:
    """The npm fixture plus a yarn service and a node service with no lock file."""
    for name, files in (("legacy", ("package.json", "yarn.lock")), ("bare", ("package.json",))):
        (root / name).mkdir()
        for file in files:
            (root / name / file).write_text("{}\n" if file == "package.json" else "")
    manifest = root / "wormhole-ci.toml"
    manifest.write_text(
        manifest.read_text()
        + '\n[services.legacy]\nkind = "node"\npath = "legacy"\n'
        + '\n[services.bare]\nkind = "nuxt"\npath = "bare"\n'
    )
    return root


def test_every_node_service_has_an_audit_row(tmp_path: Path) -> None:
    root = with_node_services(copy_tree(NPM_PRISMA, tmp_path / "npm-prisma"))
    manifest = load_manifest(root)
    tasks = scan_plan(manifest, frozenset({Family.AUDIT}))
    assert [(t.tool, t.target, t.argv, t.manifest) for t in tasks] == [
        (
            ScanTool.NPM_AUDIT,
            "api",
            ("npm", "audit", "--json", "--package-lock-only"),
            "api/package-lock.json",
        ),
        (ScanTool.UNAUDITED, "legacy", (), "legacy/yarn.lock"),
        (ScanTool.UNAUDITED, "bare", (), ""),
    ]
    outcomes = [SCANNERS[t.tool].parse(t, RawRun(None, ""), lambda _: "") for t in tasks[1:]]
    assert [(o.tool, o.status, o.reason) for o in outcomes] == [
        (
            "audit",
            Status.UNAVAILABLE,
            "legacy/yarn.lock: wormhole-ci has no auditor for yarn; audit it with yarn's own "
            "tool, or accept the gap with --allow-unavailable",
        ),
        (
            "audit",
            Status.UNAVAILABLE,
            "bare/: no lock file (pnpm-lock.yaml, package-lock.json), so nothing pins what "
            "would be audited; commit the lock file",
        ),
    ]
    today = dt.date(2026, 12, 1)
    strict = conclude(
        tasks[1:], outcomes, manifest, FailOn.HIGH, allow_unavailable=False, today=today
    )
    allowed = conclude(
        tasks[1:], outcomes, manifest, FailOn.HIGH, allow_unavailable=True, today=today
    )
    assert (strict.passed, allowed.passed) == (False, True)


def test_npm_audit_runs_in_node_image_without_corepack() -> None:
    npm = scanner_spec(ScanTool.NPM_AUDIT, ())
    assert (npm.image, npm.requirements, npm.toolchain) == (NODE_IMAGE, "", ())
    assert SCANNERS[ScanTool.NPM_AUDIT].version("11.19.1\n") == "11.19.1"
