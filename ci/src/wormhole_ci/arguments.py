"""The native command line's arguments: one subcommand per Dagger function, same names."""

from __future__ import annotations

import argparse
import os
import platform as platform_module
from pathlib import Path

from wormhole_ci import __version__, plan_cli
from wormhole_ci.check import DEFAULT_TASK_TIMEOUT

# security.policy.FailOn and security.tasks.Family, written out so that parsing the command
# line loads no scanner code (a no-op `check --since` is start-up only); a test keeps them equal.
FAIL_ON_CHOICES = ("critical", "high", "medium", "low", "none")
FAMILY_CHOICES = ("sast", "audit", "sbom")


def parser() -> argparse.ArgumentParser:
    """`wormhole-ci`'s arguments: one subcommand per Dagger function of the same name."""
    parser = argparse.ArgumentParser(
        prog="wormhole-ci",
        description="Check, build, scan, migrate and deploy the Wormhole monorepo (native runtime).",
    )
    parser.add_argument("--version", action="version", version=f"wormhole-ci {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "check": "lint, type-check and test every service (and validate Hasura metadata)",
        "lint": "run the lint and format checks",
        "typecheck": "run the type checkers",
        "test": "run the test suites",
    }
    for name, text in helps.items():
        cmd = sub.add_parser(name, help=text, description=text)
        _source(cmd)
        cmd.add_argument(
            "--service",
            action="append",
            default=[],
            metavar="NAME",
            help="only this service (repeatable); default: all",
        )
        cmd.add_argument(
            "--jobs",
            type=_positive,
            default=os.cpu_count() or 1,
            metavar="N",
            help="tasks run at once (default: number of cores)",
        )
        cmd.add_argument("--junit", type=Path, metavar="PATH", help="write a JUnit XML report here")
        cmd.add_argument(
            "--json",
            type=Path,
            metavar="PATH",
            help="write a JSON report here (with --explain's causes)",
        )
        cmd.add_argument(
            "--explain",
            action="store_true",
            help="say for each task whether its earlier result was reused, else the first input that differs",
        )
        cmd.add_argument(
            "--log-dir",
            type=Path,
            metavar="DIR",
            help="where each task's full output goes (default: SOURCE/.wormhole-ci/logs)",
        )
        cmd.add_argument(
            "--cache-dir",
            type=Path,
            metavar="DIR",
            help="pnpm store, uv cache and provisioned tools (default: ~/.cache/wormhole-ci)",
        )
        cmd.add_argument(
            "--task-timeout",
            type=float,
            default=DEFAULT_TASK_TIMEOUT,
            metavar="SECONDS",
            help=f"kill a task running longer than this (default {DEFAULT_TASK_TIMEOUT:.0f})",
        )
        cmd.add_argument(
            "--no-cache",
            action="store_true",
            help="run every task even if it passed before with identical inputs",
        )
        cmd.add_argument(
            "--progress",
            choices=("auto", "live", "plain"),
            default="auto",
            help="live table on a terminal, plain lines otherwise (default auto)",
        )
        _since(cmd)
        cmd.add_argument(
            "--pr-comment",
            type=_pull_request,
            metavar="N",
            help="write the check summary into pull request N's wormhole-ci comment (its "
            "checks section; needs --github-token); a GitHub failure is a warning only",
        )
        _github(
            cmd,
            "env:NAME or file:PATH of a token that may write PR comments (for --pr-comment; "
            "API base $GITHUB_API_URL)",
            "the repository of that pull request (default: $GITHUB_REPOSITORY)",
        )
    scan = sub.add_parser(
        "scan",
        help="SAST (Semgrep, Trivy secrets/misconfig), dependency audits and SBOMs under one policy",
        description="Scan the monorepo; unavailable or failed scanners fail the scan unless allowed.",
    )
    _source(scan)
    scan.add_argument(
        "--fail-on",
        choices=FAIL_ON_CHOICES,
        default=None,
        help="lowest severity that fails the scan (default: security.fail_on, else high)",
    )
    scan.add_argument(
        "--allow-unavailable",
        action="store_true",
        help="do not fail when a scanner could not run (it is still reported as not scanned)",
    )
    scan.add_argument(
        "--only",
        action="append",
        choices=FAMILY_CHOICES,
        default=[],
        help="only these scan families (repeatable; default: all)",
    )
    scan.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where scan.sarif, scan.md, scan.json and SBOMs go (default: SOURCE/.wormhole-ci/scan)",
    )
    scan.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="[NAME=]TARBALL",
        type=_image,
        help="also CVE-scan this image tarball with Trivy (repeatable)",
    )
    scan.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1, metavar="N")
    scan.add_argument("--cache-dir", type=Path, metavar="DIR")
    _since(scan)
    _affected_command(
        sub.add_parser(
            "affected",
            help="list the services changed since REF, plus their dependants, and why",
            description="The services changed since the merge base of REF and HEAD (committed "
            "or not), plus their dependants, each with the reasons; an unknown REF selects all.",
        )
    )
    plan = sub.add_parser("plan", help=plan_cli.PLAN_HELP, description=plan_cli.PLAN_DESCRIPTION)
    _source(plan)
    plan_cli.plan_arguments(plan)
    _image_commands(
        sub.add_parser(
            "build",
            help="build the services' images (SHA-tagged) with a local Docker engine or buildah",
            description="Build one image per service with a Dockerfile, tagged <project>-<service>:<sha7>.",
        ),
        sub.add_parser(
            "publish",
            help="build and push the images; an existing tag is never moved",
            description=(
                "Build, then push <registry>/<project>-<service>:<sha7> (and --version-tag). "
                "Every tag is resolved in the registry first: a tag holding other content is "
                "refused and nothing is pushed; a tag already holding this image is left as is."
            ),
        ),
    )
    _migrate_commands(
        sub.add_parser(
            "migrate",
            help="apply pending Prisma migrations once: locked, linted, backed up, verified",
            description=(
                "One migration job: take the project's advisory lock on the database, list the "
                "pending migrations, lint them (squawk) and block destructive changes, back the "
                "database up (pg_dump), run `prisma migrate deploy`, and check `prisma migrate "
                "status` is clean. Nothing pending: exits 0 without touching anything."
            ),
        ),
        sub.add_parser(
            "restore",
            help="restore a backup taken by migrate (pg_restore --clean) into a database",
            description="Restore a custom-format dump into the database the URL names (replaces its objects).",
        ),
    )
    _release_commands(
        sub.add_parser(
            "deploy",
            help="deploy an environment on Coolify, verify each /healthz reports the SHA, roll back on failure",
            description=(
                "Set each Coolify application's image tag to the commit's short SHA, deploy, wait "
                "for the deployments, then poll each service's health URL until it reports the "
                "SHA; on failure roll back what changed (unless --no-rollback)."
            ),
        ),
        sub.add_parser(
            "release",
            help="check, build, scan, publish, migrate, deploy and verify, stopping at the first red gate",
            description=(
                "The whole release of one commit to one environment, as an ordered state machine "
                "that stops at the first failed step; a release manifest (JSON) records every step."
            ),
        ),
    )
    _preview_command(
        sub.add_parser(
            "preview",
            help="open (or --close) a pull request's preview: images, database, Coolify preview",
            description=(
                "Publish the PR's images tagged pr-N-<sha7>, create (or reuse) the PR's database on "
                "the environment's preview PostgreSQL and migrate it, set the apps' preview "
                "database URL, deploy the PR preview on Coolify and verify each preview URL reports "
                "the SHA. A failure undoes what the run created. --close deletes the previews and "
                "drops the database."
            ),
        )
    )
    _environment_commands(
        sub.add_parser(
            "hasura-apply",
            help="apply the repository's Hasura metadata to an environment's engine",
            description=(
                "Export the live metadata (and its resource_version), replace it with the "
                "repository's (refused if someone edited it since the export), and require the "
                "engine to report it consistent; on any failure the exported metadata is "
                "re-applied. With [environments.NAME.hasura].application, the engine is first "
                "redeployed on the pinned engine image when it runs another."
            ),
        ),
        sub.add_parser(
            "drift",
            help="compare what runs in an environment with the repository (read-only)",
            description=(
                "Database: _prisma_migrations against the migration folders, and the live "
                "schema against the migrations; Hasura: the live metadata against the "
                "repository's; Coolify: each application's image tag against the release. "
                "Exit 0 no drift, 1 drift (each item with the command that fixes it), 2 error."
            ),
        ),
    )
    hasura = sub.add_parser(
        "validate-hasura",
        help="check Hasura metadata against the database schema",
        description="check Hasura metadata against the schema the migrations produce",
    )
    _source(hasura)
    hasura.add_argument(
        "--service", default=None, metavar="NAME", help="the hasura service (default: the only one)"
    )
    delivery = sub.add_parser(
        "validate-delivery",
        help="check the operations configuration: rules, alerts, dashboards, runbooks, stack",
        description=(
            "promtool and amtool on the delivery service's observability/ (config, rules, unit "
            "tests, Alertmanager, dashboard queries, the metric inventory), alert labels and "
            "runbook links both ways, and the Coolify stack's services and env examples. "
            "Exit 0 clean, 1 problems (each printed), 2 bad input or a missing tool."
        ),
    )
    _source(delivery)
    delivery.add_argument(
        "--service",
        default=None,
        metavar="NAME",
        help="the delivery service (default: the only one)",
    )
    return parser


