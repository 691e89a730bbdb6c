"""`scan` end to end, natively: provision the scanners, run the plan, apply the policy, write reports."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import anyio

from wormhole_ci.manifest import Manifest
from wormhole_ci.security.model import Outcome
from wormhole_ci.security.parsers.common import services_by_path
from wormhole_ci.security.policy import FailOn, Verdict, evaluate
from wormhole_ci.security.runner import BINARY, NativeScanner
from wormhole_ci.security.tasks import OFFLINE_ENV, Family, image_scan, rules_dir, scan_plan
from wormhole_ci.security.writers.jsonreport import write_json
from wormhole_ci.security.writers.markdown import write_markdown
from wormhole_ci.security.writers.sarif import write_sarif
from wormhole_ci.toolchains import PNPM_VERSION, UV_VERSION, HostTools, Provisioner


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


@dataclass(frozen=True)
class ScanResult:
    """The verdict and every file written."""

    verdict: Verdict
    reports: tuple[Path, ...]
    artifacts: tuple[Path, ...]


def provision_scanners(
    tools: set[str], cache_dir: Path
) -> tuple[HostTools, dict[str, str], list[str]]:
    """Executables and versions of the scanners the plan needs."""
    provisioner = Provisioner(cache_dir)
    pins = {"pnpm": PNPM_VERSION, "uv": UV_VERSION}
    binaries: set[str] = {BINARY[t] for t in tools}
    if "pip-audit" in tools:
        binaries.add("uv")  # exports the locked requirements
    host = provisioner.provision(
        ((b, pins.get(b, "")) for b in sorted(binaries)), {b: ["scan"] for b in binaries}
    )
    versions = {b: tool_version(host, b) for b in binaries}
    return host, versions, provisioner.messages


def tool_version(host: HostTools, binary: str) -> str:
    """The scanner's own version line (printed in every report)."""
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
    text = (done.stdout or done.stderr).strip()
    for line in text.splitlines():
        if line.lower().startswith("version:"):  # trivy: "Version: 0.76.0"
            return line.split(":", 1)[1].strip()
    first = text.splitlines()[0] if text else ""
    return first.removeprefix(f"{binary} ").strip()


def run_scan(manifest: Manifest, options: ScanOptions) -> ScanResult:
    """Scan, judge and write the reports; never raises for findings or failed scanners."""
    tasks = scan_plan(manifest, options.families) + tuple(
        image_scan(str(tarball.resolve()), name) for name, tarball in options.images
    )
    tools = {t.tool for t in tasks}
    host, versions, _ = provision_scanners(tools, options.cache_dir)
    scanner = NativeScanner(
        manifest.root,
        host,
        rules=rules_dir(),
        out=options.output_dir,
        versions=versions,
        jobs=options.jobs,
    )
    service_of = services_by_path({s.name: s.path for s in manifest.services})
    run = anyio.run(scanner.run, tasks, service_of)
    verdict = judge(list(run.outcomes), manifest, options)
    return ScanResult(verdict, write_reports(verdict, options.output_dir), run.artifacts)


def judge(outcomes: list[Outcome], manifest: Manifest, options: ScanOptions) -> Verdict:
    """The policy over the outcomes with the manifest's waivers."""
    return evaluate(
        outcomes,
        manifest.security.ignore,
        options.fail_on,
        allow_unavailable=options.allow_unavailable,
        today=options.today,
    )


def render_reports(verdict: Verdict) -> dict[str, str]:
    """Report file name → content (SARIF, Markdown, JSON); both runtimes write these."""
    return {
        "scan.sarif": write_sarif(verdict),
        "scan.md": write_markdown(verdict),
        "scan.json": write_json(verdict),
    }


def write_reports(verdict: Verdict, out: Path) -> tuple[Path, ...]:
    """SARIF, Markdown and JSON next to each other."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in render_reports(verdict).items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return tuple(written)
