"""The plan: exact commands per service from the example's files, overrides, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, ROOT, copy_tree
from wormhole_ci.errors import ManifestError
from wormhole_ci.manifest import ServiceKind, load_manifest
from wormhole_ci.plan import LOCKFILE_PNPM, STANDARD_TASKS, Tool, build_plan
from wormhole_ci.toolchains import PNPM_VERSION, UV_VERSION

EXPECTED = {
    "api": [
        ("install", ("pnpm", "install", "--frozen-lockfile")),
        ("prepare", ("pnpm", "exec", "prisma", "generate")),
        ("lint", ("pnpm", "run", "lint")),
        ("typecheck", ("pnpm", "run", "typecheck")),  # its own script: `tsc --noEmit`
        ("test", ("pnpm", "run", "test")),
    ],
    "web": [
        ("install", ("pnpm", "install", "--frozen-lockfile")),
        ("prepare", ("pnpm", "exec", "nuxi", "prepare")),
        ("lint", ("pnpm", "run", "lint")),
        ("typecheck", ("pnpm", "run", "typecheck")),  # its own script: `nuxt typecheck`
        ("test", ("pnpm", "run", "test")),
    ],
    "runner": [
        ("install", ("uv", "sync", "--frozen")),
        ("lint", ("uv", "run", "--frozen", "ruff", "check", ".")),
        ("format", ("uv", "run", "--frozen", "ruff", "format", "--check", ".")),
        ("typecheck", ("uv", "run", "--frozen", "pyright")),
        ("test", ("uv", "run", "--frozen", "pytest")),
    ],
    "hasura": [
        ("validate", ("wormhole-ci", "validate-hasura", "--source", ".", "--service", "hasura")),
    ],
    "delivery": [
        (
            "validate",
            ("wormhole-ci", "validate-delivery", "--source", ".", "--service", "delivery"),
        ),
    ],
}


def test_example_plan_is_the_specified_commands() -> None:
    plan = build_plan(load_manifest(EXAMPLE))
    assert plan.project == "wormhole"
    actual = {s.service: [(t.name, t.argv) for t in s.tasks] for s in plan.services}
    assert actual == EXPECTED
    # the example's node services have no formatter script: said, not silently skipped
    assert plan.notes == (
        "api: no `format:check` script in package.json, format skipped",
        "web: no `format:check` script in package.json, format skipped",
    )


def test_tasks_carry_toolchain_workdir_env_caches_and_order() -> None:
    plan = build_plan(load_manifest(EXAMPLE))
    by_key = {t.key: t for t in plan.tasks}
    api = by_key["api:install"]
    assert (api.tool, api.tool_version, api.workdir) == (Tool.PNPM, PNPM_VERSION, "api")
    assert dict(api.env) == {"CI": "true", "NUXT_TELEMETRY_DISABLED": "1"}
    assert [c.env for c in api.caches] == ["pnpm_config_store_dir", "pnpm_config_cache_dir"]
    assert api.outputs == ("node_modules",)
    runner = by_key["runner:test"]
    assert (runner.tool, runner.tool_version, runner.workdir) == (Tool.UV, UV_VERSION, "runner")
    assert dict(runner.env) == {"UV_PYTHON_DOWNLOADS": "never"}
    assert [c.env for c in runner.caches] == ["UV_CACHE_DIR"]
    hasura = by_key["hasura:validate"]
    # Hasura waits for the database service's setup (for the Prisma-datamodel fallback).
    assert (hasura.tool, hasura.workdir, hasura.after) == (Tool.WORMHOLE, ".", ("api:prepare",))
    delivery = by_key["delivery:validate"]
    # its own toolchain (promtool, amtool); its result depends on the two directories only
    assert (delivery.tool, delivery.workdir, delivery.after, delivery.inputs) == (
        Tool.DELIVERY,
        ".",
        (),
        ("deploy", "docs/runbooks"),
    )
    assert [t.is_setup for t in plan.tasks if t.service == "api"] == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_service_and_family_selection_keeps_setup() -> None:
    manifest = load_manifest(EXAMPLE)
    plan = build_plan(manifest, services=["runner"], families=["test"])
    assert [t.key for t in plan.tasks] == ["runner:install", "runner:test"]
    lint = build_plan(manifest, families=["lint"])
    assert [t.key for t in lint.tasks] == [
        "api:install",
        "api:prepare",
        "api:lint",
        "web:install",
        "web:prepare",
        "web:lint",
        "runner:install",
        "runner:lint",
        "runner:format",
    ]  # hasura has no lint task, so it is not installed for nothing
    hasura_only = build_plan(manifest, services=["hasura"])
    assert [(t.key, t.after) for t in hasura_only.tasks] == [("hasura:validate", ())]


def test_overrides_replace_disable_and_add_tasks(example: Path) -> None:
    manifest_path = example / "wormhole-ci.toml"
    manifest_path.write_text(
        manifest_path.read_text()
        + """