def _image_commands(build: argparse.ArgumentParser, publish: argparse.ArgumentParser) -> None:
    for cmd in (build, publish):
        _source(cmd)
        cmd.add_argument(
            "--service",
            action="append",
            default=[],
            metavar="NAME",
            help="only this service (repeatable); default: every service with a Dockerfile",
        )
        cmd.add_argument(
            "--tag",
            metavar="SHA",
            default=None,
            help="the commit SHA to tag with (default: git HEAD of the source)",
        )
        cmd.add_argument(
            "--version-tag",
            metavar="TAG",
            default=None,
            help="an extra immutable tag such as v1.4.0",
        )
        cmd.add_argument(
            "--build-arg",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            type=_build_arg,
            help="extra build argument (repeatable), e.g. NODE_IMAGE=registry.local/node:20",
        )
        cmd.add_argument(
            "--platform",
            action="append",
            default=[],
            metavar="OS/ARCH",
            help="target platform; natively only the engine's own (multi-platform: use Dagger)",
        )
        cmd.add_argument(
            "--engine",
            choices=("auto", "docker", "buildah"),
            default="auto",
            help="image engine (default: a running Docker daemon, else buildah)",
        )
        cmd.add_argument(
            "--save-dir",
            type=Path,
            metavar="DIR",
            help="also write each image as DIR/<service>.tar (for `scan --image`)",
        )
        cmd.add_argument(
            "--output",
            type=Path,
            metavar="FILE",
            help="write the result (images, digests, references) as JSON",
        )
        cmd.add_argument(
            "--log-dir",
            type=Path,
            metavar="DIR",
            help="build logs (default: SOURCE/.wormhole-ci/logs)",
        )
        cmd.add_argument(
            "--jobs",
            type=_positive,
            default=2,
            metavar="N",
            help="images built at once (default 2)",
        )
    build.add_argument(
        "--no-cache", action="store_true", help="rebuild every layer (ignore the layer cache)"
    )
    publish.set_defaults(no_cache=False)
    publish.add_argument(
        "--registry",
        required=True,
        metavar="HOST[:PORT][/NAMESPACE]",
        help="where the images go, e.g. ghcr.io/acme or 127.0.0.1:5000",
    )
    publish.add_argument("--username", default=None, help="registry user")
    publish.add_argument(
        "--password",
        default=None,
        metavar="env:NAME|file:PATH",
        help="registry password or token, as a secret reference (never literally)",
    )
    publish.add_argument(
        "--allow-dirty",
        action="store_true",
        help="publish although the source has uncommitted changes (the tag would lie)",
    )


