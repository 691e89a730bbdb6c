"""The scanners as containers: each scan task run in its pinned tool's container, the
outcomes concluded by the core's wrap-up (security/wrapup.py) into reports or a failure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import anyio
import dagger
from dagger import ReturnType, dag

from wormhole_ci.affected import Changes, affected_scan
from wormhole_ci.containers import (
    MODULE_REQUIREMENTS,
    MODULE_RULES,
    OUT_PATH,
    REQUIREMENTS_PATH,
    RULES_PATH,
    SCRATCH_PATH,
    SOURCE_ROOT,
    container_path,
    scanner_spec,
)
from wormhole_ci.dagger_runtime.source import DaggerSource, shown, tooled
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.manifest import Manifest
from wormhole_ci.security.model import Outcome
from wormhole_ci.security.model import Status as ScanStatus
from wormhole_ci.security.parsers.common import RawRun, ServiceOf, services_by_path
from wormhole_ci.security.policy import Verdict
from wormhole_ci.security.runner import substitute
from wormhole_ci.security.scanners import SCANNERS
from wormhole_ci.security.tasks import Family, ScanTask, image_scan, scan_plan
from wormhole_ci.security.wrapup import conclude, fail_on_level, failure, render_reports


async def scan_source(
    source: DaggerSource,
    families: frozenset[Family],
    fail_on: str | None,
    allow_unavailable: bool,
    *,
    enforce: bool,
) -> dagger.Directory:
    """Every scan task of `families` over the source: the reports, or a failure per policy."""
    changes = await source.changes()  # --since; the release's scan (below) never narrows
    manifest, tasks, outcomes, artifacts = await scan_outcomes(source, families, {}, changes)
    verdict = _verdict(tasks, outcomes, manifest, fail_on, allow_unavailable)
    return _reports(verdict, artifacts, enforce=enforce)


async def scan_image_archive(
    source: DaggerSource,
    archive: dagger.File,
    name: str,
    *,
    fail_on: str | None,
    allow_unavailable: bool,
) -> dagger.Directory:
    """A Trivy CVE scan of one image tarball: the reports, or a failure per policy."""
    task = image_scan("/image.tar", name)
    scanner = _scanner(task)
    version = await _scanner_version(scanner, task)
    ctr = scanner.with_file("/image.tar", archive)
    outcome, _ = await _scan_task(ctr, task, lambda _path: "", version)
    manifest = await source.planned(lambda m: m)
    verdict = _verdict((task,), [outcome], manifest, fail_on, allow_unavailable)
    return _reports(verdict, {}, enforce=True)


async def scan_outcomes(
    source: DaggerSource,
    families: frozenset[Family],
    images: dict[str, dagger.Container],
    changes: Changes | None = None,
) -> tuple[Manifest, list[ScanTask], list[Outcome], dict[str, dagger.File]]:
    """Every scan task of `families` (those `changes` affect, when given) plus a CVE scan of
    each image, concurrently; the outcomes in task order."""
    manifest, planned = await source.planned(lambda m: (m, scan_plan(m, families)))
    planned, notes = affected_scan(planned, manifest, changes)
    for note in notes:
        shown(f"note: {note}")
    service_of = services_by_path({s.name: s.path for s in manifest.services})
    every: list[tuple[ScanTask, dagger.Container | None]] = [(t, None) for t in planned]
    every += [(image_scan("/image.tar", name), image) for name, image in images.items()]
    outcomes: dict[int, Outcome] = {}
    artifacts: dict[str, dagger.File] = {}

    async def one(index: int, task: ScanTask, image: dagger.Container | None) -> None:
        if task.unavailable:  # nothing to run: the task says why
            outcomes[index] = SCANNERS[task.tool].parse(task, RawRun(None, ""), service_of)
            return
        scanner = _scanner(task)
        version = await _scanner_version(scanner, task)
        if image is None:
            ctr = scanner.with_directory(SOURCE_ROOT, source.directory)
        else:
            ctr = scanner.with_file("/image.tar", image.as_tarball())
        outcomes[index], ran = await _scan_task(ctr, task, service_of, version)
        if task.artifact and outcomes[index].status is ScanStatus.CLEAN:
            artifacts[task.artifact] = ran.file(f"{OUT_PATH}/{task.artifact}")

    async with anyio.create_task_group() as group:
        for index, (task, image) in enumerate(every):
            group.start_soon(one, index, task, image)
    tasks = [t for t, _ in every]
    return manifest, tasks, [outcomes[i] for i in range(len(tasks))], artifacts


async def scan_verdict(
    source: DaggerSource,
    families: frozenset[Family],
    fail_on: str | None,
    allow_unavailable: bool,
    images: dict[str, dagger.Container],
) -> Verdict:
    """The release's scan: the source and every image under one policy."""
    manifest, tasks, outcomes, _ = await scan_outcomes(source, families, images)
    return _verdict(tasks, outcomes, manifest, fail_on, allow_unavailable)


