"""The check plan as data: which commands each service's tasks run, derived from its files.

Both runtimes (native subprocesses and Dagger containers) execute these tasks; neither
keeps a list of commands of its own.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from wormhole_ci.errors import ManifestError
from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.manifest import (
    DEFAULT_RUNBOOKS,
    Manifest,
    ServiceKind,
    ServiceSpec,
    TaskOverride,
)
from wormhole_ci.toolchains import PNPM_VERSION, UV_VERSION

# The order tasks of one service run in; names outside this list run after, as declared.
STANDARD_TASKS = ("install", "prepare", "lint", "format", "typecheck", "test", "validate")
SETUP_TASKS = frozenset({"install", "prepare"})
# The check families the CLI and Dagger functions select by (`lint` includes `format`).
FAMILIES: Mapping[str, frozenset[str]] = {
    "lint": frozenset({"lint", "format"}),
    "typecheck": frozenset({"typecheck"}),
    "test": frozenset({"test"}),
    "validate": frozenset({"validate"}),
}


class Tool(StrEnum):
    """The toolchain a task needs on the host or in its container."""

    PNPM = "pnpm"
    NPM = "npm"
    UV = "uv"
    WORMHOLE = "wormhole-ci"
    """This package itself (the Hasura metadata check)."""
    DELIVERY = "wormhole-ci-delivery"
    """This package with promtool and amtool (the delivery configuration check)."""


@dataclass(frozen=True)
class Cache:
    """A persistent cache directory a tool finds through an environment variable."""

    name: str
    """Stable cache name: the host subdirectory and the Dagger cache volume."""
    env: str
    """The variable that points the tool at the cache."""


CONVENTION = "convention"
OVERRIDE = "override"
MANIFEST_FILE = "wormhole-ci.toml"


@dataclass(frozen=True)
class Origin:
    """Where a task's command comes from: a convention read from a file, or the manifest."""

    by: str = CONVENTION
    """`convention` (inferred) or `override` (declared in wormhole-ci.toml)."""
    file: str = ""
    """The file it was read from, relative to the monorepo root ("" when the kind decides)."""
    field: str = ""
    """The field of that file, e.g. `scripts.lint` or `services.api.tasks.test`."""
    detail: str = ""
    """What was found, in words (e.g. "ruff in uv.lock", "a nuxt service")."""
    replaced: tuple[str, ...] = ()
    """An override's convention argv it replaced; () when it added a task or kept the argv."""
    changed: tuple[str, ...] = ()
    """What an override set: `run`, `env`."""


@dataclass(frozen=True)
class Skip:
    """A task that is not planned, and why."""

    service: str
    task: str
    reason: str
    by: str = CONVENTION
    """`convention` (it found nothing to run) or `override` (switched off in wormhole-ci.toml)."""
    field: str = ""
    """An override's field in wormhole-ci.toml, e.g. `services.api.tasks.lint`."""


@dataclass(frozen=True)
class Task:
    """One command of one service, with everything needed to run it anywhere."""

    service: str
    name: str
    tool: Tool
    tool_version: str
    workdir: str
    """Directory the command runs in, relative to the monorepo root."""
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    caches: tuple[Cache, ...] = ()
    outputs: tuple[str, ...] = ()
    """Paths (relative to workdir) the task creates, kept for later tasks."""
    after: tuple[str, ...] = ()
    """Other services' tasks (`service:task`) that must have passed first."""
    inputs: tuple[str, ...] = ()
    """Paths (relative to the root) whose content determines the result; () means workdir."""
    origin: Origin = Origin()
    """Why the task exists: the convention or the override that made its command."""

    @property
    def key(self) -> str:
        """`service:task`, unique within a plan."""
        return f"{self.service}:{self.name}"

    @property
    def is_setup(self) -> bool:
        """Setup tasks gate the rest of their service: when one fails the others are blocked."""
        return self.name in SETUP_TASKS


@dataclass(frozen=True)
class ServicePlan:
    """The ordered tasks of one service."""

    service: str
    kind: ServiceKind
    path: str
    tasks: tuple[Task, ...]


