"""`release` from the module: the core's state machine (release/machine.py) over the gates
run as containers of this engine."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import dagger
from dagger import dag

from wormhole_ci.dagger_runtime.check import execute
from wormhole_ci.dagger_runtime.github import GitHubInputs
from wormhole_ci.dagger_runtime.images import config_digests, image_args, publish_images
from wormhole_ci.dagger_runtime.migrate import migrate_job
from wormhole_ci.dagger_runtime.scan import scan_verdict
from wormhole_ci.dagger_runtime.source import DaggerSource
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.errors import ImageError, MigrateError, SecretError
from wormhole_ci.hasura.environment import HasuraRun, hasura_run
from wormhole_ci.images.spec import ImageSpec, Revision, check_sha, image_specs, local_name
from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.manifest import Environment, Manifest
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.notify.github import github_target
from wormhole_ci.notify.release import release_status
from wormhole_ci.observability.push import pushgateway_with
from wormhole_ci.plan import Plan, build_plan
from wormhole_ci.release.machine import ReleaseMachine, Rollout
from wormhole_ci.release.record import (
    ImageRecord,
    ReleaseRecord,
    check_detail,
    scan_detail,
    scan_record,
    utc_now,
)
from wormhole_ci.results import tail_of
from wormhole_ci.secretref import Secret, redact
from wormhole_ci.security.tasks import Family
from wormhole_ci.security.wrapup import render_reports


async def run_release(
    source: DaggerSource,
    *,
    environment: str,
    tag: str,
    coolify_token: dagger.Secret,
    database_url: dagger.Secret,
    registry_password: dagger.Secret | None,
    registry_username: str,
    hasura_admin_secret: dagger.Secret | None,
    allow_unavailable_scanners: bool,
    allow_destructive: bool,
    rollback: bool,
    pushgateway_auth: dagger.Secret | None = None,
    github: GitHubInputs | None = None,
    notify_url: dagger.Secret | None = None,
) -> dagger.Directory:
    """Run the release machine with these steps; release.json, `status` and migrate/,
    whatever happened (the outcome pushed to the environment's Pushgateway, if it has one)."""
    rev = Revision(check_sha(tag))
    token = await coolify_token.plaintext()
    password = await registry_password.plaintext() if registry_password else None
    url = await database_url.plaintext()
    admin = await hasura_admin_secret.plaintext() if hasura_admin_secret else None
    gateway_auth = await pushgateway_auth.plaintext() if pushgateway_auth else None
    github = github or GitHubInputs()
    github_token = await github.token.plaintext() if github.token else None
    hook_url = await notify_url.plaintext() if notify_url else None
    values = (token, password, url, admin, gateway_auth, github_token, hook_url)
    hidden = tuple(v for v in values if v) + DatabaseUrl.parse(url).secrets

    def plan_release(
        m: Manifest,
    ) -> tuple[Manifest, Environment, list[ImageSpec], Plan, HasuraRun | None]:
        env = m.environment(environment)
        if env.hasura is not None and not admin:
            raise SecretError(
                f"release {env.name}: [environments.{env.name}.hasura] is set: pass "
                f"--hasura-admin-secret=env:{env.hasura.admin_secret}"
            )
        return m, env, list(image_specs(m)), build_plan(m), hasura_run(m, env, admin)

    # The planner's inputs live in a temporary export: plan everything up front (the
    # Hasura metadata too), so bad input stops the release before anything happens.
    manifest, env, specs, plan, hasura = await source.planned(plan_release)
    steps = DaggerSteps(
        source,
        manifest,
        env,
        rev,
        specs=specs,
        plan=plan,
        database_url=database_url,
        registry_password=registry_password,
        registry_username=registry_username or env.registry_username or "",
        allow_unavailable=allow_unavailable_scanners,
        allow_destructive=allow_destructive,
    )

    def say(line: str) -> None:  # progress, shown by `dagger call`
        print(redact(line, *hidden), file=sys.stderr, flush=True)

    # The same reporters as the native release; the engine's environment is not the
    # runner's, so what GITHUB_* would say comes in as arguments.
    status = release_status(
        env,
        github=github_target(
            Secret("--github-token", github_token) if github_token else None,
            github.repository,
            {},
            github.api_url or None,
        ),
        webhook_url=Secret("--notify-url", hook_url) if hook_url else None,
        warn=say,
        log_url=github.log_url,
        missing="no --notify-url was given",
    )
    machine = ReleaseMachine(
        env=env,
        steps=steps,
        coolify=Coolify(env.coolify_url, token),
        rollout=Rollout(sha=rev.sha, image_tag=rev.short, rollback=rollback),
        say=say,
        save=lambda _record: None,  # the record is returned below, whatever happened
        hidden=hidden,
        hasura=hasura,
        pushgateway=pushgateway_with(env, gateway_auth, say, "no --pushgateway-auth was given"),
        status=status,
    )
    record = await machine.run(ReleaseRecord(sha=rev.sha, environment=env.name, started=utc_now()))
    return steps.out.with_new_file(
        "release.json", redact(record.to_json(), *hidden) + "\n"
    ).with_new_file("status", f"{record.outcome}\n")


class DaggerSteps:
    """The release gates as containers of this engine (the state machine is the core's)."""

    def __init__(
        self,
        source: DaggerSource,
        manifest: Manifest,
        env: Environment,
        rev: Revision,
        *,
        specs: Sequence[ImageSpec],
        plan: Plan,
        database_url: dagger.Secret,
        registry_password: dagger.Secret | None,
        registry_username: str,
        allow_unavailable: bool,
        allow_destructive: bool,
    ) -> None:
        self.source, self.manifest, self.env, self.rev = source, manifest, env, rev
        self.database_url, self.password = database_url, registry_password
        self.username = registry_username
        self.allow_unavailable, self.allow_destructive = allow_unavailable, allow_destructive
        self.specs, self.plan = specs, plan
        self.images: dict[str, dagger.Container] = {}
        self.out = dag.directory()
        """What the release returns besides release.json: the migration's files."""

    async def check(self, record: ReleaseRecord) -> str:
        return check_detail(await execute(self.source, self.plan))

    async def build(self, record: ReleaseRecord) -> str:
        args = image_args(self.rev, "", self.manifest.repository, ())
        for spec in self.specs:
            image = self.source.image(spec, args, None)
            try:
                digests = await config_digests([image])
            except (dagger.ExecError, dagger.QueryError) as exc:
                raise ImageError(f"build {spec.service}: {exc}") from None
            self.images[spec.service] = image
            name = local_name(spec, self.rev)
            record.images.append(ImageRecord(spec.service, name, ",".join(digests.values())))
        return ", ".join(i.name for i in record.images)

    async def scan(self, record: ReleaseRecord) -> str:
        verdict = await scan_verdict(
            self.source, frozenset(Family), None, self.allow_unavailable, self.images
        )
        # the reports beside release.json, as the native release writes them in its work dir
        reports: list[str] = []
        for name, text in render_reports(verdict).items():
            self.out = self.out.with_new_file(f"scan/{name}", text)
            reports.append(f"scan/{name}")
        record.scan = scan_record(verdict, self.allow_unavailable, reports)
        return scan_detail(verdict)

    async def publish(self, record: ReleaseRecord) -> str:
        published = await publish_images(
            self.source,
            self.env.registry,
            self.rev,
            self.username if self.password is not None else "",
            self.password,
        )
        return record.add_published(published)

    async def migrate(self, record: ReleaseRecord) -> str:
        result = await migrate_job(
            self.source,
            self.database_url,
            tag=self.rev.sha,
            allow_destructive=self.allow_destructive,
        )
        self.out = self.out.with_directory("migrate", result)
        try:
            record.migrations = (
                as_dict(json.loads(await result.file("migrate.json").contents())) or {}
            )
        except (dagger.QueryError, ValueError):  # the job stopped before writing its result
            record.migrations = {}
        outcome = (await result.file("status").contents()).strip()
        if outcome not in ("applied", "up-to-date"):
            log = await result.file("migrate.log").contents()
            raise MigrateError(f"migrate {outcome}:\n{tail_of(log, 60)}")
        applied = record.migrations.get("applied")
        names = ", ".join(str(a) for a in as_list(applied) or [])
        return f"{outcome}: {names or 'nothing pending'}"