def _scanner(task: ScanTask) -> dagger.Container:
    """The scan tool's container: pinned image, hash-locked install, caches, rules."""
    spec = scanner_spec(task.tool, task.env, task.tool_version)
    ctr = dag.container().from_(spec.image)
    if spec.requirements:
        requirements = (
            dag.current_module().source().file(f"{MODULE_REQUIREMENTS}/{spec.requirements}")
        )
        ctr = ctr.with_file(REQUIREMENTS_PATH, requirements)
    ctr = tooled(ctr, spec.toolchain, spec.caches, spec.env)
    if spec.rules:
        ctr = ctr.with_directory(RULES_PATH, dag.current_module().source().directory(MODULE_RULES))
    return ctr.with_directory(OUT_PATH, dag.directory()).with_directory(
        SCRATCH_PATH, dag.directory()
    )


async def _scanner_version(scanner: dagger.Container, task: ScanTask) -> str:
    """`<binary> --version` in the scanner's container, read like the native runtime reads it."""
    info = SCANNERS[task.tool]
    ran = scanner.with_exec(list(info.version_argv), expect=ReturnType.ANY)
    return info.version(await ran.stdout() or await ran.stderr())


async def _scan_task(
    ctr: dagger.Container, task: ScanTask, service_of: ServiceOf, version: str
) -> tuple[Outcome, dagger.Container]:
    """Run one scan task; a scanner's exit code is data (expect ANY), never an exception."""
    ctr = ctr.with_workdir(container_path(task.workdir))
    for name, text in task.inputs:
        ctr = ctr.with_new_file(f"{SCRATCH_PATH}/{name}", text)
    for pre in task.pre:
        ctr = ctr.with_exec(substitute(pre, RULES_PATH, OUT_PATH, SCRATCH_PATH))
    ctr = ctr.with_exec(
        substitute(task.argv, RULES_PATH, OUT_PATH, SCRATCH_PATH), expect=ReturnType.ANY
    )
    try:
        run = RawRun(await ctr.exit_code(), await ctr.stdout(), await ctr.stderr(), version)
    except dagger.ExecError as exc:  # a failing `pre` step (e.g. uv export)
        run = RawRun(
            None,
            "",
            f"preparing the scan failed: {' '.join(exc.command)}: {exc.stderr.strip()}",
            version,
        )
    return SCANNERS[task.tool].parse(task, run, service_of), ctr


def _verdict(
    tasks: Sequence[ScanTask],
    outcomes: list[Outcome],
    manifest: Manifest,
    fail_on: str | None,
    allow_unavailable: bool,
) -> Verdict:
    """The outcomes under the policy (security/wrapup.py), as of today."""
    return conclude(
        tasks,
        outcomes,
        manifest,
        fail_on_level(fail_on, manifest),
        allow_unavailable=allow_unavailable,
        today=dt.date.today(),
    )


def _reports(
    verdict: Verdict, artifacts: dict[str, dagger.File], *, enforce: bool
) -> dagger.Directory:
    """The rendered reports and the artifacts; with `enforce`, a failing verdict raises."""
    reports = dag.directory()
    rendered = render_reports(verdict)
    for name, text in rendered.items():
        reports = reports.with_new_file(name, text)
    for name, file in artifacts.items():
        reports = reports.with_file(name, file)
    if enforce and not verdict.passed:
        raise WormholeCiError(failure(verdict) + "\n\n" + rendered["scan.md"])
    return reports
