"""The Dagger module: `dagger call check`, `lint`, `typecheck`, `test`, `validate-hasura`.

The only module that imports dagger. Each function gathers its inputs, builds the plan
with the pure core (the same plan the native CLI runs), runs it on the shared scheduler
(`check/scheduler.py`) with the Dagger executor below, which turns plan tasks into
containers through `check.container.service_spec`, and reports with the native runtime's
summary format.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, TypeAlias, TypeVar, cast

import anyio
import dagger
from dagger import DefaultPath, Doc, Ignore, ReturnType, dag, function, object_type

# Aliased: the `check` function below would shadow the decorator inside the class body.
from dagger import check as dagger_check

from wormhole_ci.check.container import ContainerSpec, Exec, service_spec
from wormhole_ci.check.junit import junit_xml
from wormhole_ci.check.scheduler import Ran, Reporter, Silent, schedule
from wormhole_ci.containers import (
    COREPACK_ENV,
    HASURA_CLI_IMAGE,
    HASURA_ENGINE_IMAGE,
    MIGRATE_CACHE,
    MIGRATE_TOOLCHAIN,
    MODULE_REQUIREMENTS,
    MODULE_RULES,
    MODULE_SOURCE,
    NODE_IMAGE,
    OUT_PATH,
    POSTGRES_IMAGE,
    REQUIREMENTS_PATH,
    RULES_PATH,
    SCRATCH_PATH,
    SOURCE_ROOT,
    CacheMount,
    container_path,
    migrate_argv,
    scanner_spec,
)
from wormhole_ci.deploy.coolify import Coolify
from wormhole_ci.deploy.published import require_published
from wormhole_ci.deploy.rollout import DeployFailed, DeployOptions, DeployResult, deploy_environment
from wormhole_ci.errors import ImageError, MigrateError, WormholeCiError
from wormhole_ci.images.identity import read_identity
from wormhole_ci.images.publish import Candidate, Published
from wormhole_ci.images.publish import publish as guarded_publish
from wormhole_ci.images.registry import Registry, RemoteImage
from wormhole_ci.images.spec import (
    ImageSpec,
    Revision,
    build_args,
    check_platforms,
    check_registry,
    check_sha,
    check_version_tag,
    image_specs,
)
from wormhole_ci.images.spec import tags as image_tags
from wormhole_ci.jsonish import as_dict, as_list, outcome_of
from wormhole_ci.manifest import Environment, Manifest, ServiceKind, load_manifest
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.paths import GENERATED_DIRS
from wormhole_ci.plan import Plan, ServicePlan, Task, build_plan, exec_prefix
from wormhole_ci.release.machine import ReleaseMachine, Rollout
from wormhole_ci.release.record import (
    ImageRecord,
    ReleaseRecord,
    scan_detail,
    scan_record,
    utc_now,
)
from wormhole_ci.results import (
    RunReport,
    Status,
    TaskResult,
    status_lines,
    summary,
    tail_of,
)
from wormhole_ci.secretref import redact
from wormhole_ci.security.model import Outcome
from wormhole_ci.security.model import Status as ScanStatus
from wormhole_ci.security.parsers.common import RawRun, ServiceOf, services_by_path
from wormhole_ci.security.policy import Verdict as ScanVerdict
from wormhole_ci.security.runner import substitute
from wormhole_ci.security.scanners import SCANNERS
from wormhole_ci.security.tasks import Family, ScanTask, image_scan, scan_plan
from wormhole_ci.security.wrapup import conclude, fail_on_level, failure, render_reports

# Dependency folders, build outputs and caches never enter the engine: they are rebuilt
# in containers, and leaving them out keeps the source's cache key stable.
SOURCE_IGNORE = [*(f"**/{d}" for d in sorted(GENERATED_DIRS)), "**/.env", ".git"]
# The files the planner reads; only these are exported into the module to build the plan.
PLAN_INPUTS = [
    "wormhole-ci.toml",
    "**/package.json",
    "**/pnpm-lock.yaml",
    "**/package-lock.json",
    "**/pyproject.toml",
    "**/uv.lock",
    "**/nuxt.config.*",
    "**/tsconfig.json",
    "**/prisma/schema.prisma",
    "**/config.yaml",
    "**/*Dockerfile*",  # image specs check that each service's Dockerfile exists
]
T = TypeVar("T")
# Cache policies (DESIGN.md §3; Dagger caches a function without one for up to 7 days).
SIDE_EFFECTS = "never"
"""release, deploy, migrate, publish: they change the world, so they run on every call."""
FRESH = "session"
"""The scans: advisories appear daily, so a new session (the nightly run, the next CI job)
always rescans, while calls within one session (scan-report after scan) share the run."""
PURE = ""
"""Checks and builds of a source Directory: the engine's default (same inputs, same answer)."""
Fn = TypeVar("Fn", bound=Callable[..., Awaitable[object]])


def cached(policy: str) -> Callable[[Fn], Fn]:
    """`@function(cache=policy)`: dagger-io 0.21.11 takes `cache`, but its typing overloads
    omit it, so the call goes through an untyped view of the same decorator."""
    decorate = cast(Callable[..., Callable[[Fn], Fn]], function)
    return decorate(cache=policy)


