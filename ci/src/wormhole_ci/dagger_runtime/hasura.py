"""`validate-hasura` from the module: the structural check on the scheduler, then each
Hasura service's metadata applied to a real engine over a real PostgreSQL."""

from __future__ import annotations

import secrets

from dagger import ReturnType, dag

from wormhole_ci.check.container import service_spec
from wormhole_ci.containers import (
    HASURA_CLI_IMAGE,
    HASURA_ENGINE_IMAGE,
    POSTGRES_IMAGE,
    container_path,
)
from wormhole_ci.dagger_runtime.check import execute
from wormhole_ci.dagger_runtime.source import DaggerSource, with_exec
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.manifest import Manifest, ServiceKind
from wormhole_ci.plan import Plan, ServicePlan, build_plan, exec_prefix
from wormhole_ci.results import status_lines, summary, tail_of

HASURA_PORT = 8080
POSTGRES_PORT = 5432


async def validate_hasura_metadata(source: DaggerSource) -> str:
    """The structural check of every Hasura service, then the live one; fails at the first."""

    def plans(manifest: Manifest) -> tuple[Plan, dict[str, ServicePlan | None]]:
        # None: the schema comes from Hasura's own migrations (no Prisma service to migrate).
        databases = {
            s.name: build_plan(manifest, [s.database]).services[0] if s.database else None
            for s in manifest.services
            if s.kind is ServiceKind.HASURA
        }
        return build_plan(manifest, list(databases), ("validate",)), databases

    plan, databases = await source.planned(plans)
    if not databases:
        raise WormholeCiError(
            "validate-hasura: wormhole-ci.toml declares no service of kind hasura"
        )
    report = await execute(source, plan)
    lines = status_lines(report, "validate-hasura (structural)")
    if not report.ok:
        raise WormholeCiError(summary(report, "validate-hasura"))
    for service, database in databases.items():
        if database is None:
            lines.append(
                f"{service}: live engine check skipped: its schema comes from Hasura migrations, "
                "which this function does not apply to an engine yet (the structural check "
                "above applied them to PostgreSQL)"
            )
            continue
        lines.extend(await _live_hasura(source, service, database, plan))
    return "\n".join(lines)


async def _live_hasura(
    source: DaggerSource, service: str, database: ServicePlan, plan: Plan
) -> list[str]:
    """Migrations on a real PostgreSQL, then the metadata applied to a real engine."""
    hasura = next(s for s in plan.services if s.service == service)
    db_spec = service_spec(database)
    password = secrets.token_urlsafe(24)
    db_url = dag.set_secret(
        f"wormhole-ci-{service}-database-url",
        f"postgresql://wormhole:{password}@postgres:{POSTGRES_PORT}/wormhole",
    )
    admin = dag.set_secret(f"wormhole-ci-{service}-admin-secret", secrets.token_urlsafe(24))
    postgres = (
        dag.container()
        .from_(POSTGRES_IMAGE)
        .with_env_variable("POSTGRES_USER", "wormhole")
        .with_env_variable("POSTGRES_DB", "wormhole")
        .with_secret_variable(
            "POSTGRES_PASSWORD", dag.set_secret(f"wormhole-ci-{service}-pg", password)
        )
        .with_exposed_port(POSTGRES_PORT)
        .as_service()
    )
    migrate = source.container(db_spec)
    for ex in (e for e in db_spec.execs if e.setup):
        migrate = with_exec(migrate, ex, ReturnType.SUCCESS)
    migrate = (
        migrate.with_service_binding("postgres", postgres)
        .with_secret_variable("DATABASE_URL", db_url)
        .with_workdir(container_path(database.path))
        .with_exec([*exec_prefix(database.tasks[0].tool), "prisma", "migrate", "deploy"])
    )
    migrated = await migrate.stdout()
    engine = (
        dag.container()
        .from_(HASURA_ENGINE_IMAGE)
        .with_service_binding("postgres", postgres)
        .with_secret_variable("HASURA_GRAPHQL_DATABASE_URL", db_url)
        .with_secret_variable("HASURA_GRAPHQL_ADMIN_SECRET", admin)
        .with_env_variable("HASURA_GRAPHQL_ENABLE_CONSOLE", "false")
        .with_env_variable("HASURA_GRAPHQL_ENABLE_TELEMETRY", "false")
        .with_exposed_port(HASURA_PORT)
        .as_service()
    )
    endpoint = f"http://graphql-engine:{HASURA_PORT}"
    cli = (
        dag.container()
        .from_(HASURA_CLI_IMAGE)
        .with_service_binding("graphql-engine", engine)
        .with_secret_variable("HASURA_GRAPHQL_ADMIN_SECRET", admin)
        .with_env_variable("HASURA_GRAPHQL_ENABLE_TELEMETRY", "false")
        .with_directory("/hasura", source.directory.directory(hasura.path))
        .with_workdir("/hasura")
    )
    applied = cli.with_exec(
        [
            "hasura-cli",
            "metadata",
            "apply",
            "--endpoint",
            endpoint,
            "--disallow-inconsistent-metadata",
            "--skip-update-check",
        ],
        expect=ReturnType.ANY,
    )
    inconsistency = applied.with_exec(
        [
            "hasura-cli",
            "metadata",
            "inconsistency",
            "list",
            "--endpoint",
            endpoint,
            "--skip-update-check",
        ],
        expect=ReturnType.ANY,
    )
    apply_code = await applied.exit_code()
    apply_out = (await applied.stdout()) + (await applied.stderr())
    list_out = (await inconsistency.stdout()) + (await inconsistency.stderr())
    if apply_code != 0:
        raise WormholeCiError(
            f"validate-hasura failed for {service}: `hasura metadata apply "
            f"--disallow-inconsistent-metadata` exited {apply_code}\n{tail_of(apply_out)}\n"
            f"--- metadata inconsistency list\n{tail_of(list_out)}"
        )
    return [
        f"{service}: migrations of {database.service} applied to {POSTGRES_IMAGE}: {tail_of(migrated, 1)}",
        f"{service}: metadata applied to {HASURA_ENGINE_IMAGE} with --disallow-inconsistent-metadata",
        f"{service}: metadata inconsistency list: {tail_of(list_out, 5) or 'none'}",
    ]