@dataclass(frozen=True)
class Plan:
    """Every service's tasks for one run."""

    project: str
    services: tuple[ServicePlan, ...]
    notes: tuple[str, ...] = field(default=())
    """Conventions that found nothing to run (e.g. no lint script), shown to the user."""
    skipped: tuple[Skip, ...] = field(default=())
    """Those conventions as data, plus the tasks wormhole-ci.toml switches off."""

    @property
    def tasks(self) -> tuple[Task, ...]:
        """All tasks, service by service."""
        return tuple(t for s in self.services for t in s.tasks)


PNPM_CACHES = (
    Cache("pnpm-store", "pnpm_config_store_dir"),
    Cache("pnpm-cache", "pnpm_config_cache_dir"),
)
NPM_CACHES = (Cache("npm-cache", "npm_config_cache"),)
UV_CACHES = (Cache("uv", "UV_CACHE_DIR"),)
# Tools must never try to reach anything but the package registries.
NODE_ENV = (("CI", "true"), ("NUXT_TELEMETRY_DISABLED", "1"))
UV_ENV = (("UV_PYTHON_DOWNLOADS", "never"),)


def exec_prefix(tool: Tool) -> tuple[str, ...]:
    """How a node service runs a binary from its own dependencies."""
    return ("npx", "--no-install") if tool is Tool.NPM else ("pnpm", "exec")


def build_plan(
    manifest: Manifest,
    services: Sequence[str] = (),
    families: Iterable[str] = (),
) -> Plan:
    """The plan for `services` (all when empty) limited to check `families` (all when empty).

    Setup tasks (install, prepare) always stay: the selected checks need them.
    """
    selected = [manifest.service(name) for name in services] or list(manifest.services)
    wanted = frozenset[str]().union(*(FAMILIES[f] for f in families)) if families else None
    skips: list[Skip] = []
    plans: list[ServicePlan] = []
    for spec in selected:
        tasks = _service_tasks(manifest, spec, skips)
        if wanted is not None:
            tasks = [t for t in tasks if t.is_setup or t.name in wanted]
        if wanted is not None and all(t.is_setup for t in tasks):
            continue  # nothing of the requested family here: do not install for nothing
        plans.append(ServicePlan(spec.name, spec.kind, spec.path, tuple(tasks)))
    plans = _hasura_after_database(plans, manifest)
    _check_after(plans, manifest)
    # a switched-off task is the team's choice: no note about it (it stays in `skipped`)
    notes = tuple(f"{s.service}: {s.reason}" for s in skips if s.by == CONVENTION)
    return Plan(project=manifest.project, services=tuple(plans), notes=notes, skipped=tuple(skips))


# (task, note): a convention that found nothing for that task, said once before the run.
Skipped = list[tuple[str, str]]


def _service_tasks(manifest: Manifest, spec: ServiceSpec, skips: list[Skip]) -> list[Task]:
    directory = manifest.root / spec.path
    skipped: Skipped = []
    match spec.kind:
        case ServiceKind.NODE | ServiceKind.NUXT:
            defaults = _node_defaults(spec, directory, skipped)
        case ServiceKind.PYTHON:
            defaults = _python_defaults(spec, directory, skipped)
        case ServiceKind.HASURA:
            defaults = _hasura_defaults(manifest, spec)
        case ServiceKind.DELIVERY:
            defaults = _delivery_defaults(spec)
    # a task the manifest declares (or switches off) is the team's choice: no note about it
    skips.extend(Skip(spec.name, task, note) for task, note in skipped if task not in spec.tasks)
    for name, override in spec.tasks.items():
        if not override.enabled:
            where = f"services.{spec.name}.tasks.{name}"
            reason = f"switched off in {MANIFEST_FILE} ({where})"
            skips.append(Skip(spec.name, name, reason, OVERRIDE, where))
    return _apply_overrides(spec, defaults)


# Node tasks that run a package.json script of the same purpose: (task, script, what).
_SCRIPT_TASKS = (
    ("lint", "lint", "lint"),
    ("format", "format:check", "format"),
    ("test", "test", "tests"),
)


