"""`scan` end to end, natively: provision the scanners, run the plan, apply the policy, write reports."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import anyio

from wormhole_ci.affected import Changes, affected_scan
from wormhole_ci.errors import ProvisionError
from wormhole_ci.manifest import Manifest
from wormhole_ci.security.parsers.common import services_by_path
from wormhole_ci.security.policy import FailOn, Verdict
from wormhole_ci.security.runner import NativeScanner
from wormhole_ci.security.scanners import SCANNERS, version_from_output
from wormhole_ci.security.tasks import (
    OFFLINE_ENV,
    Family,
    ScanTask,
    ScanTool,
    image_scan,
    rules_dir,
    scan_plan,
)
from wormhole_ci.security.wrapup import conclude, render_reports
from wormhole_ci.toolchains import HostTools, Provisioner


@dataclass(frozen=True)
class ScanOptions:
    """How to scan and judge."""

    fail_on: FailOn
    allow_unavailable: bool
    output_dir: Path
    families: frozenset[Family]
    jobs: int
    cache_dir: Path
    today: dt.date
    images: tuple[tuple[str, Path], ...] = ()
    """(name, tarball) of built images to CVE-scan with Trivy."""
    changes: Changes | None = None
    """`--since`: only the scans of the services these changes affect (None: every scan)."""


@dataclass(frozen=True)
class ScanResult:
    """The verdict and every file written."""

    verdict: Verdict
    reports: tuple[Path, ...]
    artifacts: tuple[Path, ...]


def provision_scanners(
    tools: Iterable[str], cache_dir: Path
) -> tuple[HostTools, dict[str, str], list[str]]:
    """Executables and versions (by binary) of the scanners `tools` name."""
    provisioner = Provisioner(cache_dir)
    # a row that never runs (no auditor for the ecosystem) has no binary to provision
    scanners = [s for s in (SCANNERS[ScanTool(t)] for t in tools) if s.binary]
    binaries = {(s.binary, s.pin) for s in scanners} | {n for s in scanners for n in s.needs}
    host = provisioner.provision(sorted(binaries), {b: ["scan"] for b, _ in binaries})
    versions = {b: tool_version(host, b) for b, _ in binaries}
    return host, versions, provisioner.messages


def provision_target_versions(
    tasks: Iterable[ScanTask], host: HostTools, cache_dir: Path
) -> tuple[HostTools, dict[str, str]]:
    """`host` plus each target's own scanner version (`pnpm@9.15.9`), and why any could not be.

    A version that cannot be provisioned is no reason to stop the other scans: its
    targets' rows become `unavailable` with the provisioner's reason.
    """
    executables = dict(host.executables)
    unavailable: dict[str, str] = {}
    for task in tasks:
        name = task.executable
        if not task.tool_version or name in executables or name in unavailable:
            continue
        binary = SCANNERS[task.tool].binary
        try:
            provisioned = Provisioner(cache_dir).provision(
                [(binary, task.tool_version)], {binary: [task.target]}
            )
        except ProvisionError as exc:
            unavailable[name] = f"{binary} {task.tool_version} (the project's): {exc}"
            continue
        executables[name] = provisioned.executables[binary]
    return HostTools(executables), unavailable


def tool_version(host: HostTools, binary: str) -> str:
    """The scanner's own version (printed in every report); "" when it cannot say."""
    try:
        done = subprocess.run(
            host.resolve((binary, "--version")),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, **dict(OFFLINE_ENV)},
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return version_from_output(binary, done.stdout or done.stderr)


def run_scan(manifest: Manifest, options: ScanOptions) -> ScanResult:
    """Scan, judge and write the reports; never raises for findings or failed scanners."""
    planned, _ = affected_scan(scan_plan(manifest, options.families), manifest, options.changes)
    tasks = planned + tuple(
        image_scan(str(tarball.resolve()), name) for name, tarball in options.images
    )
    host, versions, _ = provision_scanners({t.tool for t in tasks}, options.cache_dir)
    host, unavailable = provision_target_versions(tasks, host, options.cache_dir)
    scanner = NativeScanner(
        manifest.root,
        host,
        rules=rules_dir(),
        out=options.output_dir,
        versions=versions,
        jobs=options.jobs,
        unavailable=unavailable,
    )
    service_of = services_by_path({s.name: s.path for s in manifest.services})
    run = anyio.run(scanner.run, tasks, service_of)
    verdict = conclude(
        tasks,
        run.outcomes,
        manifest,
        options.fail_on,
        allow_unavailable=options.allow_unavailable,
        today=options.today,
    )
    return ScanResult(verdict, write_reports(verdict, options.output_dir), run.artifacts)


def write_reports(verdict: Verdict, out: Path) -> tuple[Path, ...]:
    """SARIF, Markdown and JSON next to each other."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in render_reports(verdict).items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return tuple(written)
