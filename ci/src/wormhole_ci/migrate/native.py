"""Getting a migration job ready natively: the service installed, Prisma and squawk found."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from wormhole_ci.check import DEFAULT_TASK_TIMEOUT
from wormhole_ci.check.native import NativeOptions, run_plan
from wormhole_ci.check.progress import PlainReporter
from wormhole_ci.errors import MigrateError
from wormhole_ci.manifest import Manifest, ServiceSpec
from wormhole_ci.migrate.job import MigrateOptions
from wormhole_ci.migrate.sqlgate import provision_squawk
from wormhole_ci.plan import Plan, ServicePlan, Task, Tool, build_plan
from wormhole_ci.results import RunReport, Status, summary
from wormhole_ci.toolchains import host_fingerprint

# Offline first (measured with pnpm 12.4.2, warm store): a frozen install re-verifies the lock
# file against pnpm's supply-chain policies, which needs registry metadata unless pnpm's cache
# (`pnpm-cache`, next to the store) already covers it. Without network a plain or
# `--prefer-offline` install then retried for minutes (>300 s, the 562 s of issue 13), while
# `--offline` uses only the store and the metadata cache: 0.6 s when both are warm, and a
# clear ERR_PNPM_NO_OFFLINE_META/TARBALL in 0.2 s when something is missing. Only then is the
# registry tried, once, with bounded waits: pnpm's default retries (with backoff) are what
# turn an unreachable registry into a hang (0 retries: fails in 0.4 s; 1 retry: 40 s).
OFFLINE_FLAG = "--offline"
FETCH_TIMEOUT_MS = 30_000
ONLINE_ENV = (("pnpm_config_fetch_retries", "0"),)
# What a frozen pnpm install's result depends on (paths relative to the service), so a new
# migration folder or source file does not re-run it; a reused install also needs its
# node_modules to exist.
INSTALL_INPUTS = (
    "package.json",
    "pnpm-lock.yaml",
    "pnpm-workspace.yaml",
    ".npmrc",
    ".pnpmfile.cjs",
    "patches",
)
_OFFLINE_MISS = re.compile(r"ERR_PNPM_NO_OFFLINE_(?:META|TARBALL)")
_PNPM_ERROR = re.compile(r"ERR_PNPM_\w+[^\n]*")
_MISSING_PACKAGE = re.compile(r"Failed to resolve (\S+)|(?:tarball|package) (\S+@\S+)")


def setup_service(
    manifest: Manifest, service: str, cache_dir: Path, say: Callable[[str], None]
) -> None:
    """The service's install/prepare tasks (reused when unchanged), as `check` runs them,
    except that a pnpm install runs offline first (see OFFLINE_FLAG)."""
    full = build_plan(manifest, [service])
    offline = setup_plan(full, online=False)
    options = NativeOptions(
        source=manifest.root,
        log_dir=(manifest.root / ".wormhole-ci" / "logs").resolve(),
        cache_dir=cache_dir,
        jobs=1,
        task_timeout=DEFAULT_TASK_TIMEOUT,
        reuse=True,
        toolchain=host_fingerprint(),
    )
    report = run_plan(offline, options, PlainReporter(sys.stderr), say)
    missing = _offline_miss(report)
    if missing is not None:
        names = ", ".join(missing) or "see the install log"
        say(
            f"{service}: the pnpm store in {cache_dir} lacks packages or metadata ({names}); "
            "installing once from the registry"
        )
        report = run_plan(setup_plan(full, online=True), options, PlainReporter(sys.stderr), say)
        if not report.ok and _install_failed(report):
            raise MigrateError(_cold_store_message(service, cache_dir, names, report))
    if not report.ok:
        raise MigrateError(
            f"setting up {service} failed, nothing was migrated:\n{summary(report, 'setup')}"
        )


def setup_plan(full: Plan, *, online: bool) -> Plan:
    return Plan(
        project=full.project,
        services=tuple(
            ServicePlan(
                s.service,
                s.kind,
                s.path,
                tuple(_setup_task(t, online=online) for t in s.tasks if t.is_setup),
            )
            for s in full.services
        ),
    )


def _setup_task(task: Task, *, online: bool) -> Task:
    if task.tool is not Tool.PNPM or task.name != "install":
        return task
    inputs = tuple(f"{task.workdir}/{name}" for name in INSTALL_INPUTS)
    if online:
        argv = (*task.argv, "--prefer-offline", "--fetch-timeout", str(FETCH_TIMEOUT_MS))
        return replace(task, argv=argv, env=(*task.env, *ONLINE_ENV), inputs=inputs)
    return replace(task, argv=(*task.argv, OFFLINE_FLAG), inputs=inputs)


def _install_result_log(report: RunReport) -> str | None:
    for result in report.results:
        if result.task == "install" and result.status is Status.FAILED:
            if result.log is None:
                return result.tail
            try:
                return Path(result.log).read_text(encoding="utf-8", errors="replace")
            except OSError:
                return result.tail
    return None


def _install_failed(report: RunReport) -> bool:
    return _install_result_log(report) is not None


def _offline_miss(report: RunReport) -> list[str] | None:
    log = _install_result_log(report)
    return None if log is None else offline_miss_names(log)


def offline_miss_names(log: str) -> list[str] | None:
    """The packages an offline install's `log` says are in neither the store nor the metadata
    cache (possibly none named), or None when it did not fail that way."""
    if not _OFFLINE_MISS.search(log):
        return None
    # pnpm wraps its messages at 80 columns (also breaking names after a hyphen): unwrap.
    flat = re.sub(r"\n\s+", " ", re.sub(r"-\n\s+", "-", log))
    names = [a or b for a, b in _MISSING_PACKAGE.findall(flat)]
    return list(dict.fromkeys(n.rstrip(".,:;") for n in names if n))


def _cold_store_message(service: str, cache_dir: Path, names: str, report: RunReport) -> str:
    log = _install_result_log(report) or ""
    found = _PNPM_ERROR.search(log)
    reason = found.group(0).strip() if found else "the install failed"
    return (
        f"setting up {service} failed, nothing was migrated: its dependencies are not all in "
        f"the pnpm store ({cache_dir / 'pnpm-store'}) and metadata cache "
        f"({cache_dir / 'pnpm-cache'}) — pnpm reports missing: {names} — and the registry "
        f"attempt failed "
        f"({reason}).\n"
        "Fix: run `wormhole-ci migrate` (or `check`) once with registry access and the same "
        "--cache-dir; or run `pnpm fetch` for this lock file where the registry is reachable, "
        "with pnpm_config_store_dir/pnpm_config_cache_dir pointing at those two directories, "
        "and copy or mount them here. Later runs then need no registry."
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
    dry_run: bool = False,
) -> MigrateOptions:
    """Install the service (for its Prisma CLI) and squawk; the job's options. A dry run
    runs no Prisma, so it installs only squawk (no pnpm install, no registry)."""
    if not dry_run:
        setup_service(manifest, spec.name, cache_dir, say)
    service_dir = manifest.root / spec.path
    prisma = service_dir / "node_modules" / ".bin" / "prisma"
    if not dry_run and not prisma.exists():
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