[services.api.tasks]
test = "pnpm run test -- --reporter=dot"
lint = false
[services.api.tasks.smoke]
run = ["node", "dist/index.js", "--check"]
env = { PORT = "0" }
[services.runner.tasks]
typecheck = { enabled = false }
"""
    )
    plan = build_plan(load_manifest(example))
    api = {t.name: t for t in plan.tasks if t.service == "api"}
    assert list(api) == ["install", "prepare", "typecheck", "test", "smoke"]
    assert api["test"].argv == ("pnpm", "run", "test", "--", "--reporter=dot")
    assert api["smoke"].argv == ("node", "dist/index.js", "--check")
    assert dict(api["smoke"].env)["PORT"] == "0"
    assert [t.name for t in plan.tasks if t.service == "runner"] == [
        "install",
        "lint",
        "format",
        "test",
    ]


def test_unknown_extra_task_without_command(example: Path) -> None:
    path = example / "wormhole-ci.toml"
    path.write_text(path.read_text() + "\n[services.api.tasks.smoke]\nenv = { A = 'b' }\n")
    with pytest.raises(
        ManifestError,
        match=r"services\.api\.tasks\.smoke: there is no default 'smoke' task.*give it a `run` command",
    ):
        build_plan(load_manifest(example))


def test_missing_scripts_become_notes(example: Path) -> None:
    package = example / "web" / "package.json"
    data = json.loads(package.read_text())
    del data["scripts"]["test"]
    package.write_text(json.dumps(data))
    plan = build_plan(load_manifest(example))
    assert "web: no `test` script in package.json, tests skipped" in plan.notes
    assert "web:test" not in {t.key for t in plan.tasks}


def test_every_convention_that_found_nothing_is_a_note_unless_the_manifest_decides(
    example: Path,
) -> None:
    package = example / "api" / "package.json"
    data = json.loads(package.read_text())
    del data["scripts"]["typecheck"], data["devDependencies"]["typescript"]
    package.write_text(json.dumps(data))
    lock = example / "runner" / "uv.lock"
    # a lock without ruff, pyright and pytest (planning reads only the package names)
    lock.write_text('version = 1\n[[package]]\nname = "runner"\nversion = "0.1.0"\n')
    notes = build_plan(load_manifest(example)).notes
    assert notes == (
        "api: no `format:check` script in package.json, format skipped",
        "api: no `typecheck` script, nor typescript with a tsconfig.json, typecheck skipped",
        "web: no `format:check` script in package.json, format skipped",
        "runner: ruff is not in uv.lock, lint skipped",
        "runner: ruff is not in uv.lock, format skipped",
        "runner: neither pyright nor mypy is in uv.lock, typecheck skipped",
        "runner: pytest is not in uv.lock, tests skipped",
    )
    manifest = example / "wormhole-ci.toml"
    manifest.write_text(
        manifest.read_text()
        + '\n[services.api.tasks]\nformat = false\ntypecheck = "pnpm exec tsc -p ."\n'
        + '\n[services.runner.tasks]\ntest = "uv run python -m unittest"\n'
    )
    notes = build_plan(load_manifest(example)).notes
    assert [n for n in notes if n.startswith(("api:", "runner: pytest"))] == []
    assert len(notes) == 4  # web's format, runner's lint, format and typecheck


@pytest.mark.parametrize(
    ("service", "default"),
    [("web", ("pnpm", "exec", "nuxi", "typecheck")), ("api", ("pnpm", "exec", "tsc", "--noEmit"))],
)
def test_own_typecheck_script_wins_over_the_framework_default(
    example: Path, service: str, default: tuple[str, ...]
) -> None:
    def typecheck() -> tuple[str, ...]:
        plan = build_plan(load_manifest(example), services=[service])
        return {t.name: t.argv for t in plan.tasks}["typecheck"]

    package = example / service / "package.json"
    data = json.loads(package.read_text())
    assert "typecheck" in data["scripts"]  # the example declares its own
    assert typecheck() == ("pnpm", "run", "typecheck")
    del data["scripts"]["typecheck"]
    package.write_text(json.dumps(data))
    assert typecheck() == default


def test_own_typecheck_script_runs_with_npm(example: Path) -> None:
    api = example / "api"
    (api / "pnpm-lock.yaml").rename(api / "package-lock.json")
    data = json.loads((api / "package.json").read_text())
    data["scripts"]["typecheck"] = "tsc -p tsconfig.build.json"
    (api / "package.json").write_text(json.dumps(data))
    plan = build_plan(load_manifest(example), services=["api"])
    assert {t.name: t.argv for t in plan.tasks}["typecheck"] == ("npm", "run", "typecheck")


def test_malformed_package_json(example: Path) -> None:
    (example / "api" / "package.json").write_text('{"name": "api",\n  "scripts": {,}\n}')
    with pytest.raises(
        ManifestError,
        match=r"^api/package\.json: invalid JSON at line 2, column 15: .*; fix the file$",
    ):
        build_plan(load_manifest(example))


def test_missing_lock_files(example: Path) -> None:
    (example / "web" / "pnpm-lock.yaml").unlink()
    with pytest.raises(
        ManifestError,
        match=r"^web/: no lock file .*run `pnpm install` there and commit pnpm-lock\.yaml",
    ):
        build_plan(load_manifest(example))
    (example / "web" / "pnpm-lock.yaml").write_text("")
    (example / "runner" / "uv.lock").unlink()
    with pytest.raises(ManifestError, match=r"^runner/: no uv\.lock .*run `uv lock` there"):
        build_plan(load_manifest(example))


def test_package_manager_field_must_match_the_lock(example: Path) -> None:
    package = example / "api" / "package.json"
    data = json.loads(package.read_text())
    data["packageManager"] = "yarn@4.0.0"
    package.write_text(json.dumps(data))
    with pytest.raises(
        ManifestError,
        match=r"packageManager is 'yarn@4\.0\.0' but the lock file is pnpm's; set it to \"pnpm@12\.4\.2\"",
    ):
        build_plan(load_manifest(example))


NPM_PRISMA = Path(__file__).parent / "fixtures" / "monorepos" / "npm-prisma"


def _prepare(root: Path) -> tuple[str, ...] | None:
    tasks = {t.key: t for t in build_plan(load_manifest(root)).tasks}
    return tasks["api:prepare"].argv if "api:prepare" in tasks else None


def test_prisma_schema_from_package_json(tmp_path: Path) -> None:
    root = copy_tree(NPM_PRISMA, tmp_path / "npm-prisma")
    plan = build_plan(load_manifest(root))
    assert [(t.name, t.tool, t.argv) for t in plan.tasks] == [
        ("install", Tool.NPM, ("npm", "ci", "--no-audit", "--no-fund")),
        ("prepare", Tool.NPM, ("npx", "--no-install", "prisma", "generate")),
        ("typecheck", Tool.NPM, ("npx", "--no-install", "tsc", "--noEmit")),
        ("test", Tool.NPM, ("npm", "run", "test")),
    ]
    # the declared schema is the only one: without the field there is nothing to generate
    package = root / "api" / "package.json"
    data = json.loads(package.read_text())
    del data["prisma"]
    package.write_text(json.dumps(data))
    assert _prepare(root) is None


def test_prisma_schema_from_prisma_config(example: Path) -> None:
    api = example / "api"
    (api / "prisma").rename(api / "db")
    config = api / "prisma.config.ts"
    text = config.read_text()
    assert '  schema: "prisma/schema.prisma",' in text
    config.write_text(text.replace('"prisma/schema.prisma"', '"db/schema.prisma"'))
    assert _prepare(example) == ("pnpm", "exec", "prisma", "generate")
    config.write_text(text.replace('"prisma/schema.prisma"', "`db/missing.prisma`"))
    with pytest.raises(
        ManifestError,
        match=r"^api/prisma\.config\.ts: schema is 'db/missing\.prisma', which does not exist; fix",
    ):
        build_plan(load_manifest(example))


def test_prisma_schema_default_location(example: Path) -> None:
    api = example / "api"
    (api / "prisma.config.ts").unlink()
    assert _prepare(example) == ("pnpm", "exec", "prisma", "generate")
    (api / "prisma" / "schema.prisma").unlink()
    assert _prepare(example) is None


def test_declared_prisma_schema_must_exist(tmp_path: Path) -> None:
    root = copy_tree(NPM_PRISMA, tmp_path / "npm-prisma")
    package = root / "api" / "package.json"
    data = json.loads(package.read_text())
    data["prisma"]["schema"] = "prisma/schema.prisma"
    package.write_text(json.dumps(data))
    with pytest.raises(
        ManifestError,
        match=r"^api/package\.json: prisma\.schema is 'prisma/schema\.prisma', which does not "
        r"exist; fix the path \(relative to the service folder\) or remove the field$",
    ):
        build_plan(load_manifest(root))
    data["prisma"]["schema"] = 3
    package.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"^api/package\.json: prisma\.schema is 3; set it"):
        build_plan(load_manifest(root))


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n{heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_the_conventions_table_names_every_inference_the_code_makes() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    table = _section(docs, "## Conventions: every inference and its override")
    for task in STANDARD_TASKS:
        assert f"`{task}`" in table, task
    for kind in ServiceKind:
        assert f"→ {kind.value}" in table, kind
    assert f"pin, {PNPM_VERSION}" in table
    for major, pnpm in LOCKFILE_PNPM.items():
        assert f"`{major}.x` → pnpm {pnpm}" in table
    audits = _section(docs, "### Dependency audit coverage")
    for lock in ("pnpm-lock.yaml", "package-lock.json", "uv.lock", "poetry.lock"):
        assert f"| `{lock}` |" in audits, lock
    assert "| `yarn.lock`, `bun.lock`, `bun.lockb` |" in audits
    assert "| `requirements.txt`, every line pinned" in audits


def test_a_poetry_service_is_told_check_needs_uv_and_scan_audits_its_lock(example: Path) -> None:
    (example / "runner" / "uv.lock").unlink()
    (example / "runner" / "poetry.lock").write_text("")
    with pytest.raises(
        ManifestError,
        match=r"^runner/: no uv\.lock for service 'runner' \(it has poetry\.lock: `scan` audits "
        r"that, but `check` installs with uv\); run `uv lock` there",
    ):
        build_plan(load_manifest(example))
