"""`plan`: what `check` runs for each service and why, as one stable JSON document (docs/plan.md)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path

from wormhole_ci import __version__
from wormhole_ci.check.container import service_spec
from wormhole_ci.check.explain import LOCK_FILES
from wormhole_ci.check.taskcache import IGNORED_DIRS, IGNORED_SUFFIXES, input_files
from wormhole_ci.errors import ImageError
from wormhole_ci.images.spec import ImageSpec, image_specs
from wormhole_ci.jsonish import as_dict
from wormhole_ci.manifest import Environment, Manifest
from wormhole_ci.plan import Origin, Plan, ServicePlan, Task, Tool, build_plan, project_pnpm_version
from wormhole_ci.toolchains import NODE_MAJOR

PLAN_SCHEMA = 1
"""Bumped when a member changes meaning or goes away; adding members keeps it."""
# What natively enters every key besides the task's own tools (toolchains.host_fingerprint);
# in Dagger the container image plays that part.
HOST_TOOLCHAIN = ("platform", "node", "python")


def plan_document(manifest: Manifest, services: Sequence[str] = ()) -> dict[str, object]:
    """The plan of `services` (all when empty) from the same `build_plan` the check runs.

    Nothing in it is a secret: env vars and secrets appear by name only, never by value,
    and paths are relative to the monorepo root (so native and Dagger documents agree).
    """
    plan = build_plan(manifest, services)
    images = {spec.service: spec for spec in _images(manifest, services)}
    return {
        "schema": PLAN_SCHEMA,
        "project": manifest.project,
        "services": [_service(manifest, plan, s, images.get(s.service)) for s in plan.services],
        "notes": list(plan.notes),
        "cache": {
            "host_toolchain": list(HOST_TOOLCHAIN),
            "ignored_dirs": sorted(IGNORED_DIRS),
            "ignored_suffixes": list(IGNORED_SUFFIXES),
        },
        "environments": [_environment(manifest, env) for env in manifest.environments],
    }


def plan_json(manifest: Manifest, services: Sequence[str] = ()) -> str:
    """`plan_document` as indented JSON with sorted keys (stable for diffs and tests)."""
    return json.dumps(plan_document(manifest, services), indent=2, sort_keys=True) + "\n"


def _images(manifest: Manifest, services: Sequence[str]) -> tuple[ImageSpec, ...]:
    chosen = set(services)
    try:
        specs = image_specs(manifest)
    except ImageError:
        return ()  # no service has a Dockerfile: nothing is built, which is no planning error
    return tuple(s for s in specs if not chosen or s.service in chosen)


def _service(
    manifest: Manifest, plan: Plan, service: ServicePlan, image: ImageSpec | None
) -> dict[str, object]:
    return {
        "name": service.service,
        "kind": str(service.kind),
        "directory": service.path,
        "toolchain": _toolchain(manifest, service),
        "tasks": [_task(manifest, t) for t in service.tasks],
        "skipped": [
            {"task": s.task, "reason": s.reason, "by": s.by, "field": s.field or None}
            for s in plan.skipped
            if s.service == service.service
        ],
        "image": None
        if image is None
        else {
            "context": image.context,
            "dockerfile": f"{image.context}/{image.dockerfile}",
            "repository": image.repository,
            "tag": "<sha7>",
        },
    }


def _toolchain(manifest: Manifest, service: ServicePlan) -> dict[str, object]:
    """The tool the service's tasks run with, its version, and the container `dagger` uses."""
    if not service.tasks:
        return {"tool": None, "container": None}
    tool = service.tasks[0].tool
    spec = manifest.service(service.service)
    directory = manifest.root / spec.path
    out: dict[str, object] = {"tool": tool.value, "container": service_spec(service).image}
    match tool:
        case Tool.PNPM:
            out["pnpm"] = project_pnpm_version(spec, directory)
            out["node"] = f">={NODE_MAJOR}"
        case Tool.NPM:
            out["node"] = f">={NODE_MAJOR}"
        case Tool.UV:
            out["uv"] = service.tasks[0].tool_version
            out["python"] = _requires_python(directory / "pyproject.toml")
        case Tool.WORMHOLE | Tool.DELIVERY:
            out["wormhole-ci"] = __version__
    return out


def _requires_python(pyproject: Path) -> str | None:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    value = (as_dict(data.get("project")) or {}).get("requires-python")
    return value if isinstance(value, str) else None


def _task(manifest: Manifest, task: Task) -> dict[str, object]:
    inputs = task.inputs or (task.workdir,)
    locks = sorted(
        p.relative_to(manifest.root).as_posix()
        for p in input_files(manifest.root, inputs)
        if p.name in LOCK_FILES
    )
    names = [name for name, _ in task.env]  # values are never shown: only names
    return {
        "name": task.name,
        "command": list(task.argv),
        "workdir": task.workdir,
        "tool": task.tool.value,
        "tool_version": task.tool_version or None,
        "env": names,
        "setup": task.is_setup,
        "after": list(task.after),
        "outputs": list(task.outputs),
        "caches": [c.name for c in task.caches],
        "origin": _origin(task.origin),
        "cache_key": {
            "command": list(task.argv),
            "workdir": task.workdir,
            "tools": {task.tool.value: task.tool_version or "any", "wormhole-ci": __version__},
            "env": names,
            "inputs": sorted(set(inputs)),
            "lock_files": locks,
        },
    }


def _origin(origin: Origin) -> dict[str, object]:
    return {
        "by": origin.by,
        "file": origin.file or None,
        "field": origin.field or None,
        "detail": origin.detail or None,
        "replaced": list(origin.replaced) or None,
        "changed": list(origin.changed),
    }


def _environment(manifest: Manifest, env: Environment) -> dict[str, object]:
    """An environment's targets and the *names* of the variables holding its secrets."""
    repository = {s.name: f"{manifest.project}-{s.name}" for s in manifest.services}
    secrets: dict[str, str] = dict(env.secrets)
    if env.hasura is not None:
        secrets["hasura.admin_secret"] = env.hasura.admin_secret
    if env.observability is not None and env.observability.pushgateway_auth:
        secrets["observability.pushgateway_auth"] = env.observability.pushgateway_auth
    if env.preview is not None:
        secrets["preview.database_url"] = env.preview.database_url
    if env.notify is not None:
        secrets["notify.url_secret"] = env.notify.url_secret
    return {
        "name": env.name,
        "coolify_url": env.coolify_url,
        "registry": env.registry,
        "registry_username": env.registry_username,
        "secrets": secrets,
        "deploy_timeout": env.deploy_timeout,
        "verify_timeout": env.verify_timeout,
        "targets": [
            {
                "service": t.service,
                "application": t.application,
                "tag": t.tag,
                "health_url": t.health_url,
                "image": f"{env.registry}/{repository[t.service]}:<sha7>",
            }
            for t in env.targets
        ],
        "hasura": None
        if env.hasura is None
        else {"url": env.hasura.url, "application": env.hasura.application},
        "observability": None
        if env.observability is None
        else {"pushgateway_url": env.observability.pushgateway_url},
        "preview": None
        if env.preview is None
        else {"database_env": env.preview.database_env, "services": dict(env.preview.services)},
        "notify": None if env.notify is None else {"kind": env.notify.kind},
    }
