"""`hasura-apply` and `drift` from the module: one environment's live state, read or changed.

hasura-apply runs in the module itself (Hasura's and Coolify's APIs over HTTPS, no
container); drift runs the native CLI as a job container, because its database area needs
the Prisma CLI and a throwaway PostgreSQL beside the live connection.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Sequence

import anyio
import dagger
from dagger import ReturnType, dag

from wormhole_ci.containers import (
    COREPACK_ENV,
    DRIFT_TOOLCHAIN,
    MIGRATE_CACHE,
    MODULE_SOURCE,
    NODE_IMAGE,
    OUT_PATH,
    SOURCE_ROOT,
    drift_argv,
)
from wormhole_ci.dagger_runtime.migrate import job_result
from wormhole_ci.dagger_runtime.source import DaggerSource, tooled
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.drift.report import Area
from wormhole_ci.errors import SecretError, WormholeCiError
from wormhole_ci.hasura.apply import ApplyResult, HasuraApplyFailed
from wormhole_ci.hasura.environment import HasuraRun, apply_environment, hasura_run
from wormhole_ci.images.spec import check_sha
from wormhole_ci.manifest import Environment, Manifest
from wormhole_ci.secretref import redact


async def apply_hasura(
    source: DaggerSource,
    *,
    environment: str,
    hasura_admin_secret: dagger.Secret,
    coolify_token: dagger.Secret | None,
    dry_run: bool,
) -> dagger.Directory:
    """The repository's metadata applied to the environment's engine; hasura.json and
    `status` (applied | unchanged | dry-run | failed | refused) whatever happened."""
    admin = await hasura_admin_secret.plaintext()
    token = await coolify_token.plaintext() if coolify_token else None
    hidden = tuple(v for v in (admin, token) if v)

    def plan(m: Manifest) -> tuple[Environment, HasuraRun]:
        env = m.environment(environment)
        run = hasura_run(m, env, admin)
        if run is None:
            raise WormholeCiError(
                f"hasura-apply: environments.{environment} has no [hasura] table: add url and "
                "admin_secret (see docs/hasura.md)"
            )
        return env, run

    env, run = await source.planned(plan)
    coolify = None
    if run.target.application and not dry_run:
        if token is None:
            raise SecretError(
                f"hasura-apply: environments.{env.name}.hasura.application is set: pass "
                "--coolify-token (the engine is redeployed when it runs another image)"
            )
        coolify = Coolify(env.coolify_url, token)

    def say(line: str) -> None:  # progress, shown by `dagger call`
        print(redact(line, *hidden), file=sys.stderr, flush=True)

    def apply() -> ApplyResult:
        return apply_environment(
            run,
            coolify=coolify,
            say=say,
            deploy_timeout=env.deploy_timeout,
            health_timeout=env.verify_timeout,
            dry_run=dry_run,
        )

    try:
        result = await anyio.to_thread.run_sync(apply)
    except HasuraApplyFailed as exc:
        result = exc.result
    finally:
        if coolify is not None:
            coolify.close()
    text = redact(json.dumps(result.to_dict(), indent=2), *hidden)
    return (
        dag.directory()
        .with_new_file("hasura.json", text + "\n")
        .with_new_file("status", result.outcome + "\n")
    )


async def drift_job(
    source: DaggerSource,
    *,
    environment: str,
    only: Sequence[str],
    expect_sha: str,
    database_url: dagger.Secret | None,
    hasura_admin_secret: dagger.Secret | None,
    coolify_token: dagger.Secret | None,
) -> dagger.Directory:
    """Run `wormhole-ci drift` once (never cached) with the secrets under the variable names
    the manifest gives them; drift.json, drift.md, drift.log and `status` (clean | drift |
    error), whatever the verdict."""
    known = [a.value for a in Area]
    for area in only:  # an unknown area fails here, before any container
        if area not in known:
            raise WormholeCiError(
                f"drift --only {area!r}: unknown area; use {', '.join(known)} (repeatable)"
            )
    areas = list(only)
    env = await source.planned(lambda m: m.environment(environment))
    given: list[tuple[str, str, dagger.Secret | None]] = [
        ("database", env.secrets["database_url"], database_url),
        ("hasura", env.hasura.admin_secret if env.hasura else "", hasura_admin_secret),
        ("coolify", env.secrets["coolify_token"], coolify_token),
    ]
    ctr = (
        dag.container()
        .from_(NODE_IMAGE)
        .with_directory(MODULE_SOURCE, dag.current_module().source())
    )
    ctr = tooled(ctr, DRIFT_TOOLCHAIN, (MIGRATE_CACHE,), (*COREPACK_ENV,))
    ctr = (
        ctr.with_env_variable(MIGRATE_CACHE.env, MIGRATE_CACHE.path)
        .with_directory(SOURCE_ROOT, source.directory)
        .with_directory(OUT_PATH, dag.directory())
    )
    for _area, variable, secret in given:
        if secret is not None and variable:
            ctr = ctr.with_secret_variable(variable, secret)
    ctr = (
        # drift reads live state: it must run every time, never answered from the cache
        ctr.with_env_variable("WORMHOLE_CI_JOB", secrets.token_hex(8))
        .with_workdir(SOURCE_ROOT)
        .with_exec(
            list(
                drift_argv(
                    environment=environment,
                    only=areas,
                    expect_sha=check_sha(expect_sha, "--expect-sha") if expect_sha else None,
                )
            ),
            expect=ReturnType.ANY,
        )
    )
    return await job_result(ctr, "drift.json")
