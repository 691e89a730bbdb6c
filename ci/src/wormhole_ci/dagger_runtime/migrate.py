"""The migration job (migrate/job.py) as a container of this engine."""

from __future__ import annotations

import secrets
import time

import anyio
import dagger
from dagger import ReturnType, dag

from wormhole_ci.containers import (
    COREPACK_ENV,
    MIGRATE_CACHE,
    MIGRATE_TOOLCHAIN,
    MODULE_SOURCE,
    NODE_IMAGE,
    OUT_PATH,
    SOURCE_ROOT,
    migrate_argv,
)
from wormhole_ci.dagger_runtime.source import DaggerSource, shown, tooled
from wormhole_ci.images.spec import check_sha
from wormhole_ci.jsonish import outcome_of
from wormhole_ci.observability.push import migrate_signal, push_signals, pushgateway_with


async def migrate_job(
    source: DaggerSource,
    database_url: dagger.Secret,
    *,
    tag: str,
    service: str = "",
    lock_timeout: int = 600,
    allow_destructive: bool = False,
    no_backup: bool = False,
    environment: str = "",
    pushgateway_auth: dagger.Secret | None = None,
    dry_run: bool = False,
) -> dagger.Directory:
    """Run the migration job once (never from the engine's cache); its result directory.
    With `environment`, its outcome is pushed to that environment's Pushgateway from the
    module (the job container itself never pushes: inside a release, the release does).
    `dry_run`: the same job's `--dry-run` (migrate/job.py `dry_run_migrate`): read-only, no
    lock, no backup, no Prisma; nothing is pushed, since nothing ran."""
    env = await source.planned(lambda m: m.environment(environment)) if environment else None
    started = time.monotonic()
    argv = migrate_argv(
        service=service or None,
        tag=check_sha(tag) if tag else None,
        lock_timeout=lock_timeout,
        allow_destructive=allow_destructive,
        no_backup=no_backup,
        dry_run=dry_run,
    )
    ctr = (
        dag.container()
        .from_(NODE_IMAGE)
        .with_directory(MODULE_SOURCE, dag.current_module().source())
    )
    ctr = tooled(ctr, MIGRATE_TOOLCHAIN, (MIGRATE_CACHE,), (*COREPACK_ENV,))
    ctr = (
        ctr.with_env_variable(MIGRATE_CACHE.env, MIGRATE_CACHE.path)
        .with_directory(SOURCE_ROOT, source.directory)
        .with_directory(OUT_PATH, dag.directory())
        .with_secret_variable("DATABASE_URL", database_url)
        # a migration job must run every time: never answered from the engine's cache
        .with_env_variable("WORMHOLE_CI_JOB", secrets.token_hex(8))
        .with_workdir(SOURCE_ROOT)
        .with_exec(list(argv), expect=ReturnType.ANY)
    )
    result, outcome = await job_outcome(ctr, "migrate.json")
    if env is not None and not dry_run:
        auth = await pushgateway_auth.plaintext() if pushgateway_auth else None
        gateway = pushgateway_with(env, auth, shown, "no --pushgateway-auth was given")
        signal = migrate_signal(env.name, outcome, tag, time.monotonic() - started)
        await anyio.to_thread.run_sync(lambda: push_signals(gateway, [signal], shown))
    return result


async def job_result(ctr: dagger.Container, result_file: str) -> dagger.Directory:
    """A job container's OUT_PATH, whatever its exit code, plus `status` (the outcome its
    result file names, else failed) and its output as `<job>.log`: nothing it wrote is lost."""
    directory, _ = await job_outcome(ctr, result_file)
    return directory


async def job_outcome(ctr: dagger.Container, result_file: str) -> tuple[dagger.Directory, str]:
    """`job_result` and the outcome its `status` file holds."""
    code = await ctr.exit_code()
    output = (await ctr.stdout()) + (await ctr.stderr())
    out = ctr.directory(OUT_PATH)
    try:
        text = await out.file(result_file).contents()
    except dagger.QueryError:  # the job stopped before writing its result (e.g. bad input)
        text = ""
    outcome = outcome_of(text, code)
    log = result_file.rsplit(".", 1)[0] + ".log"
    return out.with_new_file(log, output).with_new_file("status", outcome + "\n"), outcome
