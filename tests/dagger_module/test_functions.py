"""Offline call chains of the Dagger functions, checked against the native runtime's plan."""

from __future__ import annotations

import json
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dagger import dag

from tests.dagger_module.conftest import call
from tests.dagger_module.fake_engine import ExecOutcome, FakeEngine, Step, decode_id, readable
from wormhole_ci.containers import (
    CACHE_ROOT,
    HASURA_CLI_IMAGE,
    HASURA_ENGINE_IMAGE,
    NODE_IMAGE,
    POSTGRES_IMAGE,
    PYTHON_IMAGE,
    container_path,
)
from wormhole_ci.dagger_runtime.source import PLAN_INPUTS
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.main import WormholeCi
from wormhole_ci.manifest import load_manifest
from wormhole_ci.plan import Plan, build_plan
from wormhole_ci.security.tasks import scan_plan


@dataclass
class ContainerView:
    """What a recorded Container chain does, in order."""

    image: str | None = None
    execs: list[tuple[str, list[str], str]] = field(default_factory=list)
    """(workdir, argv, expect) of every withExec."""
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    caches: dict[str, Any] = field(default_factory=dict)
    directories: dict[str, Any] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    workdir: str = "/"


def view(chain: tuple[Step, ...]) -> ContainerView:
    out = ContainerView()
    for parent, name, args in chain:
        if parent != "Container":
            continue
        match name:
            case "from":
                out.image = args["address"]
            case "withExec":
                out.execs.append((out.workdir, list(args["args"]), args.get("expect", "SUCCESS")))
            case "withWorkdir":
                out.workdir = args["path"]
            case "withEnvVariable":
                out.env[args["name"]] = args["value"]
            case "withSecretVariable":
                out.secrets.append(args["name"])
            case "withMountedCache":
                out.caches[args["path"]] = readable(args["cache"])
            case "withDirectory":
                out.directories[args["path"]] = readable(args["source"])
            case "withServiceBinding":
                out.services[args["alias"]] = readable(args["service"])
            case _:
                pass
    return out


def exec_leaves(engine: FakeEngine) -> dict[tuple[str, tuple[str, ...]], ContainerView]:
    """(workdir, final argv) → the container chain that ran it (sync: setup, exitCode: checks)."""
    out: dict[tuple[str, tuple[str, ...]], ContainerView] = {}
    for chain, (_, leaf, _) in engine.leaves:
        if leaf in ("sync", "exitCode") and chain and chain[0][1] == "container":
            v = view(chain)
            if v.execs:
                out[(v.execs[-1][0], tuple(v.execs[-1][1]))] = v
    return out


def ran(views: dict[tuple[str, tuple[str, ...]], ContainerView]) -> set[tuple[str, ...]]:
    return {argv for _, argv in views}


def plan_of(example: Path, service: str | None = None, families: tuple[str, ...] = ()) -> Plan:
    return build_plan(load_manifest(example), [service] if service else [], families)


def invoke(example: Path, function: str, **kwargs: str) -> str:
    """Call a module function in-process, `dag` connected to the fake engine."""

    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        # getattr: the SDK's @function typing does not model bound async methods
        result: str = await getattr(module, function)(**kwargs)
        return result

    return call(run)


