"""`drift`: which areas to read, the secrets exactly they need, and one report."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.drift.coolify import coolify_drift
from wormhole_ci.drift.database import database_drift
from wormhole_ci.drift.hasura import hasura_drift
from wormhole_ci.drift.report import Area, AreaResult, DriftReport
from wormhole_ci.errors import SecretError, WormholeCiError
from wormhole_ci.hasura.environment import hasura_run
from wormhole_ci.manifest import Environment, Manifest
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.migrate.job import database_service
from wormhole_ci.secretref import Secret, redact

Say = Callable[[str], None]


@dataclass(frozen=True)
class DriftSecrets:
    """The secrets of the areas being read (None for the others: nothing else is needed)."""

    database_url: Secret | None = None
    hasura_admin_secret: Secret | None = None
    coolify_token: Secret | None = None

    def values(self) -> tuple[str, ...]:
        out = [
            s.reveal()
            for s in (self.database_url, self.hasura_admin_secret, self.coolify_token)
            if s
        ]
        if self.database_url:
            out.extend(DatabaseUrl.parse(self.database_url.reveal()).secrets)
        return tuple(out)


def areas_of(env: Environment, only: list[str]) -> tuple[Area, ...]:
    """`--only` (repeatable) as areas, in report order; default: every configured one."""
    if not only:
        return tuple(a for a in Area if a is not Area.HASURA or env.hasura is not None)
    chosen = {Area(o) for o in only}
    return tuple(a for a in Area if a in chosen)


def drift_secrets(
    env: Environment, areas: tuple[Area, ...], environ: Mapping[str, str] | None = None
) -> DriftSecrets:
    """Read only the variables the chosen areas need; a clear error naming each missing one."""
    source = os.environ if environ is None else environ
    wanted: dict[str, str] = {}
    if Area.DATABASE in areas:
        wanted["database_url"] = env.secrets["database_url"]
    if Area.HASURA in areas:
        if env.hasura is None:
            raise SecretError(
                f"drift --only hasura: environments.{env.name} has no [hasura] table "
                "(url, admin_secret): add it, or leave hasura out"
            )
        wanted["hasura_admin_secret"] = env.hasura.admin_secret
    if Area.COOLIFY in areas:
        wanted["coolify_token"] = env.secrets["coolify_token"]
    missing = [f"{role} (${var})" for role, var in wanted.items() if not source.get(var)]
    if missing:
        raise SecretError(
            f"drift {env.name}: missing secrets: {', '.join(missing)}; set these environment "
            "variables, or limit what is read with --only"
        )
    secrets = {role: Secret(f"env:{var}", source[var]) for role, var in wanted.items()}
    if "database_url" in secrets:
        DatabaseUrl.parse(secrets["database_url"].reveal())  # malformed: fails here, unprinted
    return DriftSecrets(**secrets)


def run_drift(
    manifest: Manifest,
    env: Environment,
    areas: tuple[Area, ...],
    secrets: DriftSecrets,
    *,
    cache_dir: Path,
    say: Say,
    expect_sha: str | None = None,
) -> DriftReport:
    """Compare each area (read-only), in order; an area that cannot be read is an error in
    the report, and the others are still compared."""
    hidden = secrets.values()

    def said(line: str) -> None:
        say(redact(line, *hidden))

    report = DriftReport(environment=env.name)
    for area in areas:
        said(f"== drift {area}")
        try:
            result = _area(
                manifest, env, area, secrets, cache_dir=cache_dir, say=said, expect_sha=expect_sha
            )
        except WormholeCiError as exc:  # e.g. the repository's metadata cannot be read
            result = AreaResult(area, error=str(exc))
        result.error = redact(result.error, *hidden) if result.error else None
        report.areas.append(result)
        said(f"   {area}: " + (result.error or f"{len(result.items)} drifted"))
    return report


def _area(
    manifest: Manifest,
    env: Environment,
    area: Area,
    secrets: DriftSecrets,
    *,
    cache_dir: Path,
    say: Say,
    expect_sha: str | None,
) -> AreaResult:
    match area:
        case Area.DATABASE:
            assert secrets.database_url is not None  # drift_secrets asked for it
            return database_drift(
                DatabaseUrl.parse(secrets.database_url.reveal()),
                manifest,
                database_service(manifest, None),
                cache_dir=cache_dir,
                say=say,
                environment=env.name,
            )
        case Area.HASURA:
            assert secrets.hasura_admin_secret is not None
            run = hasura_run(manifest, env, secrets.hasura_admin_secret.reveal())
            assert run is not None  # drift_secrets refused an environment without hasura
            return hasura_drift(run, env.name)
        case Area.COOLIFY:
            assert secrets.coolify_token is not None
            with Coolify(env.coolify_url, secrets.coolify_token, retry_deadline=60.0) as client:
                return coolify_drift(env, client, expect_sha)
