"""Check tasks as container specs: image, toolchain, mounts, caches, env and execs (no Dagger runtime required).

`dagger_runtime/` turns a spec into a Dagger container mechanically; everything that decides
what runs is here, derived from the same plan tasks the native executor runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from wormhole_ci.containers import (
    COREPACK_ENV,
    MODULE_SOURCE,
    NODE_IMAGE,
    PYTHON_IMAGE,
    CacheMount,
    cache_mount,
    container_path,
    corepack_pnpm,
)
from wormhole_ci.plan import ServicePlan, Task, Tool
from wormhole_ci.toolchains import UV_VERSION


@dataclass(frozen=True)
class Exec:
    """One plan task as a `with_exec`."""

    task: str
    argv: tuple[str, ...]
    workdir: str
    env: tuple[tuple[str, str], ...]
    """The task's own environment, set just before its exec."""
    setup: bool
    """A failing setup exec blocks the service's remaining execs."""


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to build one service's check container."""

    service: str
    image: str
    toolchain: tuple[tuple[str, ...], ...]
    """Execs that install the pinned tools, before the source is added (cached layers)."""
    source_path: str
    """The part of the monorepo to add, relative to its root ("." for all of it)."""
    mount: str
    """Where that part goes in the container."""
    env: tuple[tuple[str, str], ...]
    """Toolchain and cache variables, set for every exec."""
    caches: tuple[CacheMount, ...]
    execs: tuple[Exec, ...]
    needs_module_source: bool = False
    """True when the execs run this package itself (it is installed from MODULE_SOURCE)."""
    include: tuple[str, ...] = ()
    """Paths (relative to source_path) to mount instead of all of it; () mounts it all."""


def _toolchain(task: Task) -> tuple[str, tuple[tuple[str, ...], ...], tuple[tuple[str, str], ...]]:
    """Image, tool-install execs and extra env for a task's toolchain."""
    match task.tool:
        case Tool.PNPM:
            return NODE_IMAGE, corepack_pnpm(task.tool_version), COREPACK_ENV
        case Tool.NPM:
            return NODE_IMAGE, (), ()
        case Tool.UV:
            return (
                PYTHON_IMAGE,
                (
                    (
                        "pip",
                        "install",
                        "--no-cache-dir",
                        "--root-user-action=ignore",
                        f"uv=={task.tool_version or UV_VERSION}",
                    ),
                ),
                # the cache volume is another filesystem: copy instead of failing hardlinks
                (("UV_LINK_MODE", "copy"),),
            )
        case Tool.WORMHOLE:
            return (
                PYTHON_IMAGE,
                (
                    ("apt-get", "update"),
                    ("apt-get", "install", "-y", "--no-install-recommends", "postgresql-15"),
                    (
                        "pip",
                        "install",
                        "--no-cache-dir",
                        "--root-user-action=ignore",
                        MODULE_SOURCE,
                    ),
                ),
                (),
            )
        case Tool.DELIVERY:
            return (
                PYTHON_IMAGE,
                (
                    ("apt-get", "update"),
                    (
                        "apt-get",
                        "install",
                        "-y",
                        "--no-install-recommends",
                        "prometheus",
                        "prometheus-alertmanager",
                    ),
                    (
                        "pip",
                        "install",
                        "--no-cache-dir",
                        "--root-user-action=ignore",
                        MODULE_SOURCE,
                    ),
                ),
                (),
            )


def service_spec(service: ServicePlan) -> ContainerSpec:
    """The container for one service's tasks, in plan order."""
    first = service.tasks[0]
    image, toolchain, extra_env = _toolchain(first)
    env: dict[str, str] = dict(extra_env)
    caches: dict[str, CacheMount] = {}
    for task in service.tasks:
        for cache in task.caches:
            mount = cache_mount(cache)
            caches[mount.volume] = mount
            env[cache.env] = mount.path
    needs_module = any(t.tool in (Tool.WORMHOLE, Tool.DELIVERY) for t in service.tasks)
    source_path = "." if needs_module else service.path
    return ContainerSpec(
        service=service.service,
        image=image,
        toolchain=toolchain,
        source_path=source_path,
        mount=container_path(source_path),
        env=tuple(sorted(env.items())),
        caches=tuple(caches.values()),
        execs=tuple(
            Exec(t.name, t.argv, container_path(t.workdir), t.env, setup=t.is_setup)
            for t in service.tasks
        ),
        needs_module_source=needs_module,
        include=_declared_inputs(service, source_path),
    )


def _declared_inputs(service: ServicePlan, source_path: str) -> tuple[str, ...]:
    """The union of the tasks' `inputs` under `source_path`, when every task declares some.

    Narrowing is per service, not per task: setup execs write into the mount (installed
    dependencies, generated clients) and checks are branches of that set-up container,
    so a check cannot be given a narrower mount than its setup without losing what the
    setup made. A service whose tasks do not all declare inputs mounts all of its path.
    """
    if not all(t.inputs for t in service.tasks):
        return ()
    paths = sorted({p for t in service.tasks for p in t.inputs})
    if source_path == ".":
        return tuple(paths)
    prefix = f"{source_path}/"
    if not all(p.startswith(prefix) for p in paths):
        return ()  # an input outside the mount (or the mount itself): mount it all
    return tuple(p.removeprefix(prefix) for p in paths)