def _node_defaults(spec: ServiceSpec, directory: Path, skipped: Skipped) -> list[Task]:
    package = _read_package_json(directory / "package.json", spec)
    scripts = _str_map(package.get("scripts"))
    deps = {**_str_map(package.get("devDependencies")), **_str_map(package.get("dependencies"))}
    manifest_file = f"{spec.path}/package.json"
    if (directory / "pnpm-lock.yaml").exists():
        lock = "pnpm-lock.yaml"
        tool, version = Tool.PNPM, _pnpm_version(package, directory)
        install = ("pnpm", "install", "--frozen-lockfile")
        exec_, run = exec_prefix(Tool.PNPM), ("pnpm", "run")
        caches = PNPM_CACHES
    elif (directory / "package-lock.json").exists():
        lock = "package-lock.json"
        tool, version = Tool.NPM, ""
        install = ("npm", "ci", "--no-audit", "--no-fund")
        exec_, run = exec_prefix(Tool.NPM), ("npm", "run")
        caches = NPM_CACHES
    else:
        raise ManifestError(
            f"{spec.path}/: no lock file (pnpm-lock.yaml or package-lock.json) for service "
            f"{spec.name!r}; run `pnpm install` there and commit pnpm-lock.yaml "
            "(installs run frozen)"
        )

    def task(
        name: str, argv: tuple[str, ...], origin: Origin, outputs: tuple[str, ...] = ()
    ) -> Task:
        return Task(
            service=spec.name,
            name=name,
            tool=tool,
            tool_version=version,
            workdir=spec.path,
            argv=argv,
            env=NODE_ENV,
            caches=caches,
            outputs=outputs,
            origin=origin,
        )

    locked = Origin(file=f"{spec.path}/{lock}", detail=f"{lock}: a {tool} project")
    tasks = [task("install", install, locked, ("node_modules",))]
    if spec.kind is ServiceKind.NUXT:
        nuxt = Origin(detail="a nuxt service")
        tasks.append(task("prepare", (*exec_, "nuxi", "prepare"), nuxt, (".nuxt",)))
    elif "prisma" in deps and _prisma_schema(package, directory, spec) is not None:
        direct = "prisma" in _str_map(package.get("dependencies"))
        table = "dependencies" if direct else "devDependencies"
        prisma = Origin(
            file=manifest_file, field=f"{table}.prisma", detail="prisma and a Prisma schema"
        )
        tasks.append(task("prepare", (*exec_, "prisma", "generate"), prisma))
    for name, script, what in _SCRIPT_TASKS:
        if script in scripts:
            origin = Origin(
                file=manifest_file, field=f"scripts.{script}", detail=f"the `{script}` script"
            )
            tasks.append(task(name, (*run, script), origin))
        else:
            skipped.append((name, f"no `{script}` script in package.json, {what} skipped"))
    typecheck = _node_typecheck(spec, directory, scripts, deps, exec_=exec_, run=run)
    if typecheck:
        tasks.append(task("typecheck", typecheck, _typecheck_origin(spec, scripts, typecheck)))
    else:
        skipped.append(
            (
                "typecheck",
                "no `typecheck` script, nor typescript with a tsconfig.json, typecheck skipped",
            )
        )
    return tasks


def _typecheck_origin(
    spec: ServiceSpec, scripts: Mapping[str, str], argv: tuple[str, ...]
) -> Origin:
    """Which of `_node_typecheck`'s rules chose `argv`."""
    if "typecheck" in scripts:
        return Origin(
            file=f"{spec.path}/package.json",
            field="scripts.typecheck",
            detail="the `typecheck` script",
        )
    if "nuxi" in argv:
        return Origin(detail="a nuxt service")
    return Origin(
        file=f"{spec.path}/tsconfig.json", detail="typescript in package.json and a tsconfig.json"
    )


