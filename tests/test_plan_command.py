"""`wormhole-ci plan`: the check plan shown before running, from the same `build_plan`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, copy_example
from wormhole_ci.cli import main
from wormhole_ci.manifest import load_manifest
from wormhole_ci.plan import build_plan

UV_SERVICE = ROOT / "tests" / "fixtures" / "monorepos" / "uv-service"
# Every variable the example's environments name as a secret, set to a value a leak would show.
SECRETS = (
    "COOLIFY_TOKEN",
    "STAGING_DATABASE_URL",
    "PRODUCTION_DATABASE_URL",
    "REGISTRY_PASSWORD",
    "STAGING_HASURA_ADMIN_SECRET",
    "PRODUCTION_HASURA_ADMIN_SECRET",
    "PREVIEW_DATABASE_URL",
)


def sentinel(name: str) -> str:
    return f"s3nt1nel-{name.lower()}-value"


def plan_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`wormhole-ci plan ARGS` as a user runs it (a separate process, its own environment)."""
    return subprocess.run(
        [sys.executable, "-m", "wormhole_ci", "plan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def plan_doc(root: Path, *args: str) -> dict[str, Any]:
    done = plan_cli("--source", str(root), "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def triples(document: dict[str, Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {
        (s["name"], t["name"], tuple(t["command"]))
        for s in document["services"]
        for t in s["tasks"]
    }


def task_of(document: dict[str, Any], service: str, task: str) -> dict[str, Any]:
    (found,) = [
        t
        for s in document["services"]
        if s["name"] == service
        for t in s["tasks"]
        if t["name"] == task
    ]
    return found


def service_of(document: dict[str, Any], service: str) -> dict[str, Any]:
    (found,) = [s for s in document["services"] if s["name"] == service]
    return found


def test_the_json_plan_is_the_check_plan(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--source", str(example), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    plan = build_plan(load_manifest(example))
    assert triples(document) == {(t.service, t.name, t.argv) for t in plan.tasks}
    assert len(triples(document)) == len(plan.tasks) > 10
    assert document["schema"] == 1 and document["project"] == "wormhole"
    assert [s["name"] for s in document["services"]] == [s.service for s in plan.services]
    assert document["notes"] == list(plan.notes)
    api = service_of(document, "api")
    assert (api["kind"], api["directory"]) == ("node", "api")
    assert api["toolchain"]["tool"] == "pnpm"
    assert api["toolchain"]["pnpm"] == task_of(document, "api", "install")["tool_version"]
    assert api["image"] == {
        "context": "api",
        "dockerfile": "api/Dockerfile",
        "repository": "wormhole-api",
        "tag": "<sha7>",
    }
    assert service_of(document, "hasura")["image"] is None  # nothing to build
    runner = service_of(document, "runner")["toolchain"]
    assert (runner["tool"], runner["python"]) == ("uv", ">=3.11,<3.12")
    lint = task_of(document, "api", "lint")
    assert lint["origin"] == {
        "by": "convention",
        "file": "api/package.json",
        "field": "scripts.lint",
        "detail": "the `lint` script",
        "replaced": None,
        "changed": [],
    }
    assert lint["env"] == ["CI", "NUXT_TELEMETRY_DISABLED"]
    assert lint["cache_key"]["inputs"] == ["api"]
    assert lint["cache_key"]["lock_files"] == ["api/pnpm-lock.yaml"]
    assert set(lint["cache_key"]["tools"]) == {"pnpm", "wormhole-ci"}
    hasura = task_of(document, "hasura", "validate")
    assert hasura["after"] == ["api:prepare"]
    assert hasura["cache_key"]["inputs"] == ["api/prisma", "hasura"]
    assert task_of(document, "runner", "typecheck")["origin"]["detail"] == "pyright in uv.lock"
    assert "node_modules" in document["cache"]["ignored_dirs"]
    staging = document["environments"][0]
    assert staging["name"] == "staging"
    assert {t["service"] for t in staging["targets"]} == {"api", "web", "runner"}


def test_a_skipped_convention_appears_with_its_reason(example: Path) -> None:
    document = plan_doc(example)
    assert service_of(document, "api")["skipped"] == [
        {
            "task": "format",
            "reason": "no `format:check` script in package.json, format skipped",
            "by": "convention",
            "field": None,
        }
    ]
    assert "format" not in {t["name"] for t in service_of(document, "api")["tasks"]}
    shown = plan_cli("--source", str(example), "--service", "api").stdout
    assert "format skipped: no `format:check` script in package.json\n" in shown


OVERRIDES = """
[services.api.tasks]
test = "pnpm run test:unit"
lint = false

[services.runner.tasks.smoke]
run = ["uv", "run", "--frozen", "python", "-c", "print('ok')"]
env = { SMOKE_MODE = "s3nt1nel-plain-task-env-value" }
"""


def test_an_override_appears_with_its_file_and_field(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    manifest = root / "wormhole-ci.toml"
    manifest.write_text(manifest.read_text() + OVERRIDES)
    document = plan_doc(root)
    assert triples(document) == {
        (t.service, t.name, t.argv) for t in build_plan(load_manifest(root)).tasks
    }
    assert task_of(document, "api", "test")["origin"] == {
        "by": "override",
        "file": "wormhole-ci.toml",
        "field": "services.api.tasks.test",
        "detail": None,
        "replaced": ["pnpm", "run", "test"],
        "changed": ["run"],
    }
    assert task_of(document, "api", "test")["command"] == ["pnpm", "run", "test:unit"]
    smoke = task_of(document, "runner", "smoke")
    assert smoke["origin"]["field"] == "services.runner.tasks.smoke"
    assert smoke["origin"]["replaced"] is None  # a new task: no convention replaced
    assert smoke["origin"]["changed"] == ["run", "env"]
    assert smoke["env"] == ["SMOKE_MODE", "UV_PYTHON_DOWNLOADS"]
    skipped = service_of(document, "api")["skipped"]
    assert {"task": "lint", "by": "override", "field": "services.api.tasks.lint"}.items() <= (
        next(s for s in skipped if s["task"] == "lint").items()
    )
    # the team's switch-off is listed, but is no note (the check prints none for it)
    assert not any("lint" in note for note in document["notes"])
    shown = plan_cli("--source", str(root)).stdout
    assert "override: wormhole-ci.toml services.api.tasks.test" in shown
    assert "instead of pnpm run test (sets run)" in shown
    assert "lint skipped: switched off in wormhole-ci.toml (services.api.tasks.lint)" in shown
    # an env value is never shown, not even a plain one: only its name
    assert "s3nt1nel-plain-task-env-value" not in json.dumps(document) + shown


def test_no_secret_value_appears(example: Path) -> None:
    env = {name: sentinel(name) for name in SECRETS}
    outputs = [plan_cli("--source", str(example), *args, env=env) for args in ([], ["--json"])]
    for done in outputs:
        assert done.returncode == 0, done.stderr
    text = "".join(done.stdout + done.stderr for done in outputs)
    leaked = [name for name in SECRETS if sentinel(name) in text]
    assert leaked == []
    # the names are there: where each secret comes from is part of the plan
    assert all(name in text for name in SECRETS)
    secrets = json.loads(outputs[1].stdout)["environments"][0]["secrets"]
    assert secrets["hasura.admin_secret"] == "STAGING_HASURA_ADMIN_SECRET"
    assert secrets["preview.database_url"] == "PREVIEW_DATABASE_URL"


def test_service_selection_and_an_unknown_service(example: Path) -> None:
    document = plan_doc(example, "--service", "runner", "--service", "hasura")
    assert [s["name"] for s in document["services"]] == ["runner", "hasura"]
    done = plan_cli("--source", str(example), "--service", "nope")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "no service named 'nope' (known services: api, web, runner, hasura, delivery)" in (
        re.sub(r"\s+", " ", done.stderr)
    )


def test_the_human_plan_shows_every_service_task_and_environment(example: Path) -> None:
    done = plan_cli("--source", str(example))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "wormhole: 5 service(s)"
    for service in ("api", "web", "runner", "hasura", "delivery"):
        assert any(line.startswith(f"{service}  ") for line in lines), service
    assert "├── install  pnpm install --frozen-lockfile  in api" in done.stdout
    assert "convention: runner/uv.lock (pytest in uv.lock)" in done.stdout
    assert "after api:prepare" in done.stdout
    assert "environment staging  coolify http://192.168.1.66:8000" in done.stdout
    assert "secrets (names only): coolify_token from $COOLIFY_TOKEN" in done.stdout


@pytest.mark.slow
def test_plan_json_matches_the_tasks_check_then_runs(tmp_path: Path) -> None:
    """The real check on a small fixture, with an override, a switch-off and an extra task."""
    root = Path(shutil.copytree(UV_SERVICE, tmp_path / "uv-service"))
    manifest = root / "wormhole-ci.toml"
    manifest.write_text(
        manifest.read_text()
        + '\n[services.greeter.tasks]\ntypecheck = false\nsmoke = "uv run --frozen python -c pass"\n'
    )
    planned = triples(plan_doc(root))
    report = tmp_path / "check.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "wormhole_ci", "check", "--source", str(root)),
            *("--json", str(report), "--progress", "plain", "--no-cache"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # every task that ran announced its command: `[service] task started: argv`
    started = {
        (m["service"], m["task"], tuple(m["argv"].split(" ")))
        for m in re.finditer(
            r"^\[(?P<service>[^\]]+)\] (?P<task>\S+) started: (?P<argv>.+)$",
            done.stdout,
            re.MULTILINE,
        )
    }
    ran = {(t["service"], t["task"]) for t in json.loads(report.read_text())["tasks"]}
    assert started == planned
    assert ran == {(service, task) for service, task, _ in planned}
    assert ("greeter", "smoke", ("uv", "run", "--frozen", "python", "-c", "pass")) in planned
    assert not any(task == "typecheck" for _, task, _ in planned)