HASURA_PORT = 8080
POSTGRES_PORT = 5432

Source: TypeAlias = Annotated[
    dagger.Directory,
    Doc("The monorepo: the folder holding wormhole-ci.toml (default: the repository root)"),
    DefaultPath("/"),
    Ignore(SOURCE_IGNORE),
]
FailOnArg: TypeAlias = Annotated[
    str | None,
    Doc(
        "Lowest severity that fails the scan: critical, high, medium, low or none "
        "(default: security.fail_on in wormhole-ci.toml, else high)"
    ),
]
AllowUnavailable: TypeAlias = Annotated[
    bool, Doc("Do not fail when a scanner could not run (still reported as not scanned)")
]
CommitSha: TypeAlias = Annotated[
    str, Doc("Commit SHA baked into the image (BUILD_SHA, labels); CI: the pushed commit")
]
VersionTag: TypeAlias = Annotated[str, Doc("An extra immutable tag such as v1.4.0")]
Platforms: TypeAlias = Annotated[
    Sequence[str], Doc("Target platforms: linux/amd64, linux/arm64 (default: the engine's)")
]
BuildArgs: TypeAlias = Annotated[
    Sequence[str], Doc("Extra build arguments NAME=VALUE, e.g. NODE_IMAGE=mirror/node:20")
]
ServiceName: TypeAlias = Annotated[
    str | None, Doc("Only this service (a name from wormhole-ci.toml); default: every service")
]


