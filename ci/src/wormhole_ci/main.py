"""The Dagger module: every function `dagger call` and `dagger functions` see.

Each function parses its arguments, hands the monorepo to the Dagger runtime
(`dagger_runtime/`, the executors: containers for the check scheduler, the scanners,
the builds and the publish guard, the migration job, the release gates) and returns what
the core decided. The decisions themselves (plans, policies, the state machine) live in
the capability packages, the same code the native CLI runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import dagger
from dagger import Doc, object_type

# Aliased: the `check` function below would shadow the decorator inside the class body.
from dagger import check as dagger_check

from wormhole_ci.dagger_runtime.affected import Since, affected_json
from wormhole_ci.dagger_runtime.check import PrComment, check_report_directory, run_checks
from wormhole_ci.dagger_runtime.deploy import deploy_commit
from wormhole_ci.dagger_runtime.environment import apply_hasura, drift_job
from wormhole_ci.dagger_runtime.github import GitHubInputs
from wormhole_ci.dagger_runtime.hasura import validate_hasura_metadata
from wormhole_ci.dagger_runtime.images import build_image, build_images, publish_images
from wormhole_ci.dagger_runtime.migrate import migrate_job
from wormhole_ci.dagger_runtime.plan import plan_file
from wormhole_ci.dagger_runtime.preview import run_preview
from wormhole_ci.dagger_runtime.release import run_release
from wormhole_ci.dagger_runtime.scan import scan_image_archive, scan_source
from wormhole_ci.dagger_runtime.signature import (
    FRESH,
    PURE,
    REPORTED,
    SIDE_EFFECTS,
    AllowUnavailable,
    BuildArgs,
    ChangedPaths,
    CommentRepository,
    CommentSha,
    CommentToken,
    CommitSha,
    Explain,
    FailOnArg,
    GitHubApiUrl,
    GitHubToken,
    HasuraAdminSecret,
    NotifyUrl,
    Platforms,
    PrCommentArg,
    PushgatewayAuth,
    RepoPath,
    ServiceName,
    SinceRef,
    Source,
    VersionTag,
    cached,
)
from wormhole_ci.dagger_runtime.source import DaggerSource
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.images.spec import Revision, check_sha
from wormhole_ci.security.tasks import Family


@object_type
class WormholeCi:
    """Check, build, scan, migrate and deploy the Wormhole monorepo."""

    source: Source
    since: SinceRef = ""
    changed: ChangedPaths = None
    repo_path: RepoPath = ""

    @dagger_check
    @cached(REPORTED)
    async def check(
        self,
        explain: Explain = False,
        *,
        pr_comment: PrCommentArg = 0,
        pr_sha: CommentSha = "",
        github_token: CommentToken = None,
        github_repository: CommentRepository = "",
        github_api_url: GitHubApiUrl = "",
    ) -> str:
        """Lint, type-check and test every service concurrently, validate the Hasura
        metadata structurally and the delivery configuration (promtool, amtool, alerts,
        runbooks, dashboards, the Coolify stack); fails once, naming every failed service
        and task."""
        comment = PrComment(
            pr_comment,
            pr_sha,
            GitHubInputs(github_token, github_repository, github_api_url),
        )
        return await run_checks(self._source(), "check", None, (), explain=explain, comment=comment)

    @cached(REPORTED)
    async def check_report(
        self,
        *,
        pr_comment: PrCommentArg = 0,
        pr_sha: CommentSha = "",
        github_token: CommentToken = None,
        github_repository: CommentRepository = "",
        github_api_url: GitHubApiUrl = "",
    ) -> dagger.Directory:
        """The same checks as `check`, returning `junit.xml`, `check.txt` and `status`
        (passed or failed) instead of failing, so CI can upload the report either way."""
        comment = PrComment(
            pr_comment,
            pr_sha,
            GitHubInputs(github_token, github_repository, github_api_url),
        )
        return await check_report_directory(self._source(), comment)

    @cached(PURE)
    async def lint(self, service: ServiceName = None) -> str:
        """Run the lint and format checks (after each service's install and prepare)."""
        return await run_checks(self._source(), "lint", service, ("lint",))

    @cached(PURE)
    async def typecheck(self, service: ServiceName = None) -> str:
        """Run the type checkers (tsc, nuxi typecheck, pyright)."""
        return await run_checks(self._source(), "typecheck", service, ("typecheck",))

    @cached(PURE)
    async def test(self, service: ServiceName = None) -> str:
        """Run the test suites (vitest, pytest)."""
        return await run_checks(self._source(), "test", service, ("test",))

    @dagger_check
    @cached(PURE)
    async def validate_hasura(self) -> str:
        """Apply the api's Prisma migrations to a PostgreSQL 15 service, start Hasura
        GraphQL Engine on it, apply the metadata with --disallow-inconsistent-metadata and
        report `metadata inconsistency list`; the structural check runs too."""
        return await validate_hasura_metadata(self._source())

    @cached(FRESH)
    async def scan(
        self, fail_on: FailOnArg = None, allow_unavailable: AllowUnavailable = False
    ) -> dagger.Directory:
        """Semgrep, Trivy (secrets, misconfigurations, SBOMs), pnpm/npm audit and pip-audit under one
        policy; returns the reports (scan.sarif, scan.md, scan.json, SBOMs) or fails per policy."""
        return await scan_source(
            self._source(), frozenset(Family), fail_on, allow_unavailable, enforce=True
        )

    @cached(FRESH)
    async def scan_report(
        self, fail_on: FailOnArg = None, allow_unavailable: AllowUnavailable = False
    ) -> dagger.Directory:
        """The same scan, returning the reports even when the policy fails (for uploading SARIF)."""
        return await scan_source(
            self._source(), frozenset(Family), fail_on, allow_unavailable, enforce=False
        )

    @cached(FRESH)
    async def sast(self, fail_on: FailOnArg = None) -> dagger.Directory:
        """Semgrep with the project's rules and Trivy's secret and misconfiguration scanners."""
        return await scan_source(
            self._source(), frozenset({Family.SAST}), fail_on, False, enforce=True
        )

    @cached(FRESH)
    async def audit(
        self, fail_on: FailOnArg = None, allow_unavailable: AllowUnavailable = False
    ) -> dagger.Directory:
        """pnpm or npm audit for the node services (by lock file; an `unavailable` row when
        there is no auditor) and pip-audit for the python services."""
        return await scan_source(
            self._source(), frozenset({Family.AUDIT}), fail_on, allow_unavailable, enforce=True
        )

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
        return await scan_image_archive(
            self._source(), archive, name, fail_on=fail_on, allow_unavailable=allow_unavailable
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
        return await build_image(
            self._source(),
            service,
            tag=tag,
            version_tag=version_tag,
            platform=platform,
            build_arg=build_arg,
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
        return await build_images(
            self._source(),
            tag=tag,
            version_tag=version_tag,
            platforms=platforms,
            build_arg=build_arg,
        )

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
        published = await publish_images(
            self._source(),
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
        environment: Annotated[
            str,
            Doc(
                "The [environments.NAME] this database belongs to: the outcome is pushed to "
                "its Pushgateway ([observability]); it does not choose the database"
            ),
        ] = "",
        pushgateway_auth: PushgatewayAuth = None,
        dry_run: Annotated[
            bool,
            Doc(
                "Change nothing: pending migrations, each statement's gate verdict, the lock's "
                "holder and the backup's name, read in one read-only transaction (no lock, no "
                "backup, no Prisma); status would-apply, up-to-date, would-block or would-fail"
            ),
        ] = False,
    ) -> dagger.Directory:
        """Apply pending Prisma migrations exactly once: advisory lock, squawk and the
        destructive-change gate, pg_dump backup, `prisma migrate deploy`, clean `migrate
        status`. Returns migrate.json, backups/<db>-<time>-<sha7>.dump, migrate.log and
        `status` (its outcome) whether the job succeeded or not: the backup is never lost.
        Never cached, a dry run included: it reads the database's live state."""
        return await migrate_job(
            self._source(),
            database_url,
            tag=tag,
            service=service,
            lock_timeout=lock_timeout,
            allow_destructive=allow_destructive,
            no_backup=no_backup,
            environment=environment,
            pushgateway_auth=pushgateway_auth,
            dry_run=dry_run,
        )

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
        pushgateway_auth: PushgatewayAuth = None,
        dry_run: Annotated[
            bool,
            Doc(
                "GET requests only: check the registry, each application and its running "
                "deployments, and each health URL; list each tag change; change nothing"
            ),
        ] = False,
    ) -> dagger.Directory:
        """Deploy an already published commit (also how to roll back to an earlier one): refuse
        unless the registry holds its images, then set each Coolify application's image tag,
        deploy, wait, verify each /healthz reports the SHA, and roll back on failure. Returns
        deploy.json and `status` (its outcome) whether or not the deploy succeeded. With
        --dry-run: the same read-only probe as `wormhole-ci deploy --dry-run` (status
        `dry-run`, or `refused` when a deploy would be); live state, never cached."""
        return await deploy_commit(
            self._source(),
            environment=environment,
            tag=tag,
            coolify_token=coolify_token,
            registry_password=registry_password,
            registry_username=registry_username,
            rollback=not no_rollback,
            pushgateway_auth=pushgateway_auth,
            dry_run=dry_run,
        )

    @cached(SIDE_EFFECTS)
    async def hasura_apply(
        self,
        *,
        environment: Annotated[str, Doc("An [environments.NAME] of wormhole-ci.toml")],
        hasura_admin_secret: Annotated[dagger.Secret, Doc("The environment's Hasura admin secret")],
        coolify_token: Annotated[
            dagger.Secret | None,
            Doc(
                "The Coolify API token (needed when [environments.NAME.hasura].application is set)"
            ),
        ] = None,
        dry_run: Annotated[
            bool, Doc("Read the live metadata and list what would change; write nothing")
        ] = False,
    ) -> dagger.Directory:
        """Apply the repository's Hasura metadata to the environment's engine: export the live
        metadata and its resource_version, replace it (refused if edited since), require it
        consistent, and re-apply the exported metadata on any failure. Once the live metadata
        was read, returns hasura.json and `status` (applied | unchanged | dry-run | failed |
        refused); an unreachable engine or a wrong secret fails the call (nothing written)."""
        return await apply_hasura(
            self._source(),
            environment=environment,
            hasura_admin_secret=hasura_admin_secret,
            coolify_token=coolify_token,
            dry_run=dry_run,
        )

    @cached(SIDE_EFFECTS)
    async def drift(
        self,
        *,
        environment: Annotated[str, Doc("An [environments.NAME] of wormhole-ci.toml")],
        only: Annotated[
            Sequence[str], Doc("Read only these areas: database, hasura, coolify (default: all)")
        ] = (),
        expect_sha: Annotated[
            str, Doc("The commit the environment should run (default: what most apps run)")
        ] = "",
        database_url: Annotated[
            dagger.Secret | None, Doc("The environment's PostgreSQL URL (area database)")
        ] = None,
        hasura_admin_secret: Annotated[
            dagger.Secret | None, Doc("The environment's Hasura admin secret (area hasura)")
        ] = None,
        coolify_token: Annotated[
            dagger.Secret | None, Doc("The environment's Coolify API token (area coolify)")
        ] = None,
    ) -> dagger.Directory:
        """Compare what runs in the environment with the repository, read-only: migrations
        and schema, Hasura metadata, each application's image tag. Returns drift.json,
        drift.md, drift.log and `status` (clean | drift | error). Live state: never cached."""
        return await drift_job(
            self._source(),
            environment=environment,
            only=only,
            expect_sha=expect_sha,
            database_url=database_url,
            hasura_admin_secret=hasura_admin_secret,
            coolify_token=coolify_token,
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
        hasura_admin_secret: HasuraAdminSecret = None,
        allow_unavailable_scanners: Annotated[
            bool, Doc("Do not stop when a scanner could not run (recorded)")
        ] = False,
        allow_destructive: Annotated[bool, Doc("Let destructive migrations apply")] = False,
        no_rollback: Annotated[bool, Doc("Leave a failed deploy as it is")] = False,
        pushgateway_auth: PushgatewayAuth = None,
        github_token: GitHubToken = None,
        github_repository: Annotated[
            str, Doc("owner/name of the GitHub Deployment (Actions: github.repository)")
        ] = "",
        github_api_url: Annotated[
            str, Doc("GitHub's API base (Actions: github.api_url; default https://api.github.com)")
        ] = "",
        github_log_url: Annotated[str, Doc("The deployment's log_url (the Actions run)")] = "",
        notify_url: NotifyUrl = None,
    ) -> dagger.Directory:
        """check → build → scan → publish → migrate → hasura → deploy → verify, stopping at
        the first red gate (nothing starts while Coolify deploys these applications). Returns, whether
        the release passed or stopped: release.json, `status` (released | stopped | refused)
        and migrate/ (the migration's result, log and pre-migration backup)."""
        return await run_release(
            self._source(),
            environment=environment,
            tag=tag,
            coolify_token=coolify_token,
            database_url=database_url,
            registry_password=registry_password,
            registry_username=registry_username,
            hasura_admin_secret=hasura_admin_secret,
            allow_unavailable_scanners=allow_unavailable_scanners,
            allow_destructive=allow_destructive,
            rollback=not no_rollback,
            pushgateway_auth=pushgateway_auth,
            github=GitHubInputs(github_token, github_repository, github_api_url, github_log_url),
            notify_url=notify_url,
        )

    @cached(PURE)
    async def affected(self) -> str:
        """The services affected since --since (from --changed) and why, as JSON:
        {"services": [...], "reasons": {name: [...]}, "base": sha, "notes": [...]}."""
        return await affected_json(self._source())

    @cached(PURE)
    async def plan(self, service: ServiceName = None) -> dagger.File:
        """What `check` runs for each service, without running it, as plan.json (the same
        document as `wormhole-ci plan --json`): tasks with command, working directory, env
        var names, the convention or override behind each and its cache key inputs, skipped
        conventions with the reason, images, environments (secrets by name only)."""
        return await plan_file(self._source(), service)

    @cached(SIDE_EFFECTS)
    async def preview(
        self,
        *,
        environment: Annotated[str, Doc("An [environments.NAME] with a .preview table")],
        pr: Annotated[int, Doc("The pull request number")],
        tag: Annotated[str, Doc("The PR's head commit SHA")],
        coolify_token: Annotated[dagger.Secret, Doc("The environment's Coolify API token")],
        database_url: Annotated[
            dagger.Secret,
            Doc("The preview PostgreSQL's URL (a role that may create databases)"),
        ],
        registry_password: Annotated[
            dagger.Secret | None, Doc("Password/token for the environment's registry")
        ] = None,
        registry_username: Annotated[
            str, Doc("Registry user (default: the environment's registry_username)")
        ] = "",
        close: Annotated[bool, Doc("Delete the PR's previews and drop its database")] = False,
        github_token: Annotated[
            dagger.Secret | None,
            Doc(
                "A token that may write deployments and PR comments (Actions: GITHUB_TOKEN): "
                "the preview is reported as a GitHub Deployment and in the PR's comment"
            ),
        ] = None,
        github_repository: CommentRepository = "",
        github_api_url: GitHubApiUrl = "",
        github_log_url: Annotated[str, Doc("The deployment's log_url (the Actions run)")] = "",
    ) -> str:
        """A pull request's preview: images tagged pr-N-<sha7>, its own database (created,
        migrated), the Coolify preview deployed and verified; --close removes both. A failure
        undoes what the call created. Returns the record as JSON."""
        return await run_preview(
            self._source(),
            environment=environment,
            pr=pr,
            tag=tag,
            coolify_token=coolify_token,
            database_url=database_url,
            registry_password=registry_password,
            registry_username=registry_username,
            close=close,
            github=GitHubInputs(github_token, github_repository, github_api_url, github_log_url),
        )

    def _source(self) -> DaggerSource:
        """The monorepo, for the runtime's executors."""
        since = Since(self.since, self.changed, self.repo_path) if self.since else None
        return DaggerSource(self.source, since)