def _migrate_commands(migrate: argparse.ArgumentParser, restore: argparse.ArgumentParser) -> None:
    _source(migrate)
    for cmd in (migrate, restore):
        cmd.add_argument(
            "--database-url",
            required=True,
            metavar="env:NAME|file:PATH",
            help="the direct (not pooled) PostgreSQL URL, as a secret reference",
        )
    migrate.add_argument(
        "--service",
        default=None,
        metavar="NAME",
        help="whose prisma/migrations to apply (default: the only service that has them)",
    )
    migrate.add_argument(
        "--lock-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="wait at most this long for another migration job (default 600)",
    )
    migrate.add_argument(
        "--allow-destructive",
        action="store_true",
        help="apply drops, renames, type changes and NOT NULL additions (see the runbooks)",
    )
    migrate.add_argument(
        "--backup-dir",
        type=Path,
        metavar="DIR",
        help="where the pg_dump goes (default: SOURCE/.wormhole-ci/backups)",
    )
    migrate.add_argument(
        "--no-backup", action="store_true", help="skip the backup (not recommended)"
    )
    migrate.add_argument(
        "--tag",
        metavar="SHA",
        default=None,
        help="the commit being released, for the backup's name (default: git HEAD)",
    )
    migrate.add_argument(
        "--environment",
        default=None,
        metavar="NAME",
        help="the [environments.NAME] this database belongs to: the run's outcome is pushed to "
        "its Pushgateway ([observability]); it does not choose the database",
    )
    migrate.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing: show the pending migrations, each statement's gate verdict, the "
        "lock's holder and the backup a real run would take (one read-only transaction); "
        "exit 1 when a real run would stop",
    )
    migrate.add_argument("--output", type=Path, metavar="FILE", help="write the result as JSON")
    migrate.add_argument("--cache-dir", type=Path, metavar="DIR")
    restore.add_argument(
        "--backup", type=Path, required=True, metavar="FILE", help="a dump written by migrate"
    )
    restore.add_argument(
        "--yes",
        action="store_true",
        help="confirm: the database's current objects are replaced by the backup's",
    )