def _node_typecheck(
    spec: ServiceSpec,
    directory: Path,
    scripts: Mapping[str, str],
    deps: Mapping[str, str],
    *,
    exec_: tuple[str, ...],
    run: tuple[str, ...],
) -> tuple[str, ...]:
    """The project's own `typecheck` script, else the framework's checker; () for none."""
    if "typecheck" in scripts:
        return (*run, "typecheck")
    if spec.kind is ServiceKind.NUXT:
        return (*exec_, "nuxi", "typecheck")
    if "typescript" in deps and (directory / "tsconfig.json").exists():
        return (*exec_, "tsc", "--noEmit")
    return ()


# Python lock files `scan` audits but `check` does not install from.
_OTHER_PYTHON_LOCKS = ("poetry.lock", "requirements.txt")


def _python_defaults(spec: ServiceSpec, directory: Path, skipped: Skipped) -> list[Task]:
    if not (directory / "pyproject.toml").exists():
        raise ManifestError(
            f"{spec.path}/pyproject.toml: not found for python service {spec.name!r}; "
            "a python service is a uv project"
        )
    lock = directory / "uv.lock"
    if not lock.exists():
        other = next((f for f in _OTHER_PYTHON_LOCKS if (directory / f).exists()), None)
        found = (
            f" (it has {other}: `scan` audits that, but `check` installs with uv)" if other else ""
        )
        raise ManifestError(
            f"{spec.path}/: no uv.lock for service {spec.name!r}{found}; run `uv lock` there "
            "and commit uv.lock (installs run frozen)"
        )
    try:
        locked = tomllib.loads(lock.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{spec.path}/uv.lock: invalid TOML: {exc}; re-run `uv lock`") from None
    names = {
        str(package.get("name"))
        for package in map(as_dict, as_list(locked.get("package")) or [])
        if package is not None
    }
    run = ("uv", "run", "--frozen")
    lock_file = f"{spec.path}/uv.lock"

    def task(name: str, argv: tuple[str, ...], found: str, outputs: tuple[str, ...] = ()) -> Task:
        origin = Origin(file=lock_file, detail=found)
        return Task(
            service=spec.name,
            name=name,
            tool=Tool.UV,
            tool_version=UV_VERSION,
            workdir=spec.path,
            argv=argv,
            env=UV_ENV,
            caches=UV_CACHES,
            outputs=outputs,
            origin=origin,
        )

    tasks = [task("install", ("uv", "sync", "--frozen"), "uv.lock: a uv project", (".venv",))]
    if "ruff" in names:
        tasks.append(task("lint", (*run, "ruff", "check", "."), "ruff in uv.lock"))
        tasks.append(task("format", (*run, "ruff", "format", "--check", "."), "ruff in uv.lock"))
    else:
        skipped.append(("lint", "ruff is not in uv.lock, lint skipped"))
        skipped.append(("format", "ruff is not in uv.lock, format skipped"))
    if "pyright" in names:
        tasks.append(task("typecheck", (*run, "pyright"), "pyright in uv.lock"))
    elif "mypy" in names:
        tasks.append(task("typecheck", (*run, "mypy", "."), "mypy in uv.lock"))
    else:
        skipped.append(("typecheck", "neither pyright nor mypy is in uv.lock, typecheck skipped"))
    if "pytest" in names:
        tasks.append(task("test", (*run, "pytest"), "pytest in uv.lock"))
    else:
        skipped.append(("test", "pytest is not in uv.lock, tests skipped"))
    return tasks


def _hasura_defaults(manifest: Manifest, spec: ServiceSpec) -> list[Task]:
    if not (manifest.root / spec.path / "config.yaml").exists():
        raise ManifestError(
            f"{spec.path}/config.yaml: not found for hasura service {spec.name!r}; "
            "it must be a Hasura project directory (config v3)"
        )
    if spec.migrations is not None:
        inputs: tuple[str, ...] = (spec.path,)  # Hasura's migrations live in the project
    else:
        inputs = (spec.path, f"{manifest.service(spec.database or '').path}/prisma")
    return [
        Task(
            service=spec.name,
            name="validate",
            tool=Tool.WORMHOLE,
            tool_version="",
            workdir=".",
            argv=("wormhole-ci", "validate-hasura", "--source", ".", "--service", spec.name),
            inputs=inputs,
            origin=Origin(file=f"{spec.path}/config.yaml", detail="a hasura project"),
        )
    ]


def _delivery_defaults(spec: ServiceSpec) -> list[Task]:
    return [
        Task(
            service=spec.name,
            name="validate",
            tool=Tool.DELIVERY,
            tool_version="",
            workdir=".",
            argv=("wormhole-ci", "validate-delivery", "--source", ".", "--service", spec.name),
            inputs=(spec.path, spec.runbooks or DEFAULT_RUNBOOKS),
            origin=Origin(detail="a delivery service"),
        )
    ]


def _apply_overrides(spec: ServiceSpec, defaults: list[Task]) -> list[Task]:
    by_name = {t.name: t for t in defaults}
    template = defaults[-1]
    for name, override in spec.tasks.items():
        base = by_name.get(name)
        if not override.enabled:
            by_name.pop(name, None)
            continue
        if base is None:
            if override.run is None:
                raise ManifestError(
                    f"services.{spec.name}.tasks.{name}: there is no default {name!r} task "
                    "for this service; give it a `run` command"
                )
            base = replace(template, name=name, outputs=(), after=(), argv=())
        by_name[name] = _override(base, override, f"services.{spec.name}.tasks.{name}")
    order = {name: i for i, name in enumerate(STANDARD_TASKS)}
    extra_order = {name: i for i, name in enumerate(spec.tasks)}
    return sorted(
        by_name.values(),
        key=lambda t: (order.get(t.name, len(order)), extra_order.get(t.name, 0)),
    )


def _override(task: Task, override: TaskOverride, where: str) -> Task:
    env = dict(task.env)
    env.update(override.env)
    argv = override.run or task.argv
    changed = (*(("run",) if override.run else ()), *(("env",) if override.env else ()))
    origin = Origin(
        by=OVERRIDE,
        file=MANIFEST_FILE,
        field=where,
        detail=task.origin.detail if not override.run else "",
        replaced=task.argv if argv != task.argv else (),
        changed=changed,
    )
    return replace(task, argv=argv, env=tuple(sorted(env.items())), origin=origin)


def _hasura_after_database(plans: list[ServicePlan], manifest: Manifest) -> list[ServicePlan]:
    """Hasura's check waits for its database service's setup when both are planned.

    Without PostgreSQL binaries the check falls back to the Prisma datamodel, which
    needs that service's installed and generated client; waiting keeps it deterministic.
    """
    setup = {p.service: [t.key for t in p.tasks if t.is_setup] for p in plans}
    out: list[ServicePlan] = []
    for plan in plans:
        if plan.kind is not ServiceKind.HASURA:
            out.append(plan)
            continue
        database = manifest.service(plan.service).database or ""
        deps = tuple(setup.get(database, ())[-1:])
        out.append(replace(plan, tasks=tuple(replace(t, after=deps) for t in plan.tasks)))
    return out


def _check_after(plans: list[ServicePlan], manifest: Manifest) -> None:
    keys = {t.key for p in plans for t in p.tasks}
    for plan in plans:
        for task in plan.tasks:
            for dep in task.after:
                if dep not in keys:
                    raise ManifestError(
                        f"{manifest.root.name}: task {task.key} needs {dep}, which is not planned"
                    )


def _read_package_json(path: Path, spec: ServiceSpec) -> dict[str, object]:
    rel = f"{spec.path}/package.json"
    try:
        raw: object = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(
            f"{rel}: not found for {spec.kind} service {spec.name!r}; fix services."
            f"{spec.name}.path or its kind"
        ) from None
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{rel}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; fix the file"
        ) from None
    package = as_dict(raw)
    if package is None:
        raise ManifestError(f"{rel}: expected a JSON object at the top level")
    return package


