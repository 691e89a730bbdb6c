"""Getting a migration job ready natively: the service installed, Prisma and squawk found."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from wormhole_ci.check.native import DEFAULT_TASK_TIMEOUT, NativeOptions, run_plan
from wormhole_ci.check.progress import PlainReporter
from wormhole_ci.errors import MigrateError
from wormhole_ci.manifest import Manifest, ServiceSpec
from wormhole_ci.migrate.job import MigrateOptions
from wormhole_ci.migrate.sqlgate import provision_squawk
from wormhole_ci.plan import Plan, ServicePlan, build_plan
from wormhole_ci.results import summary
from wormhole_ci.toolchains import host_fingerprint


def setup_service(
    manifest: Manifest, service: str, cache_dir: Path, say: Callable[[str], None]
) -> None:
    """The service's install/prepare tasks (reused when unchanged), as `check` runs them."""
    full = build_plan(manifest, [service])
    plan = Plan(
        project=full.project,
        services=tuple(
            ServicePlan(s.service, s.kind, s.path, tuple(t for t in s.tasks if t.is_setup))
            for s in full.services
        ),
    )
    options = NativeOptions(
        source=manifest.root,
        log_dir=(manifest.root / ".wormhole-ci" / "logs").resolve(),
        cache_dir=cache_dir,
        jobs=1,
        task_timeout=DEFAULT_TASK_TIMEOUT,
        reuse=True,
        toolchain=host_fingerprint(),
    )
    report = run_plan(plan, options, PlainReporter(sys.stderr), say)
    if not report.ok:
        raise MigrateError(
            f"setting up {service} failed, nothing was migrated:\n{summary(report, 'setup')}"
        )


def prepare_migrate(
    manifest: Manifest,
    spec: ServiceSpec,
    cache_dir: Path,
    say: Callable[[str], None],
    *,
    lock_timeout: float,
    allow_destructive: bool,
    backup_dir: Path | None,
    sha: str | None,
) -> MigrateOptions:
    """Install the service (for its Prisma CLI) and squawk; the job's options."""
    setup_service(manifest, spec.name, cache_dir, say)
    service_dir = manifest.root / spec.path
    prisma = service_dir / "node_modules" / ".bin" / "prisma"
    if not prisma.exists():
        raise MigrateError(
            f"{spec.name}: {prisma} is missing after the install; add prisma to its devDependencies"
        )
    return MigrateOptions(
        project=manifest.project,
        service=spec.name,
        service_dir=service_dir,
        prisma=(str(prisma),),
        squawk=provision_squawk(cache_dir, spec.name),
        lock_timeout=lock_timeout,
        allow_destructive=allow_destructive,
        backup_dir=backup_dir,
        sha=sha,
    )
