"""Bad input through the real CLI: one line naming file/field and fix, exit 2, nothing run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from wormhole_ci.arguments import FAIL_ON_CHOICES, FAMILY_CHOICES
from wormhole_ci.security.policy import FailOn
from wormhole_ci.security.tasks import Family


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wormhole_ci", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


def remove_service_dir(root: Path) -> None:
    shutil.rmtree(root / "runner")


def bad_toml(root: Path) -> None:
    (root / "wormhole-ci.toml").write_text("[services.api\nkind = 'node'\n")


def unknown_key(root: Path) -> None:
    path = root / "wormhole-ci.toml"
    path.write_text(path.read_text().replace('kind = "nuxt"', 'kind = "nuxt"\nframework = "vue"'))


def bad_package_json(root: Path) -> None:
    path = root / "web" / "package.json"
    path.write_text(path.read_text().replace('"private": true,', '"private": true,,'))


def no_lock(root: Path) -> None:
    (root / "api" / "pnpm-lock.yaml").unlink()


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing service directory": (
        remove_service_dir,
        r"wormhole-ci\.toml: services\.runner\.path: directory 'runner' does not exist under .*; fix the path or remove the service",
    ),
    "TOML syntax": (
        bad_toml,
        r"wormhole-ci\.toml: invalid TOML: .*\(at line 1, column 14\); fix the syntax",
    ),
    "unknown key": (
        unknown_key,
        r"wormhole-ci\.toml: unknown key services\.web\.framework; allowed here: database, dockerfile, kind, migrations, path, runbooks, tasks",
    ),
    "malformed package.json": (
        bad_package_json,
        r"web/package\.json: invalid JSON at line \d+, column \d+: .*; fix the file",
    ),
    "missing lock file": (
        no_lock,
        r"api/: no lock file \(pnpm-lock\.yaml or package-lock\.json\) for service 'api'; run `pnpm install` there and commit pnpm-lock\.yaml",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line_and_runs_nothing(example: Path, case: str) -> None:
    break_it, message = CASES[case]
    if case == "malformed package.json":
        assert '"private": true,' in (example / "web" / "package.json").read_text()
    break_it(example)
    done = cli("check", "--source", str(example))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]
    # nothing ran: no logs, no installs
    assert not (example / ".wormhole-ci").exists()
    assert not any(example.glob("*/node_modules"))
    assert not (example / "runner" / ".venv").exists()


def test_missing_node_is_reported_with_the_fix(example: Path, tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PATH"} | {"PATH": str(empty_bin)}
    done = cli("check", "--source", str(example), "--cache-dir", str(tmp_path / "cache"), env=env)
    assert done.returncode == 2
    # the plan's notes (the example has no formatter scripts) come first, then the error alone
    lines = [line for line in done.stderr.splitlines() if not line.startswith("note: ")]
    assert lines == [
        "error: node not found on PATH: service(s) api, web need Node.js 20; install Node.js 20 "
        "(e.g. from your distribution or nvm) and retry"
    ]
    assert not (example / ".wormhole-ci").exists()


def test_unknown_service_on_the_command_line(example: Path) -> None:
    done = cli("test", "--source", str(example), "--service", "worker")
    assert done.returncode == 2
    assert (
        "no service named 'worker' (known services: api, web, runner, hasura, delivery)"
        in done.stderr
    )


def test_help_lists_the_commands() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for command in ("check", "lint", "typecheck", "test", "validate-hasura"):
        assert command in done.stdout


def test_the_parsers_scan_choices_are_the_enums() -> None:
    assert tuple(f.value for f in FailOn) == FAIL_ON_CHOICES
    assert tuple(f.value for f in Family) == FAMILY_CHOICES
