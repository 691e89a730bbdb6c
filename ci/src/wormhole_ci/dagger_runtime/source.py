"""The monorepo as a `dagger.Directory`: the plan read from it, and the containers built on it."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import dagger
from dagger import ReturnType, dag

from wormhole_ci.affected import Changes
from wormhole_ci.check.container import ContainerSpec, Exec
from wormhole_ci.containers import MODULE_SOURCE, CacheMount
from wormhole_ci.dagger_runtime.affected import Since
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.images.spec import ImageSpec
from wormhole_ci.manifest import Manifest, load_manifest
from wormhole_ci.paths import GENERATED_DIRS

# Dependency folders, build outputs and caches never enter the engine: they are rebuilt
# in containers, and leaving them out keeps the source's cache key stable.
SOURCE_IGNORE = [*(f"**/{d}" for d in sorted(GENERATED_DIRS)), "**/.env", ".git"]
# The files the planner reads; only these are exported into the module to build the plan.
PLAN_INPUTS = [
    "wormhole-ci.toml",
    "**/package.json",
    "**/pnpm-lock.yaml",
    "**/package-lock.json",
    # lock files the audit has no auditor for still decide the service's audit row
    "**/yarn.lock",
    "**/bun.lock",
    "**/bun.lockb",
    "**/pyproject.toml",
    "**/uv.lock",
    "**/poetry.lock",
    "**/requirements.txt",
    "**/nuxt.config.*",
    "**/tsconfig.json",
    # wherever prisma.config.* or package.json put the schema (a file or a folder of them)
    "**/prisma.config.*",
    "**/*.prisma",
    "**/config.yaml",
    "**/metadata/**",  # Hasura projects' metadata: the release applies it to the engine
    "**/*Dockerfile*",  # image specs check that each service's Dockerfile exists
    # a delivery service's directory must exist for the manifest to load
    "**/observability/metrics.txt",
    "**/coolify/docker-compose.yml",
]
T = TypeVar("T")


class DaggerSource:
    """The monorepo the module was called on (`WormholeCi.source`)."""

    def __init__(self, directory: dagger.Directory, since: Since | None = None) -> None:
        self.directory = directory
        self.since = since

    async def changes(self) -> Changes | None:
        """What changed since `--since` (None without it: no selection)."""
        return await self.since.changes() if self.since is not None else None

    async def planned(self, fn: Callable[[Manifest], T]) -> T:
        """Run `fn` on the manifest, with the planner's input files exported into the module."""
        with tempfile.TemporaryDirectory(prefix="wormhole-ci-plan-") as tmp:
            await self.directory.filter(include=PLAN_INPUTS).export(tmp)
            try:
                return fn(load_manifest(Path(tmp)))
            except WormholeCiError as exc:
                # Paths in the message are the temporary export: show them relative.
                raise type(exc)(str(exc).replace(f"{Path(tmp).resolve()}/", "")) from None

    def container(self, spec: ContainerSpec) -> dagger.Container:
        """The service's container up to (not including) its first task."""
        ctr = dag.container().from_(spec.image)
        if spec.needs_module_source:
            ctr = ctr.with_directory(MODULE_SOURCE, dag.current_module().source())
        ctr = tooled(ctr, spec.toolchain, spec.caches, spec.env)
        source = self.directory
        part = source if spec.source_path == "." else source.directory(spec.source_path)
        if spec.include:
            # Only the declared inputs (see check.container), so the engine reruns the
            # service only when they change; this package loads the manifest, which needs
            # the planner's files too.
            planner = PLAN_INPUTS if spec.needs_module_source else []
            part = part.filter(include=[*spec.include, *planner])
        return ctr.with_directory(spec.mount, part)

    def image(
        self, spec: ImageSpec, args: Sequence[tuple[str, str]], platform: str | None
    ) -> dagger.Container:
        """The service's image, built from its Dockerfile."""
        context = self.directory.directory(spec.context)
        return context.docker_build(
            dockerfile=spec.dockerfile,
            platform=dagger.Platform(platform) if platform else None,
            build_args=[dagger.BuildArg(name=k, value=v) for k, v in args],
        )

    def variants(
        self, spec: ImageSpec, args: Sequence[tuple[str, str]], platforms: Sequence[str]
    ) -> list[dagger.Container]:
        """One container per platform (just the engine's own when none is asked for)."""
        return [self.image(spec, args, p) for p in platforms] or [self.image(spec, args, None)]


def shown(line: str) -> None:
    """A progress or warning line `dagger call` shows (the module's stderr); callers pass
    lines that name no secret."""
    print(line, file=sys.stderr, flush=True)


def tooled(
    ctr: dagger.Container,
    toolchain: tuple[tuple[str, ...], ...],
    caches: tuple[CacheMount, ...],
    env: tuple[tuple[str, str], ...],
) -> dagger.Container:
    """Install pinned tools, mount cache volumes and set the environment, in that order."""
    for argv in toolchain:
        ctr = ctr.with_exec(list(argv))
    for cache in caches:
        ctr = ctr.with_mounted_cache(cache.path, dag.cache_volume(cache.volume))
    for name, value in env:
        ctr = ctr.with_env_variable(name, value)
    return ctr


def with_exec(ctr: dagger.Container, ex: Exec, expect: ReturnType) -> dagger.Container:
    """One exec of a container spec: its environment, its working directory, its argv."""
    for name, value in ex.env:
        ctr = ctr.with_env_variable(name, value)
    return ctr.with_workdir(ex.workdir).with_exec(list(ex.argv), expect=expect)