def _release_commands(deploy: argparse.ArgumentParser, release: argparse.ArgumentParser) -> None:
    for cmd in (deploy, release):
        _source(cmd)
        cmd.add_argument(
            "--environment",
            required=True,
            metavar="NAME",
            help="an [environments.NAME] of wormhole-ci.toml (its secrets come from the env vars it names)",
        )
        cmd.add_argument(
            "--tag", metavar="SHA", default=None, help="the commit to ship (default: git HEAD)"
        )
        cmd.add_argument(
            "--no-rollback", action="store_true", help="leave a failed deploy as it is"
        )
        cmd.add_argument(
            "--output",
            type=Path,
            metavar="FILE",
            help="the result as JSON (release default: SOURCE/.wormhole-ci/release/release.json)",
        )
        cmd.add_argument(
            "--poll-interval", type=float, default=2.0, metavar="SECONDS", help=argparse.SUPPRESS
        )
    release.add_argument(
        "--dry-run",
        action="store_true",
        help="print every step and its targets; build, push, migrate and deploy nothing",
    )
    release.add_argument(
        "--probe",
        action="store_true",
        help="with --dry-run: also check the deploy step's wiring with GET requests only "
        "(applications, image tags, running deployments, health URLs)",
    )
    deploy.add_argument(
        "--dry-run",
        action="store_true",
        help="GET requests only: check the registry, each application, its running "
        "deployments and health URL, print each tag change; exit 1 if a deploy would be refused",
    )
    release.add_argument(
        "--allow-unavailable-scanners",
        action="store_true",
        help="do not stop when a scanner could not run (recorded in the manifest)",
    )
    release.add_argument(
        "--allow-destructive", action="store_true", help="let destructive migrations apply"
    )
    release.add_argument(
        "--allow-dirty", action="store_true", help="release although the tree has changes"
    )
    release.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=_build_arg,
        help="extra image build argument (repeatable)",
    )
    release.add_argument(
        "--engine", choices=("auto", "docker", "buildah"), default="auto", help="image engine"
    )
    release.add_argument(
        "--work-dir",
        type=Path,
        metavar="DIR",
        help="tarballs, reports, backups, logs (default: SOURCE/.wormhole-ci/release)",
    )
    release.add_argument("--cache-dir", type=Path, metavar="DIR")
    release.add_argument("--jobs", type=_positive, default=2, metavar="N")
    _github(
        release,
        "env:NAME or file:PATH of a token that may write deployments: the release is "
        "reported as a GitHub Deployment (API base $GITHUB_API_URL); without it, nothing is",
        "the repository of that deployment (default: $GITHUB_REPOSITORY)",
    )