def assert_chain_matches_plan(
    views: dict[tuple[str, tuple[str, ...]], ContainerView], plan: Plan, example: Path
) -> None:
    """Each planned task ran in its service's container: image, mounts, caches, env, argv order."""
    assert plan.services, "the plan has no service: nothing to compare"
    for service in plan.services:
        assert service.tasks, f"{service.service}: no planned task"
        setup = [t for t in service.tasks if t.is_setup]
        for task in service.tasks:
            v = views.get((container_path(task.workdir), task.argv))
            assert v is not None, f"no container ran {task.key}: {task.argv} in {task.workdir}"
            expected_image = {"pnpm": NODE_IMAGE, "npm": NODE_IMAGE}.get(
                task.tool.value, PYTHON_IMAGE
            )
            assert v.image == expected_image, task.key
            # the exact argv sequence: toolchain, then the service's setup tasks, then this task
            ran = [argv for _, argv, _ in v.execs]
            planned_setup = [
                list(t.argv) for t in setup[: setup.index(task) if task in setup else len(setup)]
            ]
            tail = [*planned_setup, list(task.argv)]
            assert ran[-len(tail) :] == tail, task.key
            workdir, _, expect = v.execs[-1]
            assert workdir == container_path(task.workdir), task.key
            assert expect == ("SUCCESS" if task.is_setup else "ANY"), task.key
            # env: the task's own plus each cache variable pointing at its mounted volume
            for key, value in task.env:
                assert v.env[key] == value, (task.key, key)
            for cache in task.caches:
                path = f"{CACHE_ROOT}/{cache.name}"
                assert v.env[cache.env] == path
                ((volume, volume_args),) = v.caches[path]
                assert (volume, volume_args["key"]) == ("cacheVolume", f"wormhole-ci-{cache.name}")
            # the source: the service's folder (or the whole monorepo) at a stable path
            mount = container_path(task.workdir)
            expected_dir = [("host", {}), ("directory", {"path": str(example)})]
            if task.workdir != ".":
                expected_dir.append(("directory", {"path": task.workdir}))
            if task.inputs:
                # only the declared inputs (and the planner's files the task itself reads)
                expected_dir.append(("filter", {}))
                (filtered,) = [a for n, a in v.directories[mount] if n == "filter"]
                assert set(task.inputs) | set(PLAN_INPUTS) == set(filtered["include"])
            assert [
                (n, {k: a[k] for k in ("path",) if k in a}) for n, a in v.directories[mount]
            ] == expected_dir


def test_check_runs_every_planned_task_as_the_native_plan_says(
    engine: FakeEngine, example: Path
) -> None:
    report = invoke(example, "check")
    plan = plan_of(example)
    lines = report.splitlines()
    assert lines[-1].startswith("check passed in ")
    assert [line.split()[0] for line in lines[: lines.index("notes:")]] == [
        "api",
        "web",
        "runner",
        "hasura",
        "delivery",
    ]
    # the plan's notes, as the native summary ends with them
    assert lines[lines.index("notes:") + 1 : -1] == [f"  {note}" for note in plan_of(example).notes]
    views = exec_leaves(engine)
    assert_chain_matches_plan(views, plan, example)
    # toolchains pinned like the native runtime: pnpm through corepack, uv through pip
    api = views[("/src/api", ("pnpm", "run", "lint"))]
    assert [argv for _, argv, _ in api.execs[:2]] == [
        ["corepack", "enable", "pnpm"],
        ["corepack", "prepare", "pnpm@12.4.2", "--activate"],
    ]
    runner = views[("/src/runner", ("uv", "run", "--frozen", "pytest"))]
    assert runner.execs[0][1][-1] == "uv==0.13.8"
    hasura = views[
        ("/src", ("wormhole-ci", "validate-hasura", "--source", ".", "--service", "hasura"))
    ]
    assert hasura.directories["/opt/wormhole-ci"] == [("currentModule", {}), ("source", {})]
    assert ["apt-get", "install", "-y", "--no-install-recommends", "postgresql-15"] in [
        a for _, a, _ in hasura.execs
    ]
    # the delivery validation: this package with Debian's promtool and amtool, on the
    # monorepo narrowed to its two directories (and the planner's files, to load the manifest)
    delivery = views[
        ("/src", ("wormhole-ci", "validate-delivery", "--source", ".", "--service", "delivery"))
    ]
    assert delivery.image == PYTHON_IMAGE
    assert delivery.directories["/opt/wormhole-ci"] == [("currentModule", {}), ("source", {})]
    assert [argv for _, argv, _ in delivery.execs] == [
        ["apt-get", "update"],
        [
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            "prometheus",
            "prometheus-alertmanager",
        ],
        ["pip", "install", "--no-cache-dir", "--root-user-action=ignore", "/opt/wormhole-ci"],
        ["wormhole-ci", "validate-delivery", "--source", ".", "--service", "delivery"],
    ]
    (mounted,) = [steps for path, steps in delivery.directories.items() if path == "/src"]
    (include,) = [args["include"] for name, args in mounted if name == "filter"]
    assert include[:2] == ["deploy", "docs/runbooks"]
    assert "wormhole-ci.toml" in include


