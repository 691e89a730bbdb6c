"""The module loaded through the SDK's own registration code, as `dagger functions` does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.dagger_module.fake_engine import FakeEngine, Step, decode_id

EXPECTED_FUNCTIONS = {
    "check",
    "lint",
    "typecheck",
    "test",
    "validate_hasura",
    "scan",
    "scan_report",
    "sast",
    "audit",
    "scan_image",
    "build",
    "build_all",
    "publish",
    "migrate",
    "check_report",
    "deploy",
    "release",
    "hasura_apply",
    "drift",
    "affected",
    "preview",
    "plan",
}


def register(engine: FakeEngine, tmp_path: Path) -> str:
    module_file = tmp_path / "module.json"
    env = {**os.environ, "DAGGER_MAIN_OBJECT": "WormholeCi", "DAGGER_MODULE_FILE": str(module_file)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dagger.mod.cli import app; raise SystemExit(app(register=True))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode in (0, None), done.stdout + done.stderr
    return json.loads(module_file.read_text())


def chain_of(value: str) -> tuple[Step, ...]:
    return decode_id(value)[1]


def functions(object_chain: tuple[Step, ...]) -> dict[str, dict[str, Any]]:
    """Function name → {doc, check, args: {name: {...}}} from a TypeDef chain."""
    out: dict[str, dict[str, Any]] = {}
    for _, name, args in object_chain:
        if name not in ("withFunction", "withConstructor"):
            continue
        fn_chain = chain_of(args["function"])
        info: dict[str, Any] = {"doc": None, "check": False, "args": {}, "cache": None}
        fn_name = ""
        for _, step, step_args in fn_chain:
            if step == "function":
                fn_name = step_args["name"]
                info["returns"] = [s[1:] for s in chain_of(step_args["returnType"])]
            elif step == "withDescription":
                info["doc"] = step_args["description"]
            elif step == "withCheck":
                info["check"] = True
            elif step == "withCachePolicy":
                info["cache"] = step_args["policy"]
            elif step == "withArg":
                arg_type = chain_of(step_args["typeDef"])
                info["args"][step_args["name"]] = {
                    "doc": step_args.get("description"),
                    "defaultPath": step_args.get("defaultPath"),
                    "ignore": step_args.get("ignore"),
                    "optional": any(s[1] == "withOptional" for s in arg_type),
                    "default": step_args.get("defaultValue"),
                    "type": [s[1:] for s in arg_type if s[1] in ("withKind", "withObject")],
                }
        out["<constructor>" if name == "withConstructor" else fn_name] = info
    return out


# What each function's cache policy must be (DESIGN.md §3): side effects never cached, scans
# and the checks that may write a PR comment fresh per session, pure checks and builds of a
# Directory left to the engine's default.
CACHE_POLICIES = {
    **dict.fromkeys(
        ("release", "deploy", "migrate", "publish", "hasura_apply", "drift", "preview"),
        "Never",
    ),
    **dict.fromkeys(("scan", "scan_report", "sast", "audit", "scan_image"), "PerSession"),
    # --pr-comment writes the PR's comment: a new session (a re-run) must write it again
    **dict.fromkeys(("check", "check_report"), "PerSession"),
    **dict.fromkeys(
        (
            "lint",
            "typecheck",
            "test",
            "validate_hasura",
            "build",
            "build_all",
            "affected",
            "plan",  # a plan of the source Directory is pure: same files, same document
        ),
        None,
    ),
}


def main_functions(engine: FakeEngine, tmp_path: Path) -> dict[str, dict[str, Any]]:
    module_chain = chain_of(register(engine, tmp_path))
    objects = [chain_of(args["object"]) for _, name, args in module_chain if name == "withObject"]
    main = next(o for o in objects if o[1][1] == "withObject" and o[1][2]["name"] == "WormholeCi")
    return functions(main)


def test_every_function_states_its_cache_policy(engine: FakeEngine, tmp_path: Path) -> None:
    fns = main_functions(engine, tmp_path)
    assert set(CACHE_POLICIES) == EXPECTED_FUNCTIONS  # a new function must be added here
    assert {name: fns[name]["cache"] for name in EXPECTED_FUNCTIONS} == CACHE_POLICIES


def test_registration_lists_functions_args_docs_and_checks(
    engine: FakeEngine, tmp_path: Path
) -> None:
    module_id = register(engine, tmp_path)
    module_chain = chain_of(module_id)
    assert module_chain[0][1] == "module"
    objects = [chain_of(args["object"]) for _, name, args in module_chain if name == "withObject"]
    main = next(o for o in objects if o[1][1] == "withObject" and o[1][2]["name"] == "WormholeCi")
    assert (
        main[1][2]["description"] == "Check, build, scan, migrate and deploy the Wormhole monorepo."
    )
    fns = functions(main)
    assert set(fns) == EXPECTED_FUNCTIONS | {"<constructor>"}
    # checks: the argument-free functions `dagger check` runs
    assert {name for name, f in fns.items() if f["check"]} == {"check", "validate_hasura"}
    for name in ("lint", "typecheck", "test"):
        assert fns[name]["args"]["service"]["optional"] is True
        assert fns[name]["args"]["service"]["doc"].startswith("Only this service")
    comment_args = {"pr_comment", "pr_sha", "github_token", "github_repository", "github_api_url"}
    assert set(fns["check"]["args"]) == {"explain"} | comment_args
    assert set(fns["check_report"]["args"]) == comment_args
    assert fns["check"]["args"]["explain"]["default"] == "false"  # `dagger check` needs none
    for name in ("check", "check_report"):
        args = fns[name]["args"]
        assert all(args[a]["optional"] or args[a]["default"] is not None for a in comment_args)
        assert args["pr_comment"]["default"] == "0" and "INTEGER_KIND" in str(
            args["pr_comment"]["type"]
        )
        assert [a["name"] for s, a in args["github_token"]["type"] if s == "withObject"] == [
            "Secret"
        ]
        assert args["github_token"]["optional"] is True
        assert "pull request's wormhole-ci comment" in args["pr_comment"]["doc"]
    assert "the engine's cache" in fns["check"]["args"]["explain"]["doc"]
    assert fns["check"]["doc"].startswith("Lint, type-check and test every service concurrently")
    assert "the delivery configuration (promtool, amtool" in fns["check"]["doc"]
    assert "--disallow-inconsistent-metadata" in fns["validate_hasura"]["doc"]
    source = fns["<constructor>"]["args"]["source"]
    assert source["defaultPath"] == "/"
    assert "**/node_modules" in source["ignore"]
    assert "**/.venv" in source["ignore"]
    assert source["doc"].startswith("The monorepo")
    # --since/--changed/--repo-path (affected selection) may be left out: then all runs
    constructor = fns["<constructor>"]["args"]
    assert (constructor["since"]["default"], constructor["repo_path"]["default"]) == ('""', '""')
    assert constructor["changed"]["optional"] is True
    assert constructor["changed"]["type"][0][1]["name"] == "File"
    string = [("typeDef", {}), ("withKind", {"kind": "STRING_KIND"})]
    assert all(
        fns[n]["returns"] == string
        for n in ("check", "lint", "typecheck", "test", "validate_hasura")
    )
    for name in ("scan", "scan_report", "sast", "audit", "scan_image"):
        steps = [(step, args.get("name")) for step, args in fns[name]["returns"]]
        assert steps == [("typeDef", None), ("withObject", "Directory")], name
    assert set(fns["scan"]["args"]) == {"fail_on", "allow_unavailable"}
    assert fns["scan"]["args"]["fail_on"]["optional"] is True
    assert set(fns["scan_image"]["args"]) == {
        "image",
        "tarball",
        "name",
        "fail_on",
        "allow_unavailable",
    }


def test_registration_of_the_image_functions(engine: FakeEngine, tmp_path: Path) -> None:
    module_chain = chain_of(register(engine, tmp_path))
    objects = [chain_of(args["object"]) for _, name, args in module_chain if name == "withObject"]
    main = next(o for o in objects if o[1][1] == "withObject" and o[1][2]["name"] == "WormholeCi")
    fns = functions(main)
    container = [("typeDef", {}), ("withObject", {"name": "Container"})]
    assert [
        (s, {k: a[k] for k in ("name",) if k in a}) for s, a in fns["build"]["returns"]
    ] == container
    assert [s for s, _ in fns["build_all"]["returns"]] == ["typeDef", "withObject"]
    assert set(fns["build"]["args"]) == {"service", "tag", "version_tag", "platform", "build_arg"}
    assert fns["build"]["args"]["service"]["optional"] is False
    assert set(fns["publish"]["args"]) == {
        "registry",
        "tag",
        "username",
        "password",
        "version_tag",
        "platforms",
        "build_arg",
    }
    assert fns["publish"]["args"]["registry"]["optional"] is False
    assert fns["publish"]["args"]["tag"]["optional"] is False
    password = fns["publish"]["args"]["password"]
    assert password["optional"] is True
    assert [a["name"] for s, a in password["type"] if s == "withObject"] == ["Secret"]
    # list arguments default to an empty list (JSON), so `dagger call` does not require them
    assert fns["publish"]["args"]["platforms"]["default"] == "[]"
    assert fns["build"]["args"]["build_arg"]["default"] == "[]"
    assert not fns["publish"]["check"] and not fns["build"]["check"]
    migrate = fns["migrate"]["args"]
    assert set(migrate) == {
        "database_url",
        "tag",
        "service",
        "lock_timeout",
        "allow_destructive",
        "no_backup",
        "environment",
        "pushgateway_auth",
        "dry_run",
    }
    assert migrate["dry_run"]["default"] == "false"
    assert migrate["database_url"]["optional"] is False
    assert [a["name"] for s, a in migrate["database_url"]["type"] if s == "withObject"] == [
        "Secret"
    ]
    assert [s for s, _ in fns["migrate"]["returns"]] == ["typeDef", "withObject"]
    assert not fns["migrate"]["check"]
    release = fns["release"]["args"]
    for secret in ("coolify_token", "database_url"):
        assert release[secret]["optional"] is False
        assert [a["name"] for s, a in release[secret]["type"] if s == "withObject"] == ["Secret"]
    assert release["registry_password"]["optional"] is True
    assert {"environment", "tag", "allow_unavailable_scanners", "no_rollback"} <= set(release)
    assert set(fns["deploy"]["args"]) == {
        "environment",
        "tag",
        "coolify_token",
        "registry_password",
        "registry_username",
        "no_rollback",
        "pushgateway_auth",
        "dry_run",
    }
    assert fns["deploy"]["args"]["registry_password"]["optional"] is True
    assert fns["deploy"]["args"]["dry_run"]["default"] == "false"  # a flag: off unless --dry-run
    assert fns["deploy"]["cache"] == "Never"  # a dry run reads live state: never cached either
    for name in ("deploy", "migrate", "release"):
        auth = fns[name]["args"]["pushgateway_auth"]
        assert auth["optional"] is True, name
        assert [a["name"] for s, a in auth["type"] if s == "withObject"] == ["Secret"], name
    for name in ("deploy", "migrate", "release"):
        steps = [(step, args.get("name")) for step, args in fns[name]["returns"]]
        assert steps == [("typeDef", None), ("withObject", "Directory")], name
    # only the optional --pr-comment arguments: CI calls it with none on main
    assert all(
        a["default"] is not None or a["optional"] for a in fns["check_report"]["args"].values()
    )


def test_registration_of_hasura_apply_and_drift(engine: FakeEngine, tmp_path: Path) -> None:
    fns = main_functions(engine, tmp_path)

    def secret_arg(fn: str, arg: str) -> bool:
        return [a["name"] for s, a in fns[fn]["args"][arg]["type"] if s == "withObject"] == [
            "Secret"
        ]

    apply = fns["hasura_apply"]["args"]
    assert set(apply) == {"environment", "hasura_admin_secret", "coolify_token", "dry_run"}
    assert secret_arg("hasura_apply", "hasura_admin_secret")
    assert apply["hasura_admin_secret"]["optional"] is False
    assert secret_arg("hasura_apply", "coolify_token") and apply["coolify_token"]["optional"]
    drift = fns["drift"]["args"]
    assert set(drift) == {
        "environment",
        "only",
        "expect_sha",
        "database_url",
        "hasura_admin_secret",
        "coolify_token",
    }
    for name in ("database_url", "hasura_admin_secret", "coolify_token"):
        # each area's secret is optional: `--only` needs just its own
        assert secret_arg("drift", name) and drift[name]["optional"] is True
    assert drift["only"]["default"] == "[]"
    assert secret_arg("release", "hasura_admin_secret")
    assert fns["release"]["args"]["hasura_admin_secret"]["optional"] is True
    for name in ("hasura_apply", "drift"):
        steps = [(step, args.get("name")) for step, args in fns[name]["returns"]]
        assert steps == [("typeDef", None), ("withObject", "Directory")], name
        assert fns[name]["cache"] == "Never" and not fns[name]["check"]


def test_registration_of_preview(engine: FakeEngine, tmp_path: Path) -> None:
    fns = main_functions(engine, tmp_path)
    preview = fns["preview"]
    assert preview["cache"] == "Never" and not preview["check"]
    args = preview["args"]
    assert set(args) == {
        "environment",
        "pr",
        "tag",
        "coolify_token",
        "database_url",
        "registry_password",
        "registry_username",
        "close",
        "github_token",
        "github_repository",
        "github_api_url",
        "github_log_url",
    }
    for name in ("coolify_token", "database_url", "registry_password", "github_token"):
        assert [a["name"] for s, a in args[name]["type"] if s == "withObject"] == ["Secret"]
    assert args["coolify_token"]["optional"] is False
    assert args["database_url"]["optional"] is False
    assert args["registry_password"]["optional"] is True
    assert args["github_token"]["optional"] is True  # no token: no GitHub calls
    assert args["close"]["default"] == "false"  # a flag: off unless --close
    assert "INTEGER_KIND" in str(args["pr"]["type"])


def test_registration_of_plan(engine: FakeEngine, tmp_path: Path) -> None:
    plan = main_functions(engine, tmp_path)["plan"]
    assert plan["cache"] is None and not plan["check"]
    assert set(plan["args"]) == {"service"}
    assert plan["args"]["service"]["optional"] is True
    assert [(s, a.get("name")) for s, a in plan["returns"]] == [
        ("typeDef", None),
        ("withObject", "File"),
    ]
    assert "wormhole-ci plan --json" in plan["doc"]


def test_the_readme_cache_policy_table_is_the_registered_one() -> None:
    """README's table of cache policies names every function under the policy it registers."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("**Cache policies**", 1)[1].split("| policy | functions | why |", 1)[1]
    policies = {"`never`": "Never", "`session`": "PerSession", "default": None}
    documented: dict[str, str | None] = {}
    for row in table.strip().split("\n\n", 1)[0].splitlines()[1:]:
        policy, names = (cell.strip() for cell in row.strip("|").split("|")[:2])
        for name in re.findall(r"`([a-z-]+)`", names):
            documented[name.replace("-", "_")] = policies[policy]
    assert documented == CACHE_POLICIES
