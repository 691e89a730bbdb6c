"""`wormhole-ci check` end to end on copies of the example, with the real toolchains.

Defects in separate services and tasks: the run exits non-zero, names exactly the failing
services and tasks, and every other task of every service still runs and passes (siblings
are never cancelled).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from wormhole_ci.manifest import load_manifest
from wormhole_ci.plan import build_plan

pytestmark = pytest.mark.slow


def run_check(
    root: Path, junit: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`wormhole-ci check` on `root` with plain progress and a JUnit report; `--no-cache`
    unless `extra` names a cache dir (tests of result reuse)."""
    cache = () if "--cache-dir" in extra else ("--no-cache",)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "wormhole_ci",
            "check",
            "--source",
            str(root),
            "--junit",
            str(junit),
            "--progress",
            "plain",
            *cache,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env=env,
    )


def outcomes(junit: Path) -> dict[tuple[str, str], str]:
    """(service, task) → passed / failed / blocked, read from the JUnit report."""
    result: dict[tuple[str, str], str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        status = (
            "failed"
            if case.find("failure") is not None
            else "blocked"
            if case.find("skipped") is not None
            else "passed"
        )
        result[(case.get("classname") or "", case.get("name") or "")] = status
    return result


def planned(root: Path) -> set[tuple[str, str]]:
    return {(t.service, t.name) for t in build_plan(load_manifest(root)).tasks}


def shown_plan(root: Path) -> set[tuple[str, str, str]]:
    """(service, task, command) of every task `wormhole-ci plan --json` shows."""
    done = subprocess.run(
        [sys.executable, "-m", "wormhole_ci", "plan", "--source", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {
        (service["name"], task["name"], " ".join(task["command"]))
        for service in json.loads(done.stdout)["services"]
        for task in service["tasks"]
    }


def test_clean_example_passes_every_task(example: Path, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    shown = shown_plan(example)
    done = run_check(example, junit)
    assert done.returncode == 0, done.stdout + done.stderr
    results = outcomes(junit)
    assert set(results) == planned(example)
    # `plan` shows exactly the tasks and commands this check then ran: every task that ran
    # announced its command (`[service] task started: argv`)
    started = {
        (m["service"], m["task"], m["argv"])
        for m in re.finditer(
            r"^\[(?P<service>[^\]]+)\] (?P<task>\S+) started: (?P<argv>.+)$",
            done.stdout,
            re.MULTILINE,
        )
    }
    assert started == shown
    assert set(results.values()) == {"passed"}
    assert results[("delivery", "validate")] == "passed"  # promtool, amtool and the rest
    lines = done.stdout.splitlines()
    for service in ("api", "web", "runner", "hasura", "delivery"):
        assert any(line.startswith(f"{service} ") and "  passed  " in line for line in lines), (
            service
        )
    assert lines[-1].startswith("check passed in ")


def append(relative: str, text: str) -> Callable[[Path], None]:
    def inject(root: Path) -> None:
        path = root / relative
        path.write_text((path.read_text() if path.exists() else "") + text)

    return inject


def replace(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def inject(root: Path) -> None:
        path = root / relative
        content = path.read_text()
        assert old in content, f"{relative} no longer contains {old!r}: update the defect"
        path.write_text(content.replace(old, new, 1))

    return inject


DEFECTS: dict[str, tuple[Callable[[Path], None], set[tuple[str, str]]]] = {
    # `debugger` is an eslint error (no-debugger) but valid TypeScript
    "eslint error in api": (
        append(
            "api/src/defect.ts", "export function probe(): number {\n  debugger;\n  return 1;\n}\n"
        ),
        {("api", "lint")},
    ),
    "type error in web": (
        append(
            "web/utils/defect.ts",
            "export const answer: number = 'forty-two' as unknown as string;\n",
        ),
        {("web", "typecheck")},
    ),
    # E741 (ambiguous name) is ruff's alone: the formatter and pyright accept it
    "ruff error in runner": (
        append("runner/src/runner/defect.py", '"""Defect."""\n\nl = 1\n'),
        {("runner", "lint")},
    ),
    "failing pytest in runner": (
        append(
            "runner/tests/test_defect.py",
            '"""Defect."""\n\n\ndef test_defect() -> None:\n    assert sum([1, 1]) == 3\n',
        ),
        {("runner", "test")},
    ),
    "hasura permission on a missing column": (
        replace(
            "hasura/metadata/databases/default/tables/public_users.yaml",
            "        - display_name\n      filter",
            "        - nickname\n      filter",
        ),
        {("hasura", "validate")},
    ),
    # validate-delivery: the stack reads WEB_MEMORY, staging's env example no longer sets it
    "compose variable missing from an env example": (
        replace("deploy/coolify/staging.env.example", "WEB_MEMORY=256M\n", ""),
        {("delivery", "validate")},
    ),
}


# Two runs instead of one per defect (each full check costs ~35 s on 2 cores): every
# defect is in a service or task of its own within its run, and each run leaves a service
# without a defect, so each run still shows that every other task runs and passes.
RUNS = {
    "api, runner test and hasura": (
        "eslint error in api",
        "failing pytest in runner",
        "hasura permission on a missing column",
    ),
    "web, runner lint and delivery": (
        "type error in web",
        "ruff error in runner",
        "compose variable missing from an env example",
    ),
}


@pytest.mark.parametrize("run", list(RUNS))
def test_each_defect_fails_exactly_its_task(example: Path, tmp_path: Path, run: str) -> None:
    expected: set[tuple[str, str]] = set()
    for defect in RUNS[run]:
        inject, failing = DEFECTS[defect]
        inject(example)
        expected |= failing
    junit = tmp_path / "junit.xml"
    done = run_check(example, junit)
    assert done.returncode == 1, done.stdout + done.stderr
    results = outcomes(junit)
    assert set(results) == planned(example)
    assert {key for key, status in results.items() if status != "passed"} == expected
    assert {status for key, status in results.items() if key in expected} == {"failed"}
    broken = {service for service, _ in expected}
    first = next(line for line in done.stderr.splitlines() if not line.startswith("note: "))
    assert first.startswith(f"check failed for {len(broken)} of 5 services: ")
    for service, task in expected:
        assert f"{service} ({task})" in first
        assert f"--- {service}/{task}, exit " in done.stderr
    if ("delivery", "validate") in expected:  # the tail shows the problem itself
        assert "deploy/coolify/staging.env.example: WEB_MEMORY is read by" in done.stderr
    healthy = {"api", "web", "runner", "hasura", "delivery"} - broken
    assert healthy  # each run keeps a service without a defect
    for other in healthy:
        assert any(
            line.startswith(f"{other} ") and "  passed  " in line
            for line in done.stdout.splitlines()
        )


def test_every_defect_is_in_one_run() -> None:
    placed = [d for defects in RUNS.values() for d in defects]
    assert sorted(placed) == sorted(DEFECTS)  # each defect once


def test_hasura_falls_back_to_the_prisma_datamodel_without_postgres(
    example: Path, tmp_path: Path
) -> None:
    """Without PostgreSQL binaries the check reads Prisma's DMMF (after the api's setup)."""
    env = {**os.environ, "WORMHOLE_CI_PG_BINDIR": "none"}

    def check(junit: Path) -> subprocess.CompletedProcess[str]:
        return run_check(example, junit, "--service", "api", "--service", "hasura", env=env)

    clean = check(tmp_path / "clean.xml")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert outcomes(tmp_path / "clean.xml")[("hasura", "validate")] == "passed"
    DEFECTS["hasura permission on a missing column"][0](example)
    broken = check(tmp_path / "broken.xml")
    assert broken.returncode == 1
    assert "Prisma datamodel of api" in broken.stderr
    assert (
        "public_users.yaml: table public.users: update permission for role 'user': column 'nickname' does not exist"
        in broken.stderr
    )


def test_unchanged_services_reuse_their_passed_results(example: Path, tmp_path: Path) -> None:
    """Second run: everything reused; an edited service reruns alone; missing outputs rerun."""

    def check(name: str) -> dict[tuple[str, str], bool]:
        junit = tmp_path / f"{name}.xml"
        done = run_check(
            example,
            junit,
            "--service",
            "runner",
            "--service",
            "hasura",
            "--cache-dir",
            str(tmp_path / "cache"),
        )
        assert done.returncode == 0, done.stdout + done.stderr
        cases = ET.parse(junit).getroot().iter("testcase")
        return {
            (c.get("classname") or "", c.get("name") or ""): "cached:"
            in (c.findtext("system-out") or "")
            for c in cases
        }

    first = check("first")
    assert first, "the JUnit report lists no test case"
    assert not any(first.values())
    second = check("second")
    assert set(second) == set(first)
    assert all(second.values())
    module = example / "runner" / "src" / "runner" / "config.py"
    module.write_text(module.read_text() + "\n\nEDITED = True\n")
    third = check("third")
    assert {k for k, cached in third.items() if not cached} == {
        ("runner", t) for t in ("install", "lint", "format", "typecheck", "test")
    }
    assert third[("hasura", "validate")]
    shutil.rmtree(example / "runner" / ".venv")
    fourth = check("fourth")
    assert not fourth[("runner", "install")]
    assert not fourth[("runner", "test")]
    assert (example / "runner" / ".venv").is_dir()