@pytest.mark.parametrize(
    ("function", "families"),
    [("lint", ("lint",)), ("typecheck", ("typecheck",)), ("test", ("test",))],
)
def test_family_functions_for_one_service(
    engine: FakeEngine, example: Path, function: str, families: tuple[str, ...]
) -> None:
    report = invoke(example, function, service="runner")
    plan = plan_of(example, "runner", families)
    assert report.splitlines()[0].startswith("runner  passed")
    views = exec_leaves(engine)
    assert_chain_matches_plan(views, plan, example)
    assert ran(views) == {t.argv for t in plan.tasks}


def test_family_function_for_every_service(engine: FakeEngine, example: Path) -> None:
    invoke(example, "lint")
    plan = plan_of(example, None, ("lint",))
    views = exec_leaves(engine)
    assert_chain_matches_plan(views, plan, example)
    assert ran(views) == {t.argv for t in plan.tasks}


def test_a_failing_task_is_named_and_the_others_are_still_collected(
    engine: FakeEngine, example: Path
) -> None:
    engine.on_exec(
        lambda argv: argv == ["pnpm", "install", "--frozen-lockfile"],
        ExecOutcome(1, "", "ERR_PNPM_OUTDATED_LOCKFILE  Cannot install with frozen-lockfile"),
    )
    engine.on_exec(
        lambda argv: argv[-2:] == ["check", "."],
        ExecOutcome(1, "src/runner/x.py:1:8: F401 unused import", ""),
    )
    with pytest.raises(WormholeCiError) as info:
        invoke(example, "check")
    message = str(info.value)
    # api and web both install with pnpm: the rule fails both installs (ExecError), runner's lint exits 1
    assert (
        message.splitlines()[0]
        == "check failed for 3 of 5 services: api (install), web (install), runner (lint)"
    )
    assert (
        "--- api/install, exit 1\nERR_PNPM_OUTDATED_LOCKFILE  Cannot install with frozen-lockfile"
        in message
    )
    assert "--- runner/lint, exit 1\nsrc/runner/x.py:1:8: F401 unused import" in message
    views = exec_leaves(engine)
    # siblings still ran: runner's other checks were evaluated
    assert ("uv", "run", "--frozen", "pytest") in ran(views)
    # blocked tasks never ran: api's and web's checks, and hasura's validation, which waits
    # for api's setup (`after`, as natively)
    assert ("pnpm", "run", "lint") not in ran(views)
    assert ("wormhole-ci", "validate-hasura", "--source", ".", "--service", "hasura") not in ran(
        views
    )


HASURA_VALIDATE = ("wormhole-ci", "validate-hasura", "--source", ".", "--service", "hasura")


