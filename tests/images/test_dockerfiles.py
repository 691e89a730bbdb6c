"""The example's Dockerfiles: hadolint and Trivy clean, and the structure the pipeline relies on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from wormhole_ci.toolchains import Provisioner, default_cache_dir

SERVICES = ("api", "web", "runner")
BASE_ARGS = {
    "api": ("NODE_IMAGE", "node:20.20.2-bookworm-slim"),
    "web": ("NODE_IMAGE", "node:20.20.2-bookworm-slim"),
    "runner": ("PYTHON_IMAGE", "python:3.11.14-slim-bookworm"),
}
PORTS = {"api": "3000", "web": "3000", "runner": "8080"}
METADATA_ARGS = ("GIT_SHA", "SOURCE_URL", "BUILD_CREATED", "VERSION")
LABELS = {
    "org.opencontainers.image.revision": "${GIT_SHA}",
    "org.opencontainers.image.source": "${SOURCE_URL}",
    "org.opencontainers.image.created": "${BUILD_CREATED}",
    "org.opencontainers.image.version": "${VERSION}",
}
# Steps that install dependencies; a source change must not reach them.
INSTALL_MARKERS = ("pnpm fetch", "pnpm install", "uv sync", "pip install", "corepack prepare")
# A Dockerfile with the classic mistakes, for checking that the linters do report them.
BAD_DOCKERFILE = "FROM node:latest\nRUN apt-get update && apt-get install -y curl\nCOPY . /app\nCMD node /app/index.js\n"  # fmt: skip


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])


def parse(dockerfile: Path) -> tuple[list[tuple[str, str]], list[Stage]]:
    """(global instructions before the first FROM, stages): (KEYWORD, arguments) with line
    continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    globals_: list[tuple[str, str]] = []
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            parts = args.split()
            alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], alias))
        elif stages:
            stages[-1].instructions.append((keyword, args))
        else:
            globals_.append((keyword, args))
    return globals_, stages


def dockerfile(service: str) -> Path:
    return EXAMPLE / service / "Dockerfile"


def hadolint() -> str:
    found = Path(sys.executable).parent / "hadolint"
    return str(found) if found.exists() else shutil.which("hadolint") or "hadolint"