# Prisma's own precedence: the config file's `schema`, then package.json, then the default.
PRISMA_CONFIGS = ("prisma.config.ts", "prisma.config.mts", "prisma.config.js", "prisma.config.mjs")
DEFAULT_PRISMA_SCHEMA = "prisma/schema.prisma"
# `schema: "…"` as a literal in the config object; a computed path is not read (override `prepare`).
_CONFIG_SCHEMA = re.compile(r"""^\s*schema\s*:\s*(["'`])([^"'`]+)\1""", re.MULTILINE)


def _prisma_schema(
    package: Mapping[str, object], directory: Path, spec: ServiceSpec
) -> Path | None:
    """The Prisma schema (file or folder) the project declares, or None when there is none.

    Sources in Prisma's order: `schema:` in prisma.config.ts (a literal string, read with a
    regex), package.json `prisma.schema`, else `prisma/schema.prisma`. A declared path that
    does not exist is a ManifestError naming the file and field.
    """
    for name in PRISMA_CONFIGS:
        config = directory / name
        if config.exists():
            match = _CONFIG_SCHEMA.search(config.read_text(encoding="utf-8"))
            if match:
                return _declared_schema(directory, match.group(2), f"{spec.path}/{name}", "schema")
    declared = (as_dict(package.get("prisma")) or {}).get("schema")
    if declared is not None:
        if not isinstance(declared, str) or not declared:
            raise ManifestError(
                f"{spec.path}/package.json: prisma.schema is {declared!r}; set it to the schema's "
                'path relative to package.json (e.g. "prisma/schema.prisma")'
            )
        return _declared_schema(directory, declared, f"{spec.path}/package.json", "prisma.schema")
    default = directory / DEFAULT_PRISMA_SCHEMA
    return default if default.exists() else None


