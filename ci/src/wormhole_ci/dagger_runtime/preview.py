"""`preview` from the module: the core's preview flow (preview/flow.py) over this engine's
publish and migrate containers."""

from __future__ import annotations

import json
import sys

import dagger
import httpx
from dagger import dag

from wormhole_ci.dagger_runtime.github import GitHubInputs
from wormhole_ci.dagger_runtime.images import publish_images
from wormhole_ci.dagger_runtime.migrate import migrate_job
from wormhole_ci.dagger_runtime.source import DaggerSource
from wormhole_ci.errors import MigrateError
from wormhole_ci.images.spec import Revision, check_sha
from wormhole_ci.manifest import Environment, Manifest
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.notify.preview import preview_status
from wormhole_ci.preview.coolify import PreviewCoolify
from wormhole_ci.preview.database import PreviewDatabases
from wormhole_ci.preview.flow import PreviewFailed, PreviewRun, preview_of
from wormhole_ci.results import tail_of
from wormhole_ci.secretref import redact


async def run_preview(
    source: DaggerSource,
    *,
    environment: str,
    pr: int,
    tag: str,
    coolify_token: dagger.Secret,
    database_url: dagger.Secret,
    registry_password: dagger.Secret | None,
    registry_username: str,
    close: bool,
    github: GitHubInputs | None = None,
) -> str:
    """Open (or close) the PR's preview; the record as JSON. A failure raises with the
    record's summary (what was undone) in the message. With a GitHub token and repository
    the preview is reported to GitHub (the core's reporter, as natively)."""
    rev = Revision(check_sha(tag))
    token = await coolify_token.plaintext()
    admin_raw = await database_url.plaintext()
    admin = DatabaseUrl.parse(admin_raw)
    password = await registry_password.plaintext() if registry_password else None
    github = github or GitHubInputs()
    target, github_token = await github.target()
    values = (token, admin_raw, password, github_token)
    hidden = tuple(v for v in values if v) + admin.secrets

    def plan(m: Manifest) -> tuple[Manifest, Environment]:
        env = m.environment(environment)
        preview_of(env)
        return m, env

    manifest, env = await source.planned(plan)

    def say(line: str) -> None:  # progress, shown by `dagger call`
        print(redact(line, *hidden), file=sys.stderr, flush=True)

    status = preview_status(target, environment=env.name, pr=pr, warn=say, log_url=github.log_url)
    steps = DaggerPreviewSteps(
        source,
        env,
        rev,
        registry_password=registry_password,
        registry_username=registry_username or env.registry_username or "",
    )
    with (
        PreviewCoolify(env.coolify_url, token, on_event=say) as coolify,
        httpx.Client(follow_redirects=True) as health,
    ):
        run = PreviewRun(
            project=manifest.project,
            env=env,
            coolify=coolify,
            databases=PreviewDatabases(admin),
            say=say,
            health=health,
            status=status,
        )
        try:
            record = await (run.close(pr, rev.sha) if close else run.open(pr, rev.sha, steps))
        except PreviewFailed as exc:
            raise PreviewFailed(redact(str(exc), *hidden), exc.record) from None
        finally:
            if status is not None:
                status.close()
    return redact(json.dumps(record.to_dict(), indent=2), *hidden)


class DaggerPreviewSteps:
    """Publish and migrate as this engine's containers (the flow is the core's)."""

    def __init__(
        self,
        source: DaggerSource,
        env: Environment,
        rev: Revision,
        *,
        registry_password: dagger.Secret | None,
        registry_username: str,
    ) -> None:
        self.source, self.env, self.rev = source, env, rev
        self.password, self.username = registry_password, registry_username

    async def publish(self, tag: str) -> str:
        published = await publish_images(
            self.source,
            self.env.registry,
            self.rev,
            self.username if self.password is not None else "",
            self.password,
            tags=(tag,),
            services=tuple(preview_of(self.env).services),
        )
        return ", ".join(p.reference for p in published) or "nothing"

    async def migrate(self, url: DatabaseUrl) -> str:
        # The PR database's URL is derived here, so it becomes a secret of this session.
        secret = dag.set_secret(f"preview-database-url-{url.dbname}", url.reveal())
        result = await migrate_job(
            self.source, secret, tag=self.rev.sha, allow_destructive=True, no_backup=True
        )
        outcome = (await result.file("status").contents()).strip()
        if outcome not in ("applied", "up-to-date"):
            log = await result.file("migrate.log").contents()
            raise MigrateError(f"migrate {outcome}:\n{tail_of(log, 60)}")
        return outcome