def _github(cmd: argparse.ArgumentParser, token_help: str, repository_help: str) -> None:
    """--github-token (a secret reference) and --github-repository, as every command names them."""
    cmd.add_argument("--github-token", metavar="REF", help=token_help)
    cmd.add_argument("--github-repository", metavar="OWNER/NAME", default="", help=repository_help)


def _preview_command(cmd: argparse.ArgumentParser) -> None:
    _source(cmd)
    cmd.add_argument(
        "--environment",
        required=True,
        metavar="NAME",
        help="an [environments.NAME] with a [environments.NAME.preview] table",
    )
    cmd.add_argument(
        "--pr", required=True, type=_pull_request, metavar="N", help="the pull request number"
    )
    cmd.add_argument(
        "--tag", metavar="SHA", default=None, help="the PR's head commit (default: git HEAD)"
    )
    cmd.add_argument(
        "--close", action="store_true", help="delete the PR's previews and drop its database"
    )
    cmd.add_argument("--output", type=Path, metavar="FILE", help="the result as JSON")
    cmd.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=_build_arg,
        help="extra image build argument (repeatable)",
    )
    cmd.add_argument(
        "--engine", choices=("auto", "docker", "buildah"), default="auto", help="image engine"
    )
    cmd.add_argument("--work-dir", type=Path, metavar="DIR")
    cmd.add_argument("--cache-dir", type=Path, metavar="DIR")
    cmd.add_argument(
        "--poll-interval", type=float, default=2.0, metavar="SECONDS", help=argparse.SUPPRESS
    )
    _github(
        cmd,
        "env:NAME or file:PATH of a token that may write deployments and PR comments: the "
        "preview is reported as a GitHub Deployment (environment NAME-pr-N) and in the PR's "
        "wormhole-ci comment; without it, nothing is",
        "the repository of the pull request (default: $GITHUB_REPOSITORY)",
    )


def _environment_commands(
    hasura_apply: argparse.ArgumentParser, drift: argparse.ArgumentParser
) -> None:
    for cmd in (hasura_apply, drift):
        _source(cmd)
        cmd.add_argument(
            "--environment",
            required=True,
            metavar="NAME",
            help="an [environments.NAME] of wormhole-ci.toml (its secrets come from the env vars it names)",
        )
    hasura_apply.add_argument(
        "--dry-run",
        action="store_true",
        help="read the live metadata and list what would change; write nothing",
    )
    hasura_apply.add_argument(
        "--output", type=Path, metavar="FILE", help="the result as JSON (hasura.json)"
    )
    drift.add_argument(
        "--only",
        action="append",
        default=[],
        choices=("database", "hasura", "coolify"),
        help="read only this area (repeatable); nothing else is contacted",
    )
    drift.add_argument(
        "--expect-sha",
        metavar="SHA",
        default=None,
        help="the commit the environment should run (default: the tag most applications run)",
    )
    drift.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="drift.json here, drift.md beside it (default: SOURCE/.wormhole-ci/drift/drift.json)",
    )
    drift.add_argument("--cache-dir", type=Path, metavar="DIR")


def _since(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--since",
        metavar="REF",
        default=None,
        help="only the services affected since the merge base of REF and HEAD (an unknown "
        "REF, e.g. in a shallow clone, selects every service, with a note)",
    )


def _affected_command(affected: argparse.ArgumentParser) -> None:
    _source(affected)
    affected.add_argument("--since", required=True, metavar="REF", help="a commit, branch or tag")
    affected.add_argument(
        "--json", action="store_true", help='print {"services", "reasons", "base", "notes"}'
    )


def _build_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return (name, value)


def host_platform() -> str:
    machine = platform_module.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return f"linux/{arch}"


def _source(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--source",
        type=Path,
        default=Path(),
        metavar="DIR",
        help="monorepo root holding wormhole-ci.toml (default: .)",
    )


def _image(text: str) -> tuple[str, Path]:
    name, _, path = text.rpartition("=")
    tarball = Path(path)
    if not tarball.is_file():
        raise argparse.ArgumentTypeError(
            f"{tarball}: no such image tarball (docker save -o FILE IMAGE)"
        )
    return (name or tarball.stem, tarball)


def _pull_request(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a pull request number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a pull request number is at least 1")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