def _declared_schema(directory: Path, declared: str, where: str, field_name: str) -> Path:
    path = directory / declared
    if not path.exists():
        raise ManifestError(
            f"{where}: {field_name} is {declared!r}, which does not exist; fix the path "
            "(relative to the service folder) or remove the field"
        )
    return path


def _str_map(value: object) -> dict[str, str]:
    return {k: str(v) for k, v in (as_dict(value) or {}).items()}


# The pnpm that wrote an older pnpm-lock.yaml `lockfileVersion` major, at its last release.
# 9.0 is written by pnpm 9 and every pnpm since, the pin included: it means the pin.
LOCKFILE_PNPM: Mapping[str, str] = {"6": "8.15.9", "5": "7.33.7"}
_LOCKFILE_VERSION = re.compile(r"""^lockfileVersion:\s*['"]?(\d+)""", re.MULTILINE)


def project_pnpm_version(spec: ServiceSpec, directory: Path) -> str:
    """The one pnpm a service's install and `pnpm audit` both run (see `_pnpm_version`)."""
    return _pnpm_version(_read_package_json(directory / "package.json", spec), directory)


def _pnpm_version(package: Mapping[str, object], directory: Path) -> str:
    """`packageManager` (corepack's field), else the pnpm that wrote an older lock file,
    else the pipeline's pin.

    A pnpm newer than the project's fails on its lock file or config (issue 16: pnpm 12
    on a pnpm 9 project ended in "Failed to resolve config dependency"). `check` and
    `scan` take the answer from here, so an audit never runs a pnpm the install did not.
    """
    field_value = package.get("packageManager")
    if field_value is None:
        return _lockfile_pnpm(directory / "pnpm-lock.yaml")
    if not isinstance(field_value, str) or not field_value.startswith("pnpm@"):
        raise ManifestError(
            f"{directory / 'package.json'}: packageManager is {field_value!r} but the lock file "
            f'is pnpm\'s; set it to "pnpm@{PNPM_VERSION}"'
        )
    return field_value.removeprefix("pnpm@").split("+", 1)[0]


def _lockfile_pnpm(lock: Path) -> str:
    try:
        with lock.open(encoding="utf-8") as text:
            head = text.read(4096)
    except OSError:
        return PNPM_VERSION
    found = _LOCKFILE_VERSION.search(head)
    return LOCKFILE_PNPM.get(found.group(1), PNPM_VERSION) if found else PNPM_VERSION