@object_type
class WormholeCi:
    """Check, build, scan, migrate and deploy the Wormhole monorepo."""

    source: Source

    @dagger_check
    @cached(PURE)
    async def check(self) -> str:
        """Lint, type-check and test every service concurrently, and validate the Hasura
        metadata structurally; fails once, naming every failed service and task."""
        return await self._run("check", None, ())

    @cached(PURE)
    async def check_report(self) -> dagger.Directory:
        """The same checks as `check`, returning `junit.xml`, `check.txt` and `status`
        (passed or failed) instead of failing, so CI can upload the report either way."""
        plan = await self._planned(build_plan)
        report = await self._execute(plan)
        text = "\n".join(status_lines(report, "check"))
        if not report.ok:
            text += "\n\n" + summary(report, "check")
        return (
            dag.directory()
            .with_new_file("junit.xml", junit_xml(report))
            .with_new_file("check.txt", text + "\n")
            .with_new_file("status", "passed\n" if report.ok else "failed\n")
        )

    @cached(PURE)
    async def lint(self, service: ServiceName = None) -> str:
        """Run the lint and format checks (after each service's install and prepare)."""
        return await self._run("lint", service, ("lint",))

    @cached(PURE)
    async def typecheck(self, service: ServiceName = None) -> str:
        """Run the type checkers (tsc, nuxi typecheck, pyright)."""
        return await self._run("typecheck", service, ("typecheck",))

    @cached(PURE)
    async def test(self, service: ServiceName = None) -> str:
        """Run the test suites (vitest, pytest)."""
        return await self._run("test", service, ("test",))

    @dagger_check
    @cached(PURE)
    async def validate_hasura(self) -> str:
        """Apply the api's Prisma migrations to a PostgreSQL 15 service, start Hasura
        GraphQL Engine on it, apply the metadata with --disallow-inconsistent-metadata and
        report `metadata inconsistency list`; the structural check runs too."""

        def plans(manifest: Manifest) -> tuple[Plan, dict[str, ServicePlan]]:
            databases = {
                s.name: build_plan(manifest, [s.database or ""]).services[0]
                for s in manifest.services
                if s.kind is ServiceKind.HASURA
            }
            return build_plan(manifest, list(databases), ("validate",)), databases

        plan, databases = await self._planned(plans)
        if not databases:
            raise WormholeCiError(
                "validate-hasura: wormhole-ci.toml declares no service of kind hasura"
            )
        report = await self._execute(plan)
        lines = status_lines(report, "validate-hasura (structural)")
        if not report.ok:
            raise WormholeCiError(summary(report, "validate-hasura"))
        for service, database in databases.items():
            lines.extend(await self._live_hasura(service, database, plan))
        return "\n".join(lines)

    @cached(FRESH)
    async def scan(
        self, fail_on: FailOnArg = None, allow_unavailable: AllowUnavailable = False
    ) -> dagger.Directory:
        """Semgrep, Trivy (secrets, misconfigurations, SBOMs), pnpm audit and pip-audit under one
        policy; returns the reports (scan.sarif, scan.md, scan.json, SBOMs) or fails per policy."""
        return await self._scan(frozenset(Family), fail_on, allow_unavailable, enforce=True)

    @cached(FRESH)
    async def scan_report(
        self, fail_on: FailOnArg = None, allow_unavailable: AllowUnavailable = False
    ) -> dagger.Directory:
        """The same scan, returning the reports even when the policy fails (for uploading SARIF)."""
        return await self._scan(frozenset(Family), fail_on, allow_unavailable, enforce=False)

    @cached(FRESH)
    async def sast(self, fail_on: FailOnArg = None) -> dagger.Directory:
        """Semgrep with the project's rules and Trivy's secret and misconfiguration scanners."""
        return await self._scan(frozenset({Family.SAST}), fail_on, False, enforce=True)

    @cached(FRESH)
    async def audit(
        self, fail_on: FailOnArg = None, allow_unavailable: AllowUnavailable = False
    ) -> dagger.Directory:
        """pnpm audit for the node services and pip-audit for the python services."""
        return await self._scan(frozenset({Family.AUDIT}), fail_on, allow_unavailable, enforce=True)

    @cached(FRESH)
    async def scan_image(
        self,
        image: Annotated[
            dagger.Container | None, Doc("An image to scan (its tarball is exported)")
        ] = None,
        tarball: Annotated[
            dagger.File | None, Doc("An image tarball (docker save / OCI archive)")
        ] = None,
        name: Annotated[str, Doc("How reports name the image")] = "image",
        fail_on: FailOnArg = None,
        allow_unavailable: AllowUnavailable = False,
    ) -> dagger.Directory:
        """Trivy CVE scan of a built image, with the vulnerability DB in a cache volume."""
        if tarball is not None and image is None:
            archive = tarball
        elif image is not None and tarball is None:
            archive = image.as_tarball()
        else:
            raise WormholeCiError("scan-image: pass exactly one of --image or --tarball")
        task = image_scan("/image.tar", name)
        scanner = self._scanner(task)
        version = await self._scanner_version(scanner, task)
        ctr = scanner.with_file("/image.tar", archive)
        outcome, _ = await self._scan_task(ctr, task, lambda _path: "", version)
        manifest = await self._planned(lambda m: m)
        return await self._report(
            (task,),
            [outcome],
            manifest,
            fail_on=fail_on,
            allow_unavailable=allow_unavailable,
            artifacts={},
            enforce=True,
        )

    @cached(PURE)
    async def build(
        self,
        service: Annotated[str, Doc("The service whose Dockerfile to build")],
        tag: CommitSha = "",
        version_tag: VersionTag = "",
        platform: Annotated[
            str, Doc("Target platform, e.g. linux/arm64 (default: the engine's)")
        ] = "",
        build_arg: BuildArgs = (),
    ) -> dagger.Container:
        """Build one service's image from its Dockerfile (try `terminal` or `as-tarball` on it)."""
        (spec,), source_url = await self._planned(
            lambda m: (image_specs(m, [service]), m.repository)
        )
        rev = Revision(check_sha(tag)) if tag else None
        platforms = check_platforms([platform]) if platform else ()
        return self._image(
            spec,
            _image_args(rev, version_tag, source_url, build_arg),
            platforms[0] if platforms else None,
        )

    @cached(PURE)
    async def build_all(
        self,
        tag: CommitSha = "",
        version_tag: VersionTag = "",
        platforms: Platforms = (),
        build_arg: BuildArgs = (),
    ) -> dagger.Directory:
        """Every service image as an OCI tarball `<service>.tar` (all --platforms in one
        archive), e.g. for `scan-image --tarball` or `export --path=images`."""
        specs, source_url = await self._planned(lambda m: (image_specs(m), m.repository))
        rev = Revision(check_sha(tag)) if tag else None
        args = _image_args(rev, version_tag, source_url, build_arg)
        out = dag.directory()
        for spec in specs:
            variants = self._variants(spec, args, check_platforms(platforms))
            out = out.with_file(
                f"{spec.service}.tar", variants[0].as_tarball(platform_variants=variants[1:])
            )
        return out

    @cached(SIDE_EFFECTS)
    async def publish(
        self,
        *,
        registry: Annotated[
            str, Doc("Where the images go: host[:port][/namespace], e.g. ghcr.io/acme")
        ],
        tag: Annotated[str, Doc("The commit SHA being published (CI: the pushed commit)")],
        username: Annotated[str, Doc("Registry user")] = "",
        password: Annotated[dagger.Secret | None, Doc("Registry password or token")] = None,
        version_tag: VersionTag = "",
        platforms: Platforms = (),
        build_arg: BuildArgs = (),
    ) -> str:
        """Build and push `<registry>/<project>-<service>:<sha7>` (+ --version-tag) for every
        service; a tag already holding other content is refused before anything is pushed,
        one holding this very image is left alone, and after each push the registry must
        serve this image. Returns the references with digests."""
        published = await self._publish(
            registry,
            Revision(check_sha(tag)),
            username,
            password,
            version_tag=version_tag,
            platforms=platforms,
            build_arg=build_arg,
        )
        return "\n".join(
            f"{p.reference} ({'pushed' if p.action == 'pushed' else 'unchanged: already published'})"
            for p in published
        )

    @cached(SIDE_EFFECTS)
    async def migrate(
        self,
        *,
        database_url: Annotated[
            dagger.Secret, Doc("The direct (not pooled) PostgreSQL URL of the target database")
        ],
        tag: CommitSha = "",
        service: Annotated[
            str, Doc("Whose prisma/migrations to apply (default: the only service that has them)")
        ] = "",
        lock_timeout: Annotated[
            int, Doc("Seconds to wait for another migration job holding the lock")
        ] = 600,
        allow_destructive: Annotated[
            bool, Doc("Apply drops, renames, type changes and NOT NULL additions")
        ] = False,
        no_backup: Annotated[bool, Doc("Skip the pg_dump backup (not recommended)")] = False,
    ) -> dagger.Directory:
        """Apply pending Prisma migrations exactly once: advisory lock, squawk and the
        destructive-change gate, pg_dump backup, `prisma migrate deploy`, clean `migrate
        status`. Returns migrate.json, backups/<db>-<time>-<sha7>.dump, migrate.log and
        `status` (its outcome) whether the job succeeded or not: the backup is never lost."""
        return await self._migrate_job(
            database_url,
            tag=tag,
            service=service,
            lock_timeout=lock_timeout,
            allow_destructive=allow_destructive,
            no_backup=no_backup,
        )

    async def _migrate_job(
        self,
        database_url: dagger.Secret,
        *,
        tag: str,
        service: str = "",
        lock_timeout: int = 600,
        allow_destructive: bool = False,
        no_backup: bool = False,
    ) -> dagger.Directory:
        argv = migrate_argv(
            service=service or None,
            tag=check_sha(tag) if tag else None,
            lock_timeout=lock_timeout,
            allow_destructive=allow_destructive,
            no_backup=no_backup,
        )
        ctr = (
            dag.container()
            .from_(NODE_IMAGE)
            .with_directory(MODULE_SOURCE, dag.current_module().source())
        )
        ctr = _tooled(ctr, MIGRATE_TOOLCHAIN, (MIGRATE_CACHE,), (*COREPACK_ENV,))
        ctr = (
            ctr.with_env_variable(MIGRATE_CACHE.env, MIGRATE_CACHE.path)
            .with_directory(SOURCE_ROOT, self.source)
            .with_directory(OUT_PATH, dag.directory())
            .with_secret_variable("DATABASE_URL", database_url)
            # a migration job must run every time: never answered from the engine's cache
            .with_env_variable("WORMHOLE_CI_JOB", secrets.token_hex(8))
            .with_workdir(SOURCE_ROOT)
            .with_exec(list(argv), expect=ReturnType.ANY)
        )
        return await _job_result(ctr, "migrate.json")

    @cached(SIDE_EFFECTS)
    async def deploy(
        self,
        *,
        environment: Annotated[str, Doc("An [environments.NAME] of wormhole-ci.toml")],
        tag: Annotated[
            str, Doc("The commit SHA to deploy: its images must already be in the registry")
        ],
        coolify_token: Annotated[dagger.Secret, Doc("The environment's Coolify API token")],
        registry_password: Annotated[
            dagger.Secret | None, Doc("Password/token to read the environment's registry")
        ] = None,
        registry_username: Annotated[
            str, Doc("Registry user (default: the environment's registry_username)")
        ] = "",
        no_rollback: Annotated[bool, Doc("Leave a failed deploy as it is")] = False,
    ) -> dagger.Directory:
        """Deploy an already published commit (also how to roll back to an earlier one): refuse
        unless the registry holds its images, then set each Coolify application's image tag,
        deploy, wait, verify each /healthz reports the SHA, and roll back on failure. Returns
        deploy.json and `status` (its outcome) whether or not the deploy succeeded."""
        rev = Revision(check_sha(tag))
        env, specs = await self._planned(lambda m: (m.environment(environment), image_specs(m)))
        user = registry_username or env.registry_username or ""
        secret = await registry_password.plaintext() if registry_password else None
        host = env.registry.partition("/")[0]
        with Registry(host, user or None if secret else None, secret) as registry:
            await anyio.to_thread.run_sync(
                lambda: require_published(registry, env.registry, specs, rev, env.name)
            )
        try:
            result = await self._deploy_env(env, rev, coolify_token, rollback=not no_rollback)
        except DeployFailed as exc:
            result = exc.result
        text = redact(result.to_json(), await coolify_token.plaintext())
        return (
            dag.directory()
            .with_new_file("deploy.json", text + "\n")
            .with_new_file("status", result.outcome + "\n")
        )

    @cached(SIDE_EFFECTS)
    async def release(
        self,
        *,
        environment: Annotated[str, Doc("An [environments.NAME] of wormhole-ci.toml")],
        tag: Annotated[str, Doc("The commit SHA being released (CI: the pushed commit)")],
        coolify_token: Annotated[dagger.Secret, Doc("The environment's Coolify API token")],
        database_url: Annotated[
            dagger.Secret, Doc("The environment's direct PostgreSQL URL (not a pooler)")
        ],
        registry_password: Annotated[
            dagger.Secret | None, Doc("Password/token for the environment's registry")
        ] = None,
        registry_username: Annotated[
            str, Doc("Registry user (default: the environment's registry_username)")
        ] = "",
        allow_unavailable_scanners: Annotated[
            bool, Doc("Do not stop when a scanner could not run (recorded)")
        ] = False,
        allow_destructive: Annotated[bool, Doc("Let destructive migrations apply")] = False,
        no_rollback: Annotated[bool, Doc("Leave a failed deploy as it is")] = False,
    ) -> dagger.Directory:
        """check → build → scan → publish → migrate → deploy → verify, stopping at the first
        red gate (nothing starts while Coolify deploys these applications). Returns, whether
        the release passed or stopped: release.json, `status` (released | stopped | refused)
        and migrate/ (the migration's result, log and pre-migration backup)."""
        rev = Revision(check_sha(tag))
        # The planner's inputs live in a temporary export: plan everything up front.
        manifest, env, specs, plan = await self._planned(
            lambda m: (m, m.environment(environment), image_specs(m), build_plan(m))
        )
        token = await coolify_token.plaintext()
        password = await registry_password.plaintext() if registry_password else None
        hidden = (
            tuple(v for v in (token, password, await database_url.plaintext()) if v)
            + DatabaseUrl.parse(await database_url.plaintext()).secrets
        )
        steps = _DaggerSteps(
            self,
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

        machine = ReleaseMachine(
            env=env,
            steps=steps,
            coolify=Coolify(env.coolify_url, token),
            rollout=Rollout(sha=rev.sha, image_tag=rev.short, rollback=not no_rollback),
            say=say,
            save=lambda _record: None,  # the record is returned below, whatever happened
            hidden=hidden,
        )
        record = await machine.run(
            ReleaseRecord(sha=rev.sha, environment=env.name, started=utc_now())
        )
        return steps.out.with_new_file(
            "release.json", redact(record.to_json(), *hidden) + "\n"
        ).with_new_file("status", f"{record.outcome}\n")

    async def _publish(
        self,
        registry: str,
        rev: Revision,
        username: str,
        password: dagger.Secret | None,
        *,
        version_tag: str = "",
        platforms: Sequence[str] = (),
        build_arg: Sequence[str] = (),
    ) -> list[Published]:
        """The guarded publish (images/publish.py) with this engine as the executor."""
        if bool(username) != (password is not None):
            raise ImageError("publish: pass both --username and --password, or neither")
        address = check_registry(registry)
        version = check_version_tag(version_tag) if version_tag else None
        specs, source_url = await self._planned(lambda m: (image_specs(m), m.repository))
        args = _image_args(rev, version_tag, source_url, build_arg)
        host, _, prefix = address.partition("/")
        plaintext = await password.plaintext() if password else None
        chosen = check_platforms(platforms)
        with Registry(host, username or None, plaintext) as client:
            # unreachable registry or wrong credentials: fail before anything is built
            await anyio.to_thread.run_sync(client.ping)
            candidates = [
                Candidate(
                    spec.service,
                    host,
                    f"{prefix}/{spec.repository}" if prefix else spec.repository,
                    self._variants(spec, args, chosen),
                )
                for spec in specs
            ]
            return await guarded_publish(
                candidates,
                image_tags(rev, version),
                _DaggerPublisher(client, host, username, password),
            )

    async def _deploy_env(
        self, env: Environment, rev: Revision, token: dagger.Secret, *, rollback: bool
    ) -> DeployResult:
        """The deploy runs in the module itself: Coolify's API over HTTPS, no container."""
        plaintext = await token.plaintext()
        options = DeployOptions(
            sha=rev.sha,
            image_tag=rev.short,
            rollback=rollback,
            deploy_timeout=env.deploy_timeout,
            verify_timeout=env.verify_timeout,
        )
        coolify = Coolify(env.coolify_url, plaintext)

        def say(line: str) -> None:  # progress, shown by `dagger call`
            print(redact(line, plaintext), file=sys.stderr, flush=True)

        return await anyio.to_thread.run_sync(
            lambda: deploy_environment(env, coolify, options, say)
        )

    def _image(
        self, spec: ImageSpec, args: Sequence[tuple[str, str]], platform: str | None
    ) -> dagger.Container:
        context = self.source.directory(spec.context)
        return context.docker_build(
            dockerfile=spec.dockerfile,
            platform=dagger.Platform(platform) if platform else None,
            build_args=[dagger.BuildArg(name=k, value=v) for k, v in args],
        )

    def _variants(
        self, spec: ImageSpec, args: Sequence[tuple[str, str]], platforms: Sequence[str]
    ) -> list[dagger.Container]:
        """One container per platform (just the engine's own when none is asked for)."""
        return [self._image(spec, args, p) for p in platforms] or [self._image(spec, args, None)]

    async def _run(self, what: str, service: str | None, families: Sequence[str]) -> str:
        plan = await self._planned(lambda m: build_plan(m, [service] if service else [], families))
        if not plan.services:
            raise WormholeCiError(f"{what}: nothing to run for {service or 'any service'}")
        report = await self._execute(plan)
        if not report.ok:
            raise WormholeCiError(summary(report, what))
        return "\n".join(status_lines(report, what))

    async def _planned(self, fn: Callable[[Manifest], T]) -> T:
        """Run `fn` on the manifest, with the planner's input files exported into the module."""
        with tempfile.TemporaryDirectory(prefix="wormhole-ci-plan-") as tmp:
            await self.source.filter(include=PLAN_INPUTS).export(tmp)
            try:
                return fn(load_manifest(Path(tmp)))
            except WormholeCiError as exc:
                # Paths in the message are the temporary export: show them relative.
                raise type(exc)(str(exc).replace(f"{Path(tmp).resolve()}/", "")) from None

    async def _execute(self, plan: Plan) -> RunReport:
        """Every service's container concurrently, on the scheduler the native runtime uses."""
        return await schedule(plan, _DaggerExecutor(self._container), Silent())

    def _container(self, spec: ContainerSpec) -> dagger.Container:
        """The service's container up to (not including) its first task."""
        ctr = dag.container().from_(spec.image)
        if spec.needs_module_source:
            ctr = ctr.with_directory(MODULE_SOURCE, dag.current_module().source())
        ctr = _tooled(ctr, spec.toolchain, spec.caches, spec.env)
        part = self.source if spec.source_path == "." else self.source.directory(spec.source_path)
        if spec.include:
            # Only the declared inputs (see check.container), so the engine reruns the
            # service only when they change; this package loads the manifest, which needs
            # the planner's files too.
            planner = PLAN_INPUTS if spec.needs_module_source else []
            part = part.filter(include=[*spec.include, *planner])
        return ctr.with_directory(spec.mount, part)

    async def _scan(
        self,
        families: frozenset[Family],
        fail_on: str | None,
        allow_unavailable: bool,
        *,
        enforce: bool,
    ) -> dagger.Directory:
        manifest, tasks, outcomes, artifacts = await self._scan_outcomes(families, {})
        return await self._report(
            tasks,
            outcomes,
            manifest,
            fail_on=fail_on,
            allow_unavailable=allow_unavailable,
            artifacts=artifacts,
            enforce=enforce,
        )

    async def _scan_outcomes(
        self, families: frozenset[Family], images: dict[str, dagger.Container]
    ) -> tuple[Manifest, list[ScanTask], list[Outcome], dict[str, dagger.File]]:
        """Every scan task of `families` plus a CVE scan of each image, concurrently; the
        outcomes in task order."""
        manifest, planned = await self._planned(lambda m: (m, scan_plan(m, families)))
        service_of = services_by_path({s.name: s.path for s in manifest.services})
        every: list[tuple[ScanTask, dagger.Container | None]] = [(t, None) for t in planned]
        every += [(image_scan("/image.tar", name), image) for name, image in images.items()]
        outcomes: dict[int, Outcome] = {}
        artifacts: dict[str, dagger.File] = {}

        async def one(index: int, task: ScanTask, image: dagger.Container | None) -> None:
            scanner = self._scanner(task)
            version = await self._scanner_version(scanner, task)
            if image is None:
                ctr = scanner.with_directory(SOURCE_ROOT, self.source)
            else:
                ctr = scanner.with_file("/image.tar", image.as_tarball())
            outcomes[index], ran = await self._scan_task(ctr, task, service_of, version)
            if task.artifact and outcomes[index].status is ScanStatus.CLEAN:
                artifacts[task.artifact] = ran.file(f"{OUT_PATH}/{task.artifact}")

        async with anyio.create_task_group() as group:
            for index, (task, image) in enumerate(every):
                group.start_soon(one, index, task, image)
        tasks = [t for t, _ in every]
        return manifest, tasks, [outcomes[i] for i in range(len(tasks))], artifacts

    async def _scan_verdict(
        self,
        families: frozenset[Family],
        fail_on: str | None,
        allow_unavailable: bool,
        images: dict[str, dagger.Container],
    ) -> ScanVerdict:
        """The release's scan: the source and every image under one policy."""
        manifest, tasks, outcomes, _ = await self._scan_outcomes(families, images)
        return conclude(
            tasks,
            outcomes,
            manifest,
            fail_on_level(fail_on, manifest),
            allow_unavailable=allow_unavailable,
            today=dt.date.today(),
        )

    def _scanner(self, task: ScanTask) -> dagger.Container:
        """The scan tool's container: pinned image, hash-locked install, caches, rules."""
        spec = scanner_spec(task.tool, task.env)
        ctr = dag.container().from_(spec.image)
        if spec.requirements:
            requirements = (
                dag.current_module().source().file(f"{MODULE_REQUIREMENTS}/{spec.requirements}")
            )
            ctr = ctr.with_file(REQUIREMENTS_PATH, requirements)
        ctr = _tooled(ctr, spec.toolchain, spec.caches, spec.env)
        if spec.rules:
            ctr = ctr.with_directory(
                RULES_PATH, dag.current_module().source().directory(MODULE_RULES)
            )
        return ctr.with_directory(OUT_PATH, dag.directory()).with_directory(
            SCRATCH_PATH, dag.directory()
        )

    @staticmethod
    async def _scanner_version(scanner: dagger.Container, task: ScanTask) -> str:
        """`<binary> --version` in the scanner's container, read like the native runtime reads it."""
        info = SCANNERS[task.tool]
        ran = scanner.with_exec(list(info.version_argv), expect=ReturnType.ANY)
        return info.version(await ran.stdout() or await ran.stderr())

    async def _scan_task(
        self, ctr: dagger.Container, task: ScanTask, service_of: ServiceOf, version: str
    ) -> tuple[Outcome, dagger.Container]:
        """Run one scan task; a scanner's exit code is data (expect ANY), never an exception."""
        ctr = ctr.with_workdir(container_path(task.workdir))
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

    async def _report(
        self,
        tasks: Sequence[ScanTask],
        outcomes: list[Outcome],
        manifest: Manifest,
        *,
        fail_on: str | None,
        allow_unavailable: bool,
        artifacts: dict[str, dagger.File],
        enforce: bool,
    ) -> dagger.Directory:
        verdict = conclude(
            tasks,
            outcomes,
            manifest,
            fail_on_level(fail_on, manifest),
            allow_unavailable=allow_unavailable,
            today=dt.date.today(),
        )
        reports = dag.directory()
        rendered = render_reports(verdict)
        for name, text in rendered.items():
            reports = reports.with_new_file(name, text)
        for name, file in artifacts.items():
            reports = reports.with_file(name, file)
        if enforce and not verdict.passed:
            raise WormholeCiError(failure(verdict) + "\n\n" + rendered["scan.md"])
        return reports

    async def _live_hasura(self, service: str, database: ServicePlan, plan: Plan) -> list[str]:
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
        migrate = self._container(db_spec)
        for ex in (e for e in db_spec.execs if e.setup):
            migrate = _with_exec(migrate, ex, ReturnType.SUCCESS)
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
            .with_directory("/hasura", self.source.directory(hasura.path))
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


class _DaggerPublisher:
    """The Dagger side of the publish guard (images/publish.py): the engine pushes the
    containers (all platforms at once), the registry client reads, in a worker thread."""

    def __init__(
        self, client: Registry, host: str, username: str, password: dagger.Secret | None
    ) -> None:
        self._client = client
        self._host = host
        self._username = username
        self._password = password

    async def local_identity(self, variants: list[dagger.Container]) -> dict[str, str]:
        return await _config_digests(variants)

    async def resolve(self, repository: str, tag: str) -> RemoteImage | None:
        return await anyio.to_thread.run_sync(self._client.resolve, repository, tag)

    async def push(self, variants: list[dagger.Container], reference: str) -> str:
        ctr = variants[0]
        if self._password is not None:
            ctr = ctr.with_registry_auth(self._host, self._username, self._password)
        pushed = await ctr.publish(reference, platform_variants=variants[1:])
        return pushed.rpartition("@")[2]  # `<reference>@sha256:…`


async def _config_digests(variants: list[dagger.Container]) -> dict[str, str]:
    """The per-platform config digests of these containers, read from their OCI archive
    (exported into the module's own container): what `push` would push."""
    with tempfile.TemporaryDirectory(prefix="wormhole-ci-image-") as tmp:
        path = Path(tmp) / "image.tar"
        await variants[0].as_tarball(platform_variants=variants[1:]).export(str(path))
        return dict(read_identity(path).configs)


def _image_args(
    rev: Revision | None, version_tag: str, source_url: str | None, extra: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    version = check_version_tag(version_tag) if version_tag else None
    args = list(build_args(rev, version, source_url)) if rev else []
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ImageError(f"--build-arg {item!r}: expected NAME=VALUE")
        args.append((name, value))
    return tuple(args)


def _tooled(
    ctr: dagger.Container,
    toolchain: tuple[tuple[str, ...], ...],
    caches: tuple[CacheMount, ...],
    env: tuple[tuple[str, str], ...],
) -> dagger.Container:
    """Install pinned tools, mount cache volumes and set the environment, in that order."""
    for argv in toolchain:
        ctr = ctr.with_exec(list(argv))
    for cache in caches:
        ctr = ctr.with_mounted_cache(cache.path, dag.cache_volume(cache.volume))
    for name, value in env:
        ctr = ctr.with_env_variable(name, value)
    return ctr


class _DaggerExecutor:
    """The check executor for Dagger (a scheduler.Executor): one container chain per service.

    Its state is the service's container: each passed setup exec extends it, and the
    checks are independent branches of the set-up container, so they run side by side.
    """

    concurrent_checks = True

    def __init__(self, container: Callable[[ContainerSpec], dagger.Container]) -> None:
        self._container = container
        self._execs: dict[str, Exec] = {}

    def begin(self, service: ServicePlan, rank: int) -> dagger.Container:
        spec = service_spec(service)
        self._execs.update((f"{spec.service}:{ex.task}", ex) for ex in spec.execs)
        return self._container(spec)

    async def ready(self) -> None:
        pass

    async def run(
        self, task: Task, state: dagger.Container, reporter: Reporter
    ) -> Ran[dagger.Container]:
        ex = self._execs[task.key]
        reporter.started(task)
        started = time.monotonic()
        # A setup exec must succeed to be built on; a check's non-zero exit is a result.
        step = _with_exec(state, ex, ReturnType.SUCCESS if ex.setup else ReturnType.ANY)
        try:
            if ex.setup:
                await step.sync()
                code, output = 0, ""
            else:
                code = await step.exit_code()
                output = (await step.stdout()) + (await step.stderr())
        except dagger.ExecError as exc:
            failure = _exec_failure(task.service, task.name, exc, time.monotonic() - started)
            return Ran(failure, state)
        except dagger.QueryError as exc:
            duration = time.monotonic() - started
            failure = TaskResult(task.service, task.name, Status.FAILED, duration, None, str(exc))
            return Ran(failure, state)
        status = Status.PASSED if code == 0 else Status.FAILED
        result = TaskResult(
            task.service, task.name, status, time.monotonic() - started, code, tail_of(output)
        )
        return Ran(result, step)

    def waiting(self, state: dagger.Container) -> None:
        pass

    def end(self, state: dagger.Container) -> None:
        pass


def _with_exec(ctr: dagger.Container, ex: Exec, expect: ReturnType) -> dagger.Container:
    for name, value in ex.env:
        ctr = ctr.with_env_variable(name, value)
    return ctr.with_workdir(ex.workdir).with_exec(list(ex.argv), expect=expect)


def _exec_failure(service: str, task: str, exc: dagger.ExecError, duration: float) -> TaskResult:
    return TaskResult(
        service, task, Status.FAILED, duration, exc.exit_code, tail_of(exc.stdout + exc.stderr)
    )


async def _job_result(ctr: dagger.Container, result_file: str) -> dagger.Directory:
    """A job container's OUT_PATH, whatever its exit code, plus `status` (the outcome its
    result file names, else failed) and its output as `<job>.log`: nothing it wrote is lost."""
    code = await ctr.exit_code()
    output = (await ctr.stdout()) + (await ctr.stderr())
    out = ctr.directory(OUT_PATH)
    try:
        text = await out.file(result_file).contents()
    except dagger.QueryError:  # the job stopped before writing its result (e.g. bad input)
        text = ""
    outcome = outcome_of(text, code)
    log = result_file.rsplit(".", 1)[0] + ".log"
    return out.with_new_file(log, output).with_new_file("status", outcome + "\n")


class _DaggerSteps:
    """The release gates as containers of this engine (the state machine is the core's)."""

    def __init__(
        self,
        module: WormholeCi,
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
        self.m, self.manifest, self.env, self.rev = module, manifest, env, rev
        self.database_url, self.password = database_url, registry_password
        self.username = registry_username
        self.allow_unavailable, self.allow_destructive = allow_unavailable, allow_destructive
        self.specs, self.plan = specs, plan
        self.images: dict[str, dagger.Container] = {}
        self.out = dag.directory()
        """What the release returns besides release.json: the migration's files."""

    async def check(self, record: ReleaseRecord) -> str:
        report = await self.m._execute(self.plan)  # pyright: ignore[reportPrivateUsage]
        if not report.ok:
            raise WormholeCiError(summary(report, "check"))
        return f"{len(report.results)} tasks passed"

    async def build(self, record: ReleaseRecord) -> str:
        args = _image_args(self.rev, "", self.manifest.repository, ())
        for spec in self.specs:
            image = self.m._image(spec, args, None)  # pyright: ignore[reportPrivateUsage]
            try:
                digests = await _config_digests([image])
            except (dagger.ExecError, dagger.QueryError) as exc:
                raise ImageError(f"build {spec.service}: {exc}") from None
            self.images[spec.service] = image
            name = f"{spec.repository}:{self.rev.short}"
            record.images.append(ImageRecord(spec.service, name, ",".join(digests.values())))
        return ", ".join(i.name for i in record.images)

    async def scan(self, record: ReleaseRecord) -> str:
        verdict = await self.m._scan_verdict(  # pyright: ignore[reportPrivateUsage]
            frozenset(Family), None, self.allow_unavailable, self.images
        )
        record.scan = scan_record(
            verdict, self.allow_unavailable, ["scan/scan.sarif", "scan/scan.md", "scan/scan.json"]
        )
        return scan_detail(verdict)

    async def publish(self, record: ReleaseRecord) -> str:
        published = await self.m._publish(  # pyright: ignore[reportPrivateUsage]
            self.env.registry,
            self.rev,
            self.username if self.password is not None else "",
            self.password,
        )
        for each in published:
            image = record.image(each.service)
            if image is not None and not image.reference:
                image.reference, image.digest, image.action = (
                    each.reference,
                    each.digest,
                    each.action,
                )
        return ", ".join(p.reference for p in published)

    async def migrate(self, record: ReleaseRecord) -> str:
        result = await self.m._migrate_job(  # pyright: ignore[reportPrivateUsage]
            self.database_url, tag=self.rev.sha, allow_destructive=self.allow_destructive
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