def test_check_waits_for_an_after_dependency(
    engine: FakeEngine, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_of(example)
    (validate,) = [t for t in plan.tasks if t.service == "hasura"]
    assert (validate.argv, validate.after) == (HASURA_VALIDATE, ("api:prepare",))
    (prepare,) = [t for t in plan.tasks if t.key == "api:prepare"]
    # api's prepare takes a while: a hasura check that did not wait would be evaluated meanwhile
    engine.on_exec(lambda argv: argv == list(prepare.argv), ExecOutcome(delay=1.0))
    arrived: dict[tuple[str, tuple[str, ...]], float] = {}
    original = engine.execute

    def timed(query: str, variables: dict[str, Any] | None) -> dict[str, Any]:
        before = len(engine.leaves)
        result = original(query, variables)
        for chain, (_, leaf, _) in engine.leaves[before:]:
            v = view(chain)
            if chain and chain[0][1] == "container" and v.execs:
                arrived.setdefault((leaf, tuple(v.execs[-1][1])), time.monotonic())
        return result

    monkeypatch.setattr(engine, "execute", timed)
    invoke(example, "check")
    # `arrived` is when the engine answered (after the delay): hasura's validation was only
    # asked for once api's prepare exec had been answered, though hasura has no setup.
    assert arrived[("exitCode", HASURA_VALIDATE)] >= arrived[("sync", prepare.argv)]


def test_a_failed_dependency_blocks_the_task_that_waits_for_it(
    engine: FakeEngine, example: Path
) -> None:
    engine.on_exec(
        lambda argv: argv == ["pnpm", "exec", "prisma", "generate"],
        ExecOutcome(1, "", "Error: Prisma schema validation"),
    )

    async def run() -> str:
        module = WormholeCi(source=dag.host().directory(str(example)))
        return await (await module.check_report()).id()

    _, chain = decode_id(call(run))
    files = {a["path"]: a["contents"] for _, n, a in chain if n == "withNewFile"}
    assert HASURA_VALIDATE not in ran(exec_leaves(engine))
    assert "check failed for 1 of 5 services: api (prepare)" in files["check.txt"]
    suites = {s.get("name"): s for s in ET.fromstring(files["junit.xml"].split("?>", 1)[1])}
    (skipped,) = suites["wormhole-ci.hasura"].iter("skipped")
    assert skipped.get("message") == "not run: api:prepare did not pass"


def test_bad_manifest_is_reported_with_relative_paths(engine: FakeEngine, example: Path) -> None:
    (example / "wormhole-ci.toml").write_text("[services.api]\nkind = 'rust'\n")
    with pytest.raises(
        WormholeCiError, match=r"^wormhole-ci\.toml: services\.api\.kind: unknown kind 'rust'"
    ):
        invoke(example, "check")


def test_validate_hasura_on_hasura_migrations_runs_the_structural_check_only(
    engine: FakeEngine, tmp_path: Path
) -> None:
    fixture = Path(__file__).parents[1] / "fixtures" / "monorepos" / "hasura-migrations"
    root = Path(shutil.copytree(fixture, tmp_path / "hasura-migrations"))
    report = invoke(root, "validate_hasura")
    assert "hasura: live engine check skipped: its schema comes from Hasura migrations" in report
    views = exec_leaves(engine)
    assert ("wormhole-ci", "validate-hasura", "--source", ".", "--service", "hasura") in ran(views)
    assert not any(argv[:1] == ("hasura-cli",) for argv in ran(views))


def test_validate_hasura_runs_migrations_engine_and_cli(engine: FakeEngine, example: Path) -> None:
    report = invoke(example, "validate_hasura")
    assert (
        "metadata applied to hasura/graphql-engine:v2.48.6 with --disallow-inconsistent-metadata"
        in report
    )
    views = exec_leaves(engine)
    # the structural check ran in its container, as in `check`
    assert ("wormhole-ci", "validate-hasura", "--source", ".", "--service", "hasura") in ran(views)
    stdout_chains = [
        view(chain)
        for chain, (_, leaf, _) in engine.leaves
        if leaf == "stdout" and chain and chain[0][1] == "container"
    ]
    migrate = next(
        v
        for v in stdout_chains
        if v.execs and v.execs[-1][1] == ["pnpm", "exec", "prisma", "migrate", "deploy"]
    )
    api_plan = plan_of(example, "api")
    assert [a for _, a, _ in migrate.execs][2:] == [
        *(list(t.argv) for t in api_plan.tasks if t.is_setup),
        ["pnpm", "exec", "prisma", "migrate", "deploy"],
    ]
    assert migrate.execs[-1][0] == "/src/api"
    assert "DATABASE_URL" in migrate.secrets
    postgres = migrate.services["postgres"]
    assert postgres[0:2] == [("container", {}), ("from", {"address": POSTGRES_IMAGE})]
    assert ("withExposedPort", {"port": 5432}) in [
        (n, {k: a[k] for k in ("port",) if k in a}) for n, a in postgres
    ]
    assert any(n == "withSecretVariable" and a["name"] == "POSTGRES_PASSWORD" for n, a in postgres)
    cli = next(
        v
        for v in stdout_chains
        if v.execs and v.execs[-1][1][:3] == ["hasura-cli", "metadata", "inconsistency"]
    )
    assert cli.image == HASURA_CLI_IMAGE
    assert cli.execs[0][1] == [
        "hasura-cli",
        "metadata",
        "apply",
        "--endpoint",
        "http://graphql-engine:8080",
        "--disallow-inconsistent-metadata",
        "--skip-update-check",
    ]
    assert cli.workdir == "/hasura"
    assert "HASURA_GRAPHQL_ADMIN_SECRET" in cli.secrets
    graphql_engine = cli.services["graphql-engine"]
    assert graphql_engine[1] == ("from", {"address": HASURA_ENGINE_IMAGE})
    # secrets travel only as Secrets: no plaintext in any env variable or argv
    plaintexts = _set_secret_values(engine)
    assert len(plaintexts) >= 3  # postgres password, database URL, admin secret
    searched = [
        (name, repr(args))
        for chain, _ in engine.leaves
        for _, name, args in chain
        if name in ("withEnvVariable", "withExec")
    ]
    assert {name for name, _ in searched} == {"withEnvVariable", "withExec"}
    for name, text in searched:
        assert not any(p in text for p in plaintexts), name


def _set_secret_values(engine: FakeEngine) -> list[str]:
    """Plaintexts of every setSecret, found also inside ID arguments."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, tuple) and len(value) == 2 and value[0] == "setSecret":
            found.append(value[1]["plaintext"])
        elif isinstance(value, tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    for chain, _ in engine.leaves:
        for _, _, args in chain:
            walk(readable(args))
    return found


def test_validate_hasura_failure_includes_the_inconsistencies(
    engine: FakeEngine, example: Path
) -> None:
    engine.on_exec(
        lambda argv: argv[:3] == ["hasura-cli", "metadata", "apply"],
        ExecOutcome(1, "", "metadata is inconsistent"),
    )
    engine.on_exec(
        lambda argv: argv[:3] == ["hasura-cli", "metadata", "inconsistency"],
        ExecOutcome(0, "public.users  column nickname does not exist", ""),
    )
    with pytest.raises(WormholeCiError) as info:
        invoke(example, "validate_hasura")
    assert "`hasura metadata apply --disallow-inconsistent-metadata` exited 1" in str(info.value)
    assert "public.users  column nickname does not exist" in str(info.value)


def scan_views(engine: FakeEngine) -> dict[tuple[str, tuple[str, ...]], ContainerView]:
    """(workdir, final scanner argv) → its container chain (expect=ANY; exitCode leaves)."""
    return {
        (v.execs[-1][0], tuple(v.execs[-1][1])): v
        for v in (
            view(chain) for chain, (_, leaf, _) in engine.leaves if leaf == "exitCode" and chain
        )
        if v.execs
    }


# What each scanner's `--version` prints (trivy: several lines), and the version reported.
SCANNER_VERSIONS = {
    "semgrep": ("1.185.0\n", "1.185.0"),
    "trivy": ("Version: 0.76.0\nVulnerability DB:\n  Version: 2\n", "0.76.0"),
    "pnpm": ("12.4.2\n", "12.4.2"),
    "pip-audit": ("pip-audit 2.9.0\n", "2.9.0"),
}


def answer_versions(engine: FakeEngine) -> None:
    """`<binary> --version` answers (registered first: the first matching rule wins)."""
    for binary, (printed, _) in SCANNER_VERSIONS.items():
        engine.on_exec(lambda argv, b=binary: argv == [b, "--version"], ExecOutcome(0, printed))


def version_execs(engine: FakeEngine) -> dict[str, ContainerView]:
    """binary → the scanner container its `--version` ran in (read through stdout)."""
    return {
        v.execs[-1][1][0]: v
        for v in (
            view(chain) for chain, (_, leaf, _) in engine.leaves if leaf == "stdout" and chain
        )
        if v.execs and v.execs[-1][1][1:] == ["--version"]
    }


def test_scan_runs_every_scanner_pinned_and_returns_the_reports(
    engine: FakeEngine, example: Path
) -> None:
    answer_versions(engine)
    # what the engine's scanners print: clean semgrep/trivy, the 405 of pnpm audit, pip-audit's false pass
    engine.on_exec(
        lambda argv: argv[:2] == ["semgrep", "scan"],
        ExecOutcome(0, '{"results": [], "errors": [], "version": "1.185.0"}'),
    )
    engine.on_exec(
        lambda argv: argv[:2] == ["trivy", "fs"] and "secret,misconfig" in argv,
        ExecOutcome(0, '{"SchemaVersion": 2}'),
    )
    engine.on_exec(
        lambda argv: argv[:2] == ["pnpm", "audit"],
        ExecOutcome(1, "", "Error: ERR_PNPM_AUDIT_BAD_RESPONSE responded with 405"),
    )
    engine.on_exec(
        lambda argv: argv[0] == "pip-audit",
        ExecOutcome(
            0,
            json.dumps(
                {
                    "dependencies": [
                        {
                            "name": "python-json-logger",
                            "skip_reason": "Dependency not found on PyPI and could not be audited: python-json-logger (4.2.0)",
                        }
                    ],
                    "fixes": [],
                }
            ),
            "No known vulnerabilities found",
        ),
    )
    with pytest.raises(WormholeCiError) as info:
        invoke(example, "scan")
    message = str(info.value)
    assert message.startswith("scan failed: pnpm-audit on api unavailable")
    assert "pip-audit on runner unavailable: 1 of 1 dependencies could not be audited" in message
    # the versions are read in each scanner's own container, before the source is added
    versions = version_execs(engine)
    assert set(versions) == set(SCANNER_VERSIONS)
    for binary, v in versions.items():
        assert v.execs[-1] == ("/", [binary, "--version"], "ANY")
        assert "/src" not in v.directories
    assert "| pnpm-audit | api | " in message
    assert "| 12.4.2 |" in message
    assert "| 2.9.0 |" in message
    views = scan_views(engine)
    manifest = load_manifest(example)
    tasks = scan_plan(manifest)
    assert {t.tool for t in tasks} == {"semgrep", "trivy", "trivy-sbom", "pnpm-audit", "pip-audit"}
    assert any(t.pre for t in tasks) and any(t.env for t in tasks)
    for task in tasks:
        argv = tuple(
            a.replace("{rules}", "/rules").replace("{out}", "/out").replace("{tmp}", "/scratch")
            for a in task.argv
        )
        v = views[(container_path(task.workdir), argv)]
        assert v.execs[-1] == (container_path(task.workdir), list(argv), "ANY"), task.tool
        assert [(n, a.get("path")) for n, a in v.directories["/src"][:2]] == [
            ("host", None),
            ("directory", str(example)),
        ]
        if task.tool == "pnpm-audit":
            assert v.image == NODE_IMAGE
            assert v.execs[1][1] == ["corepack", "prepare", "pnpm@12.4.2", "--activate"]
        else:
            # scanners come from the same hash-locked wheels as natively (pinned by digest)
            assert v.image == PYTHON_IMAGE
            assert v.execs[0][1] == [
                "pip",
                "install",
                "--no-cache-dir",
                "--root-user-action=ignore",
                "--require-hashes",
                "-r",
                "/opt/wormhole-ci-requirements.txt",
            ]
            requirements = {
                "semgrep": "semgrep.txt",
                "trivy": "trivy.txt",
                "trivy-sbom": "trivy.txt",
                "pip-audit": "pip-audit.txt",
            }[task.tool]
            assert any(
                name == "withFile"
                and args["path"] == "/opt/wormhole-ci-requirements.txt"
                and readable(args["source"])[-1]
                == ("file", {"path": f"src/wormhole_ci/security/requirements/{requirements}"})
                for chain, _ in engine.leaves
                for _, name, args in chain
            )
        for key, value in task.env:
            assert v.env[key] == value
        if task.tool.startswith("trivy"):
            assert v.env["TRIVY_CACHE_DIR"] == "/cache/trivy-db"
            assert v.caches["/cache/trivy-db"][0][1]["key"] == "wormhole-ci-trivy-db"
        if task.tool == "semgrep":
            assert v.directories["/rules"] == [
                ("currentModule", {}),
                ("source", {}),
                ("directory", {"path": "src/wormhole_ci/security/semgrep/rules"}),
            ]
        if task.pre:
            assert [a for _, a, _ in v.execs[-1 - len(task.pre) : -1]] == [
                [a.replace("{tmp}", "/scratch") for a in pre] for pre in task.pre
            ]


def test_scan_report_returns_the_reports_even_when_the_policy_fails(
    engine: FakeEngine, example: Path
) -> None:
    answer_versions(engine)
    engine.on_exec(
        lambda argv: argv[:2] == ["semgrep", "scan"],
        ExecOutcome(0, '{"results": [], "errors": []}'),
    )
    engine.on_exec(lambda argv: argv[:2] == ["trivy", "fs"], ExecOutcome(0, '{"SchemaVersion": 2}'))
    engine.on_exec(lambda argv: argv[:2] == ["pnpm", "audit"], ExecOutcome(1, "", "405"))
    engine.on_exec(
        lambda argv: argv[0] == "pip-audit", ExecOutcome(0, '{"dependencies": [], "fixes": []}')
    )

    async def run() -> None:
        module = WormholeCi(source=dag.host().directory(str(example)))
        reports = await module.scan_report()  # does not raise although pnpm audit was refused
        await reports.id()  # what the engine does with a returned Directory

    call(run)
    written = {
        args["path"]: args["contents"]
        for chain, _ in engine.leaves
        for _, name, args in chain
        if name == "withNewFile"
    }
    assert {"scan.sarif", "scan.md", "scan.json"} <= set(written)
    # every outcome names its scanner's version, as the native reports do
    by_tool = {o["tool"]: o["tool_version"] for o in json.loads(written["scan.json"])["outcomes"]}
    assert by_tool == {
        "semgrep": "1.185.0",
        "trivy": "0.76.0",
        "pnpm-audit": "12.4.2",
        "pip-audit": "2.9.0",
    }


def test_scan_gives_pip_audit_a_poetry_services_pins_in_its_scratch_folder(
    engine: FakeEngine, example: Path
) -> None:
    """The pins the native runner writes into {tmp} are written into /scratch first."""
    (example / "runner" / "uv.lock").unlink()
    (example / "runner" / "poetry.lock").write_text(
        '[[package]]\nname = "jinja2"\nversion = "2.11.0"\n\n'
        '[[package]]\nname = "markupsafe"\nversion = "2.1.5"\n'
    )
    answer_versions(engine)
    engine.on_exec(lambda argv: argv[0] != "pip-audit", ExecOutcome(0, "{}"))
    engine.on_exec(
        lambda argv: argv[0] == "pip-audit", ExecOutcome(0, '{"dependencies": [], "fixes": []}')
    )

    async def run() -> None:
        module = WormholeCi(source=dag.host().directory(str(example)))
        await (await module.scan_report()).id()

    call(run)
    (audit,) = (
        chain
        for chain, (_, leaf, _) in engine.leaves
        if leaf == "exitCode"
        and any(n == "withExec" and a["args"][0] == "pip-audit" for _, n, a in chain)
    )
    steps = [
        (n, a["path"], a["contents"]) if n == "withNewFile" else (n, a["args"], a["expect"])
        for _, n, a in audit
        if n in ("withNewFile", "withExec")
    ]
    assert steps[-2:] == [
        ("withNewFile", "/scratch/runner-requirements.txt", "jinja2==2.11.0\nmarkupsafe==2.1.5\n"),
        (
            "withExec",
            [
                *("pip-audit", "-r", "/scratch/runner-requirements.txt", "--no-deps"),
                *("--format", "json", "--progress-spinner", "off", "--disable-pip"),
            ],
            "ANY",
        ),
    ]


def test_scan_image_takes_a_tarball_and_caches_the_trivy_db(
    engine: FakeEngine, example: Path
) -> None:
    engine.on_exec(
        lambda argv: argv[:2] == ["trivy", "image"],
        ExecOutcome(
            1, "", "FATAL\tFatal error\tinit error: DB error: failed to download vulnerability DB"
        ),
    )

    async def run() -> None:
        module = WormholeCi(source=dag.host().directory(str(example)))
        tarball = dag.host().file(str(example / "wormhole-ci.toml"))
        await module.scan_image(tarball=tarball, name="api:abc1234")

    with pytest.raises(
        WormholeCiError, match=r"trivy on api:abc1234 unavailable: no vulnerability data"
    ):
        call(run)
    image_argv = (
        "trivy",
        "image",
        "--input",
        "/image.tar",
        "--format",
        "json",
        "--quiet",
        "--scanners",
        "vuln",
        "--list-all-pkgs=false",
    )
    v = scan_views(engine)[("/src", image_argv)]
    assert v.caches["/cache/trivy-db"][0][1]["key"] == "wormhole-ci-trivy-db"
    with pytest.raises(WormholeCiError, match="pass exactly one of --image or --tarball"):
        invoke(example, "scan_image")
