"""Benchmark `wormhole-ci check` on the example: cold vs warm, `--jobs 1` vs default.

Runs, on one fresh copy of the example with an empty cache directory:
  cold              empty pnpm store, uv cache and result cache; nothing installed
  warm              the same again: installs are warm and unchanged tasks' passes reused
  warm, api edited  one api source file changed: only api's tasks run
  warm, no-cache    every task executed (`--no-cache`) with warm installs, jobs = cores
  ... jobs=1        the same, one task at a time
Prints wall time, the longest single service chain, the sum of task times divided by the
jobs, and the ratio of wall time to max(longest chain, sum / jobs): how close the
scheduler gets to the best any scheduler could do with these task times.
  affected, no-op   `check --since HEAD` on a clean commit: nothing to run (best of 3)
  affected, web     one web file edited, `check --since HEAD`: only web's tasks run
Targets: that ratio <= 1.15 for the parallel run that executes every task,
warm <= 0.5 x cold, the no-op affected check <= 0.3 s wall (the CLI process, interpreter
start-up and imports included; the selection alone, in-process, is reported beside it),
and the one-service change running no other service's task.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from wormhole_ci.affected import affected_plan, git_changes
from wormhole_ci.manifest import load_manifest
from wormhole_ci.paths import GENERATED_DIRS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "wormhole"
IGNORE = shutil.ignore_patterns(*GENERATED_DIRS, ".env")


@dataclass(frozen=True)
class Run:
    label: str
    jobs: int
    wall: float
    tasks: dict[tuple[str, str], float]

    @property
    def chains(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (service, _), seconds in self.tasks.items():
            out[service] = out.get(service, 0.0) + seconds
        return out

    @property
    def longest_chain(self) -> float:
        return max(self.chains.values())

    @property
    def per_core(self) -> float:
        return sum(self.tasks.values()) / self.jobs

    @property
    def ratio(self) -> float:
        return self.wall / max(self.longest_chain, self.per_core)


def run(label: str, source: Path, cache: Path, jobs: int, reports: Path, *extra: str) -> Run:
    junit = reports / f"{label.replace(' ', '-').replace(',', '').replace('.', '')}.xml"
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wormhole_ci",
            "check",
            "--source",
            str(source),
            "--cache-dir",
            str(cache),
            "--jobs",
            str(jobs),
            "--junit",
            str(junit),
            "--progress",
            "plain",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{label}: check failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    tasks = {
        (case.get("classname") or "", case.get("name") or ""): float(case.get("time") or 0)
        for case in ET.parse(junit).getroot().iter("testcase")
        if "cached:" not in (case.findtext("system-out") or "")
    }
    return Run(label, jobs, wall, tasks)


def git(source: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.email=bench@localhost",
            "-c",
            "user.name=bench",
            "-C",
            str(source),
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()


def commit_all(source: Path) -> None:
    git(source, "add", "-A")
    git(source, "commit", "-qm", "bench", "--allow-empty")


def noop_affected(source: Path, cache: Path) -> tuple[float, float]:
    """Best of 3: the CLI process's wall time, and the selection alone in-process."""
    cli: list[float] = []
    selection: list[float] = []
    for _ in range(3):
        started = time.monotonic()
        done = subprocess.run(
            [
                *(sys.executable, "-m", "wormhole_ci", "check", "--source", str(source)),
                *("--cache-dir", str(cache), "--since", "HEAD", "--progress", "plain"),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        cli.append(time.monotonic() - started)
        if done.returncode != 0 or "nothing to run" not in done.stdout:
            sys.exit(f"no-op affected check: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
        started = time.monotonic()
        plan = affected_plan(load_manifest(source), git_changes(source, "HEAD"))
        selection.append(time.monotonic() - started)
        if plan.services:
            sys.exit(f"no-op affected check planned {[s.service for s in plan.services]}")
    return min(cli), min(selection)


def services_run(junit: Path) -> set[str]:
    """Every service with a test case in the report (reused results included)."""
    return {case.get("classname") or "" for case in ET.parse(junit).getroot().iter("testcase")}


def affected_only(source: Path, cores: int, reports: Path) -> int:
    """The affected rows alone: the no-op, then one web edit (no cold run first)."""
    cache = Path.home() / ".cache" / "wormhole-ci"
    noop_cli, noop_selection = noop_affected(source, cache)
    page = source / "web" / "app.vue"
    page.write_text(page.read_text() + "\n<!-- bench edit -->\n")
    web = run("affected, web", source, cache, cores, reports, "--since", "HEAD")
    services = services_run(reports / "affected-web.xml")
    print(f"{'run':<18} {'tasks run':>9} {'wall s':>7}")
    print(f"{'affected, no-op':<18} {0:>9} {noop_cli:>7.2f}")
    print(f"{web.label:<18} {len(web.tasks):>9} {web.wall:>7.1f}")
    print(f"affected no-op, CLI process wall: {noop_cli:.3f} s (target <= 0.3)")
    print(f"affected no-op, selection:        {noop_selection:.3f} s (in-process)")
    print(f"affected, web edited:             services run {sorted(services)} (target: web only)")
    ok = noop_cli <= 0.3 and services == {"web"}
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument(
        "--affected-only",
        action="store_true",
        help="only the two affected rows, on the user's cache (~/.cache/wormhole-ci): a quick look",
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="wormhole-ci-bench-"))
    try:
        source = work / "wormhole"
        shutil.copytree(EXAMPLE, source, ignore=IGNORE)
        # a repository of its own for `--since`; installs, builds and logs stay out of it
        git(source, "init", "-q")
        (source / ".git" / "info" / "exclude").write_text("\n".join(GENERATED_DIRS) + "\n")
        commit_all(source)
        cache, reports = work / "cache", work / "reports"
        reports.mkdir()
        if args.affected_only:
            return affected_only(source, cores, reports)
        print(f"example copied to {source}; empty cache {cache}; {cores} cores", flush=True)
        runs = [
            run("cold", source, cache, cores, reports),
            run("warm", source, cache, cores, reports),
        ]
        edited = source / "api" / "src" / "slug.ts"
        edited.write_text(edited.read_text() + "\nexport const benchEdit = 1;\n")
        runs.append(run("warm, api edited", source, cache, cores, reports))
        runs.append(run("warm, no-cache", source, cache, cores, reports, "--no-cache"))
        runs.append(run("... jobs=1", source, cache, 1, reports, "--no-cache"))
        commit_all(source)  # the api edit above: HEAD is the tree the caches hold
        noop_cli, noop_selection = noop_affected(source, cache)
        page = source / "web" / "app.vue"
        page.write_text(page.read_text() + "\n<!-- bench edit -->\n")
        runs.append(run("affected, web", source, cache, cores, reports, "--since", "HEAD"))
        web_services = services_run(reports / "affected-web.xml")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    header = (
        f"{'run':<18} {'jobs':>4} {'tasks run':>9} {'wall s':>7} {'longest chain s':>15} "
        f"{'sum/jobs s':>10} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        if r.tasks:
            print(
                f"{r.label:<18} {r.jobs:>4} {len(r.tasks):>9} {r.wall:>7.1f} {r.longest_chain:>15.1f} "
                f"{r.per_core:>10.1f} {r.ratio:>6.2f}"
            )
        else:
            print(f"{r.label:<18} {r.jobs:>4} {0:>9} {r.wall:>7.1f} {'-':>15} {'-':>10} {'-':>6}")
    # the no-op affected check as a row: CLI process wall, 2 decimals (it is sub-second)
    print(
        f"{'affected, no-op':<18} {cores:>4} {0:>9} {noop_cli:>7.2f} {'-':>15} {'-':>10} {'-':>6}"
    )
    cold, warm, edited_run, full, serial, affected_web = runs
    print()
    print(
        "per-service chains (no-cache):", ", ".join(f"{k} {v:.1f}s" for k, v in full.chains.items())
    )
    print(f"warm / cold wall:                 {warm.wall / cold.wall:.2f}   (target <= 0.50)")
    print(f"warm, api edited / cold wall:     {edited_run.wall / cold.wall:.2f}")
    print(f"warm no-cache / cold wall:        {full.wall / cold.wall:.2f}   (every task executed)")
    print(f"no-cache ratio to lower bound:    {full.ratio:.2f}   (target <= 1.15)")
    print(f"speed-up of jobs={cores} over jobs=1:    {serial.wall / full.wall:.2f}x")
    print(f"affected no-op, CLI process wall: {noop_cli:.3f} s (target <= 0.3)")
    print(f"affected no-op, selection:        {noop_selection:.3f} s (in-process)")
    print(
        f"affected, web edited:             services run {sorted(web_services)}, "
        f"{len(affected_web.tasks)} task(s) executed (target: web only)"
    )
    ok = (
        warm.wall <= 0.5 * cold.wall
        and full.ratio <= 1.15
        and noop_cli <= 0.3
        and web_services == {"web"}
    )
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