def run_hadolint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_reports_nothing_on_the_example_dockerfiles() -> None:
    done = run_hadolint(*(dockerfile(s) for s in SERVICES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_hadolint_does_report_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(BAD_DOCKERFILE)
    done = run_hadolint(bad)
    assert done.returncode != 0
    assert {"DL3007", "DL3008", "DL3025"} <= set(re.findall(r"DL\d{4}", done.stdout)), done.stdout


@pytest.fixture(scope="module")
def trivy() -> str:
    """The official trivy on PATH, else the hash-locked wheel the scan command provisions."""
    host = Provisioner(default_cache_dir()).provision([("trivy", "")], {"trivy": ["images"]})
    return host.resolve(("trivy",))[0]


def trivy_config(trivy: str, directory: Path) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [
            trivy,
            "config",
            "--severity", "HIGH,CRITICAL",
            "--exit-code", "1",
            # the checks embedded in the pinned binary: no download, the same verdict every run
            "--skip-check-update",
            "--quiet",
            "--format", "json",
            str(directory),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def misconfig_summary(report: dict[str, object], target: str) -> dict[str, object]:
    results = report.get("Results")
    assert isinstance(results, list)
    for result in results:
        assert isinstance(result, dict)
        if result.get("Target") == target:
            summary = result.get("MisconfSummary")
            assert isinstance(summary, dict)
            return {**summary, "findings": result.get("Misconfigurations", [])}
    raise AssertionError(f"trivy did not scan {target}: {report}")


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_trivy_config_is_clean_at_high(service: str, trivy: str) -> None:
    code, report = trivy_config(trivy, EXAMPLE / service)
    summary = misconfig_summary(report, "Dockerfile")
    assert code == 0, summary
    # scanned for real (a clean result with no checks run would prove nothing)
    assert isinstance(summary["Successes"], int) and summary["Successes"] > 10, summary
    assert summary["Failures"] == 0, summary


@pytest.mark.slow
def test_trivy_config_does_fail_a_root_dockerfile(tmp_path: Path, trivy: str) -> None:
    (tmp_path / "Dockerfile").write_text(BAD_DOCKERFILE)
    code, report = trivy_config(trivy, tmp_path)
    assert code == 1
    findings = misconfig_summary(report, "Dockerfile")["findings"]
    assert isinstance(findings, list)
    ids = {f["ID"] for f in findings if isinstance(f, dict)}
    assert ids & {"DS-0002", "AVD-DS-0002", "DS002"}, ids


@pytest.mark.parametrize("service", SERVICES)
def test_base_image_is_a_pinned_build_arg_and_stages_build_on_it(service: str) -> None:
    globals_, stages = parse(dockerfile(service))
    arg, image = BASE_ARGS[service]
    assert globals_ == [("ARG", f"{arg}={image}")]
    assert len(stages) >= 2, "multi-stage"
    aliases: set[str] = set()
    for stage in stages:
        assert stage.base == f"${{{arg}}}" or stage.base in aliases, stage.base
        if stage.alias:
            aliases.add(stage.alias)
    assert stages[-1].alias is None


@pytest.mark.parametrize("service", SERVICES)
def test_final_stage_runs_as_a_numeric_non_root_user_with_a_healthcheck(service: str) -> None:
    final = parse(dockerfile(service))[1][-1]
    users = [args for keyword, args in final.instructions if keyword == "USER"]
    assert users, "USER in the final stage"
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), users[-1]
    uid = users[-1].split(":")[0]
    runs = " ".join(args for keyword, args in final.instructions if keyword == "RUN")
    assert f"--uid {uid}" in runs, "the user is created in the final stage"
    [healthcheck] = [args for keyword, args in final.instructions if keyword == "HEALTHCHECK"]
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in healthcheck
    assert "/healthz" in healthcheck
    assert not re.search(r"\b(curl|wget)\b", healthcheck)
    assert ("EXPOSE", PORTS[service]) in final.instructions
    # production dependencies only: nothing is installed or built in the final stage
    assert not any(marker in runs for marker in INSTALL_MARKERS), runs


@pytest.mark.parametrize("service", SERVICES)
def test_per_commit_metadata_comes_last(service: str) -> None:
    final = parse(dockerfile(service))[1][-1]
    keywords = [keyword for keyword, _ in final.instructions]
    args = [a for keyword, a in final.instructions if keyword == "ARG"]
    assert [a.split("=")[0] for a in args] == list(METADATA_ARGS)
    first_arg = keywords.index("ARG")
    # nothing that makes a layer (or invalidates the ones after it) follows the per-commit ARGs
    assert set(keywords[first_arg:]) <= {"ARG", "LABEL", "ENV"}, keywords[first_arg:]
    labels = " ".join(a for keyword, a in final.instructions if keyword == "LABEL")
    for key, value in {**LABELS, "org.opencontainers.image.title": f"wormhole-{service}"}.items():
        assert f'{key}="{value}"' in labels
    assert ("ENV", "BUILD_SHA=${GIT_SHA}") in final.instructions


def install_steps(stage: Stage) -> list[int]:
    return [
        i
        for i, (keyword, args) in enumerate(stage.instructions)
        if keyword == "RUN" and any(m in args for m in INSTALL_MARKERS)
    ]


def source_copies(stage: Stage) -> list[int]:
    return [
        i
        for i, (keyword, args) in enumerate(stage.instructions)
        if keyword == "COPY" and re.match(r"(src|\.)[ /]", args)
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_dependencies_are_installed_before_the_sources_are_copied(service: str) -> None:
    stages = parse(dockerfile(service))[1]
    installing = [s for s in stages if install_steps(s)]
    assert installing, f"{service}: no stage runs any of {INSTALL_MARKERS}"
    copying = [s for s in stages if source_copies(s)]
    assert copying, f"{service}: no stage copies the sources (COPY src… or COPY . …)"
    for stage in copying:
        # a source change must not reach an install layer: every install comes first
        installs, sources = install_steps(stage), source_copies(stage)
        assert max(installs, default=-1) < sources[0], stage
    for stage in installing:
        # only manifests, lockfiles and patches feed the install layers
        copies_before = [
            args
            for keyword, args in stage.instructions[: install_steps(stage)[-1]]
            if keyword == "COPY"
        ]
        assert copies_before, f"{service}: stage {stage.alias} installs without its manifests"
        for args in copies_before:
            assert re.fullmatch(
                r"(?:(?:package\.json|pnpm-lock\.yaml|pnpm-workspace\.yaml|pyproject\.toml|uv\.lock|patches) )+\S+",
                args,
            ), args


@pytest.mark.parametrize("service", SERVICES)
def test_dockerignore_keeps_dependencies_outputs_and_env_files_out(service: str) -> None:
    patterns = {
        line.strip()
        for line in (EXAMPLE / service / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    local = {"runner": {".venv"}}.get(service, {"**/node_modules"})
    assert local <= patterns
    assert {".env", ".env.*"} <= patterns
