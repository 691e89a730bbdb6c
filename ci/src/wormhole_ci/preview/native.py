"""The native preview executor: images through the local engine, the migrate job on the host."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx

from wormhole_ci.errors import WormholeCiError
from wormhole_ci.images.engine import Engine
from wormhole_ci.images.native import BuildOptions, Target, publish_images
from wormhole_ci.images.spec import Revision, image_specs
from wormhole_ci.manifest import Environment, Manifest
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.migrate.job import database_service, run_migrate
from wormhole_ci.migrate.native import prepare_migrate
from wormhole_ci.notify.github import actions_run_url, github_target
from wormhole_ci.notify.preview import preview_status
from wormhole_ci.preview.coolify import PreviewCoolify
from wormhole_ci.preview.database import PreviewDatabases
from wormhole_ci.preview.flow import PreviewRecord, PreviewRun, PreviewSteps, preview_of
from wormhole_ci.secretref import Secret, redact

Say = Callable[[str], None]


@dataclass(frozen=True)
class PreviewSecrets:
    coolify_token: Secret
    database_url: Secret
    """The preview PostgreSQL (a role that may create databases)."""
    registry_password: Secret | None = None
    github_token: Secret | None = None
    """The token for the preview's GitHub reports (--github-token); None: no GitHub calls."""

    def values(self) -> tuple[str, ...]:
        out = [self.coolify_token.reveal(), self.database_url.reveal()]
        out.extend(DatabaseUrl.parse(self.database_url.reveal()).secrets)
        out.extend(s.reveal() for s in (self.registry_password, self.github_token) if s)
        return tuple(out)


def preview_secrets(
    env: Environment, environ: Mapping[str, str] | None = None, *, close: bool = False
) -> PreviewSecrets:
    """The preview's secrets from the variables the manifest names; one error listing every
    missing variable by name (a close pushes nothing: no registry password then)."""
    source = os.environ if environ is None else environ
    named = {"coolify_token": env.secrets["coolify_token"]}
    named["preview database_url"] = preview_of(env).database_url
    if "registry_password" in env.secrets and not close:
        named["registry_password"] = env.secrets["registry_password"]
    missing = [f"{role} (${var})" for role, var in named.items() if not source.get(var)]
    if missing:
        raise WormholeCiError(
            f"preview {env.name}: missing secrets: {', '.join(missing)}; set these environment "
            "variables (GitHub Actions: the environment's secrets mapped into the step's env)"
        )
    url = Secret(f"env:{named['preview database_url']}", source[named["preview database_url"]])
    DatabaseUrl.parse(url.reveal())  # a malformed URL fails here, unprinted
    var = named.get("registry_password")
    return PreviewSecrets(
        coolify_token=Secret(f"env:{named['coolify_token']}", source[named["coolify_token"]]),
        database_url=url,
        registry_password=Secret(f"env:{var}", source[var]) if var else None,
    )


@dataclass(frozen=True)
class NativePreviewOptions:
    revision: Revision
    work_dir: Path
    cache_dir: Path
    jobs: int = 2
    build_args: tuple[tuple[str, str], ...] = ()
    lock_timeout: float = 600.0


class NativePreviewSteps(PreviewSteps):
    """Publish through the local engine and migrate with the host's Prisma (the release's job)."""

    def __init__(
        self,
        manifest: Manifest,
        env: Environment,
        engine: Engine,
        secrets: PreviewSecrets,
        *,
        options: NativePreviewOptions,
        say: Say,
    ) -> None:
        self.manifest, self.env, self.engine = manifest, env, engine
        self.secrets, self.options, self.say = secrets, options, say

    async def publish(self, tag: str) -> str:
        specs = image_specs(self.manifest, tuple(preview_of(self.env).services))
        build = BuildOptions(
            revision=self.options.revision,
            extra_args=self.options.build_args,
            log_dir=self.options.work_dir / "logs",
            jobs=self.options.jobs,
            publish_tags=(tag,),
        )
        target = Target(
            self.env.registry, self.env.registry_username, self.secrets.registry_password
        )
        result = await anyio.to_thread.run_sync(
            lambda: publish_images(
                self.manifest, specs, self.engine, build, target=target, say=self.say
            )
        )
        return ", ".join(p.reference for p in result.published) or "nothing"

    async def migrate(self, url: DatabaseUrl) -> str:
        spec = database_service(self.manifest, None)

        def job() -> str:
            options = prepare_migrate(
                self.manifest,
                spec,
                self.options.cache_dir,
                self.say,
                lock_timeout=self.options.lock_timeout,
                allow_destructive=True,  # a PR's own throwaway database: nothing to protect
                backup_dir=None,
                sha=self.options.revision.sha,
            )
            result = run_migrate(url, options, self.say)
            return f"{result.outcome}: {', '.join(result.applied) or 'nothing pending'}"

        return await anyio.to_thread.run_sync(job)


def run_native_preview(
    manifest: Manifest,
    env: Environment,
    secrets: PreviewSecrets,
    *,
    pr: int,
    sha: str,
    close: bool,
    say: Say,
    steps: PreviewSteps | None = None,
    poll_interval: float = 2.0,
    github_repository: str = "",
    environ: Mapping[str, str] | None = None,
) -> PreviewRecord:
    """Open (or with `close`, close) the PR's preview; every line said is redacted.

    `steps` is None only for `close` (nothing is built or migrated then). With a GitHub
    token (and a repository, default $GITHUB_REPOSITORY) the preview is reported to GitHub."""
    hidden = secrets.values()

    def said(line: str) -> None:
        say(redact(line, *hidden))

    source = os.environ if environ is None else environ
    status = preview_status(
        github_target(secrets.github_token, github_repository, source),
        environment=env.name,
        pr=pr,
        warn=said,
        log_url=actions_run_url(source),
    )

    with (
        PreviewCoolify(
            env.coolify_url,
            secrets.coolify_token,
            poll_interval=poll_interval,
            on_event=said,
        ) as coolify,
        httpx.Client(follow_redirects=True) as health,
    ):
        run = PreviewRun(
            project=manifest.project,
            env=env,
            coolify=coolify,
            databases=PreviewDatabases(DatabaseUrl.parse(secrets.database_url.reveal())),
            say=said,
            health=health,
            status=status,
        )
        try:
            if close:
                return anyio.run(run.close, pr, sha)
            if steps is None:
                raise WormholeCiError("preview: opening a preview needs the publish/migrate steps")
            return anyio.run(run.open, pr, sha, steps)
        finally:
            if status is not None:
                status.close()
