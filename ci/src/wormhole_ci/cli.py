"""The native command line: the same function names the Dagger module exposes."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from wormhole_ci import (
    affected_cli,
    arguments,
    environment_cli,
    plan_cli,
    pr_comment_cli,
    preview_cli,
    terminal,
    validate_cli,
)
from wormhole_ci.errors import ImageError, WormholeCiError

if TYPE_CHECKING:
    from rich.console import Console

    from wormhole_ci.check.native import NativeOptions
    from wormhole_ci.migrate.dburl import DatabaseUrl
    from wormhole_ci.migrate.job import MigrateOptions
    from wormhole_ci.plan import Plan
    from wormhole_ci.results import RunReport

# Each command imports what it runs when it runs (httpx, psycopg, rich tables, the release
# machinery…): importing everything up front cost every invocation a second of start-up.

EXIT_FAILED = 1
EXIT_USAGE = 2

# Check commands and the task families they select (None: every task).
_CHECKS: dict[str, tuple[str, ...]] = {
    "check": (),
    "lint": ("lint",),
    "typecheck": ("typecheck",),
    "test": ("test",),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = arguments.parser()
    args = parser.parse_args(argv)
    # --pr-comment takes the normal path: even "nothing affected" is written to the PR
    if args.command in _CHECKS and args.since is not None and not args.pr_comment:
        quick = affected_cli.nothing_to_check(args, _CHECKS[args.command])
        if quick is not None:
            return quick
    err = terminal.console(stderr=True)
    handlers: dict[str, Callable[[argparse.Namespace, Console], int]] = {
        "validate-hasura": validate_cli.validate_hasura,
        "validate-delivery": validate_cli.validate_delivery,
        "scan": _scan,
        "build": _images,
        "publish": _images,
        "migrate": _migrate,
        "restore": _restore,
        "deploy": _deploy,
        "release": _release,
        "hasura-apply": environment_cli.hasura_apply,
        "drift": environment_cli.drift,
        "affected": affected_cli.affected_command,
        "preview": preview_cli.preview,
        "plan": plan_cli.plan_command,
    }
    try:
        return handlers.get(args.command, _check)(args, err)
    except WormholeCiError as exc:
        err.print(f"[bold red]error:[/] {terminal.escape(str(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


def _migrate(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci.images.gitinfo import revision
    from wormhole_ci.images.spec import check_sha
    from wormhole_ci.manifest import load_manifest
    from wormhole_ci.migrate.dburl import DatabaseUrl
    from wormhole_ci.migrate.job import MigrateFailed, database_service, run_migrate
    from wormhole_ci.migrate.native import prepare_migrate
    from wormhole_ci.observability.push import (
        environment_pushgateway,
        migrate_signal,
        push_signals,
    )
    from wormhole_ci.secretref import redact, resolve_secret
    from wormhole_ci.toolchains import default_cache_dir

    manifest = load_manifest(args.source)
    spec = database_service(manifest, args.service)
    # Only a migrate told its environment pushes metrics: a bare URL names no environment.
    env = manifest.environment(args.environment) if args.environment else None
    url = DatabaseUrl.parse(resolve_secret(args.database_url, "--database-url").reveal())
    if args.no_backup and args.backup_dir:
        raise WormholeCiError("migrate: --no-backup and --backup-dir contradict each other")
    sha = check_sha(args.tag) if args.tag else None
    if sha is None:
        with contextlib.suppress(ImageError):  # no git: the backup is named without a SHA
            sha = revision(manifest.root).sha
    backup_dir = None
    if not args.no_backup:
        backup_dir = (args.backup_dir or manifest.root / ".wormhole-ci" / "backups").resolve()
    options = prepare_migrate(
        manifest,
        spec,
        (args.cache_dir or default_cache_dir()).resolve(),
        lambda line: err.print(line, markup=False),
        lock_timeout=args.lock_timeout,
        allow_destructive=args.allow_destructive,
        backup_dir=backup_dir,
        sha=sha,
        dry_run=args.dry_run,
    )
    err.print(f"migrate {spec.name} on {url.display}", markup=False)

    def say(line: str) -> None:
        err.print(redact(line, *url.secrets), markup=False)

    if args.dry_run:  # reads only; pushes no metrics (nothing ran)
        return _migrate_dry_run(url, options, args.output, say, err)

    gateway = environment_pushgateway(env, os.environ, say) if env else None
    started = time.monotonic()

    def pushed(outcome: str) -> None:  # best-effort: a warning at most
        if env is not None:
            signal = migrate_signal(env.name, outcome, sha or "", time.monotonic() - started)
            push_signals(gateway, [signal], say)

    try:
        result = run_migrate(url, options, say)
    except MigrateFailed as exc:
        _write_result(args.output, exc.result.to_json(), err)
        pushed(exc.result.outcome)
        err.print(
            f"[bold red]migrate {exc.result.outcome}:[/] {terminal.escape(redact(str(exc), *url.secrets))}"
        )
        return EXIT_FAILED
    _write_result(args.output, result.to_json(), err)
    pushed(result.outcome)
    if result.outcome == "up-to-date":
        print(f"{url.display}: nothing to migrate ({len(result.pending)} pending)")
    else:
        print(f"{url.display}: applied {', '.join(result.applied)}")
        if result.backup:
            print(f"backup: {result.backup}")
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    return 0


def _migrate_dry_run(
    url: DatabaseUrl,
    options: MigrateOptions,
    output: Path | None,
    say: Callable[[str], None],
    err: Console,
) -> int:
    """Exit 0 when a real run would proceed (or find nothing to do), 1 when it would stop."""
    from wormhole_ci.migrate.job import MigrateFailed, dry_run_lines, dry_run_migrate
    from wormhole_ci.secretref import redact

    try:
        result = dry_run_migrate(url, options, say)
    except MigrateFailed as exc:
        _write_result(output, exc.result.to_json(), err)
        err.print(
            "[bold red]migrate dry run failed:[/] "
            + terminal.escape(redact(str(exc), *url.secrets))
        )
        return EXIT_FAILED
    _write_result(output, result.to_json(), err)
    for line in dry_run_lines(result):
        print(redact(line, *url.secrets))
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    return EXIT_FAILED if result.outcome in ("would-block", "would-fail") else 0


def _restore(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci.migrate.backup import restore
    from wormhole_ci.migrate.dburl import DatabaseUrl
    from wormhole_ci.secretref import resolve_secret

    url = DatabaseUrl.parse(resolve_secret(args.database_url, "--database-url").reveal())
    if not args.yes:
        raise WormholeCiError(
            f"restore replaces the objects of {url.display} with those in {args.backup}; "
            "pass --yes to confirm"
        )
    restored = restore(url, args.backup)
    print(f"{url.display}: restored from {args.backup} in {restored.seconds:.1f} s")
    return 0


def _write_result(path: Path | None, text: str, err: Console) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    err.print(f"wrote {path}", markup=False)


def _deploy(args: argparse.Namespace, err: Console) -> int:
    if args.dry_run:
        from wormhole_ci.dryrun_cli import deploy_dry_run

        return deploy_dry_run(args, err)
    from wormhole_ci.deploy.coolify import Coolify
    from wormhole_ci.deploy.published import check_published
    from wormhole_ci.deploy.rollout import (
        DeployFailed,
        DeployOptions,
        DeployResult,
        deploy_environment,
    )
    from wormhole_ci.images.gitinfo import revision
    from wormhole_ci.images.spec import image_specs
    from wormhole_ci.manifest import load_manifest
    from wormhole_ci.observability.push import deploy_signal, environment_pushgateway, push_signals
    from wormhole_ci.secretref import redact, resolve_secret

    manifest = load_manifest(args.source)
    env = manifest.environment(args.environment)
    token_var = env.secrets["coolify_token"]
    token = resolve_secret(f"env:{token_var}", f"environments.{env.name}.secrets.coolify_token")
    rev = revision(manifest.root, args.tag)
    # Also the rollback path (an earlier SHA): only images the registry holds are deployed.
    password_var = env.secrets.get("registry_password")
    password = os.environ.get(password_var) if password_var else None
    check_published(
        env, image_specs(manifest), rev, username=env.registry_username, password=password
    )
    options = DeployOptions.for_environment(
        env,
        sha=rev.sha,
        image_tag=rev.short,
        rollback=not args.no_rollback,
        poll_interval=args.poll_interval,
    )

    def say(line: str) -> None:
        err.print(redact(line, token), markup=False)

    gateway = environment_pushgateway(env, os.environ, say)

    def pushed(result: DeployResult) -> None:  # best-effort: a warning at most
        signal = deploy_signal(env.name, result.outcome, rev.short, result.seconds)
        push_signals(gateway, [signal], say)

    coolify = Coolify(env.coolify_url, token.reveal(), poll_interval=args.poll_interval)
    try:
        result = deploy_environment(env, coolify, options, say)
    except DeployFailed as exc:
        # The details first; the last line is the outcome result.json and the exit code carry.
        _write_result(args.output, exc.result.to_json(), err)
        pushed(exc.result)
        # (result.json also carries the outcome's `reason`; the lines above already say it)
        err.print(redact(str(exc), token), markup=False)
        err.print(f"[bold red]deploy {exc.result.outcome}:[/] {env.name} {rev.short}")
        return EXIT_FAILED
    _write_result(args.output, result.to_json(), err)
    pushed(result)
    services = ", ".join(s.service for s in result.services)
    print(f"deploy {result.outcome}: {env.name}: {rev.short} deployed and verified ({services})")
    return 0


def _release(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci.images.engine import detect_engine
    from wormhole_ci.images.gitinfo import revision
    from wormhole_ci.manifest import load_manifest
    from wormhole_ci.release.native import (
        ReleaseOptions,
        dry_run,
        environment_secrets,
        run_native_release,
    )
    from wormhole_ci.release.record import ReleaseOutcome
    from wormhole_ci.toolchains import default_cache_dir

    if args.probe and not args.dry_run:
        raise WormholeCiError("release: --probe goes with --dry-run (a release deploys anyway)")
    manifest = load_manifest(args.source)
    env = manifest.environment(args.environment)
    rev = revision(manifest.root, args.tag)
    if rev.dirty and not args.allow_dirty and not args.dry_run:
        raise WormholeCiError(
            f"{manifest.root} has uncommitted changes: a release of {rev.short} would not be "
            "that commit. Commit them, or pass --allow-dirty"
        )
    work = (args.work_dir or manifest.root / ".wormhole-ci" / "release").resolve()
    output = (args.output or work / "release.json").resolve()
    if args.dry_run:
        try:
            secrets = environment_secrets(env)
        except WormholeCiError:
            secrets = None  # a dry run shows what it can without them
        for line in dry_run(manifest, env, rev, secrets, probe=args.probe):
            print(line)
        if args.probe:  # the deploy step's read-only checks: GET requests only
            from wormhole_ci.dryrun_cli import release_probe

            return release_probe(env, rev, err)
        return 0
    secrets = environment_secrets(env)
    if args.github_token:
        from wormhole_ci.secretref import resolve_secret

        token = resolve_secret(args.github_token, "--github-token")
        secrets = dataclasses.replace(secrets, github_token=token)
    engine = detect_engine(args.engine)
    options = ReleaseOptions(
        revision=rev,
        output=output,
        work_dir=work,
        cache_dir=(args.cache_dir or default_cache_dir()).resolve(),
        jobs=args.jobs,
        build_args=tuple(args.build_arg),
        allow_unavailable_scanners=args.allow_unavailable_scanners,
        allow_destructive=args.allow_destructive,
        rollback=not args.no_rollback,
        poll_interval=args.poll_interval,
        github_repository=args.github_repository,
    )

    def say(line: str) -> None:
        err.print(line, markup=False)

    record = run_native_release(manifest, env, engine, secrets, options=options, say=say)
    err.print(f"wrote {output}", markup=False)
    if record.outcome is ReleaseOutcome.REFUSED:
        err.print(f"[bold red]release refused:[/] {terminal.escape(record.refused or '')}")
        return EXIT_FAILED
    if record.outcome is not ReleaseOutcome.RELEASED:
        stopped = record.step(record.stopped_at or "")
        err.print(
            f"[bold red]release stopped at {stopped.name}:[/] {terminal.escape(stopped.detail)}"
        )
        return EXIT_FAILED
    print(
        f"released {rev.short} to {env.name}: "
        + ", ".join(i.reference or i.name for i in record.images)
    )
    return 0


def _images(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci.images.engine import detect_engine
    from wormhole_ci.images.gitinfo import revision
    from wormhole_ci.images.native import (
        BuildOptions,
        PublishResult,
        Target,
        build_images,
        publish_images,
    )
    from wormhole_ci.images.spec import (
        check_platforms,
        check_registry,
        check_version_tag,
        image_specs,
    )
    from wormhole_ci.manifest import load_manifest
    from wormhole_ci.secretref import resolve_secret

    manifest = load_manifest(args.source)
    specs = image_specs(manifest, args.service)
    publishing = args.command == "publish"
    registry = check_registry(args.registry) if publishing else None
    version_tag = check_version_tag(args.version_tag) if args.version_tag else None
    password = resolve_secret(args.password, "--password") if publishing and args.password else None
    if publishing and bool(args.username) != bool(password):
        raise WormholeCiError("publish: pass both --username and --password, or neither")
    rev = revision(manifest.root, args.tag)
    if rev.dirty and publishing and not args.allow_dirty:
        raise WormholeCiError(
            f"{manifest.root} has uncommitted changes: an image tagged {rev.short} would not be "
            "that commit. Commit (or stash) them, or pass --allow-dirty"
        )
    engine = detect_engine(args.engine)
    platforms = check_platforms(args.platform)
    for platform in platforms:
        if platform != arguments.host_platform():
            raise WormholeCiError(
                f"--platform {platform}: a native build makes only {arguments.host_platform()} images; "
                "build other platforms with Dagger (`dagger call publish --platforms=...`)"
            )
    err.print(
        f"{args.command}: {len(specs)} image(s) at {rev.short}"
        f"{' (dirty tree)' if rev.dirty else ''} with {engine.describe()}",
        markup=False,
    )
    options = BuildOptions(
        revision=rev,
        version_tag=version_tag,
        extra_args=tuple(args.build_arg),
        log_dir=(args.log_dir or manifest.root / ".wormhole-ci" / "logs").resolve(),
        save_dir=args.save_dir.resolve() if args.save_dir else None,
        jobs=args.jobs,
        no_cache=args.no_cache,
    )

    def say(line: str) -> None:
        err.print(line, markup=False)

    if registry is not None:
        target = Target(registry, args.username, password)
        result = publish_images(manifest, specs, engine, options, target=target, say=say)
        for item in result.published:
            print(item.reference)
    else:
        result = PublishResult(
            revision=rev.sha, images=build_images(manifest, specs, engine, options, say)
        )
        for image in result.images:
            print(f"{image.service}\t{image.name}\t{image.config_digest}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(result.to_json() + "\n", encoding="utf-8")
        err.print(f"wrote {args.output}", markup=False)
    return 0


def _check(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci.manifest import load_manifest
    from wormhole_ci.plan import build_plan

    manifest = load_manifest(args.source)
    if args.since is not None:  # --since: only the affected services (affected.py)
        plan = affected_cli.since_plan(manifest, args, _CHECKS[args.command])
        if not plan.services:  # answered before the runtime is even imported
            if args.pr_comment:
                from wormhole_ci.results import RunReport

                pr_comment_cli.write_check_summary(args, manifest.root, RunReport(results=()), err)
            return affected_cli.nothing_affected(args.command, plan.notes, args.junit)
    else:
        plan = build_plan(manifest, services=args.service, families=_CHECKS[args.command])

    from wormhole_ci.check.explain import explain_lines
    from wormhole_ci.check.junit import write_junit
    from wormhole_ci.check.native import NativeOptions
    from wormhole_ci.check.progress import print_report
    from wormhole_ci.check.report import write_report_json
    from wormhole_ci.results import summary
    from wormhole_ci.toolchains import default_cache_dir, host_fingerprint

    if not plan.services:
        raise WormholeCiError(f"{args.command}: nothing to run for the selected services")
    out = terminal.console()
    for note in plan.notes:
        err.print(f"note: {note}", markup=False)
    options = NativeOptions(
        source=manifest.root,
        log_dir=(args.log_dir or manifest.root / ".wormhole-ci" / "logs").resolve(),
        cache_dir=(args.cache_dir or default_cache_dir()).resolve(),
        jobs=args.jobs,
        task_timeout=args.task_timeout,
        reuse=not args.no_cache,
        toolchain=host_fingerprint(),
    )
    report = _run(plan, options, out, args.progress, err)
    if args.explain:
        for line in explain_lines(report):
            out.print(line, markup=False, highlight=False)
    print_report(out, report, args.command, plan.notes)
    if args.junit:
        write_junit(report, args.junit, plan.notes)
    if args.json:
        write_report_json(report, args.json, args.command, plan.notes)
    if args.pr_comment:
        pr_comment_cli.write_check_summary(args, manifest.root, report, err)
    if not report.ok:
        err.print(summary(report, args.command), markup=False)
        return EXIT_FAILED
    return 0


def _run(
    plan: Plan, options: NativeOptions, out: Console, progress: str, err: Console
) -> RunReport:
    from wormhole_ci.check.native import run_plan
    from wormhole_ci.check.progress import LiveReporter, PlainReporter

    def say(message: str) -> None:
        err.print(message, markup=False)

    live = progress == "live" or (progress == "auto" and out.is_terminal)
    if live:
        # provisioning messages go to stderr, which the live display prints above itself
        with LiveReporter(out, plan) as reporter:
            return run_plan(plan, options, reporter, say)
    return run_plan(plan, options, PlainReporter(sys.stdout), say)


def _scan(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci.manifest import load_manifest
    from wormhole_ci.security.policy import effective_severity
    from wormhole_ci.security.scan import ScanOptions, run_scan
    from wormhole_ci.security.table import scan_table
    from wormhole_ci.security.tasks import Family
    from wormhole_ci.security.wrapup import fail_on_level, failure
    from wormhole_ci.security.writers.markdown import where
    from wormhole_ci.toolchains import default_cache_dir

    manifest = load_manifest(args.source)
    options = ScanOptions(
        fail_on=fail_on_level(args.fail_on, manifest),
        allow_unavailable=args.allow_unavailable,
        output_dir=(args.output_dir or manifest.root / ".wormhole-ci" / "scan").resolve(),
        families=frozenset(Family(f) for f in args.only) or frozenset(Family),
        jobs=args.jobs,
        cache_dir=(args.cache_dir or default_cache_dir()).resolve(),
        today=dt.date.today(),
        images=tuple(args.image),
        changes=affected_cli.since_changes(manifest, args.since, err),
    )
    result = run_scan(manifest, options)
    verdict = result.verdict
    out = terminal.console()
    out.print(scan_table(verdict, out.width))
    for finding in sorted(verdict.blocking, key=lambda f: (-effective_severity(f), f.tool)):
        out.print(
            f"{finding.severity.label:<8} {finding.tool} {finding.rule_id} {where(finding)}: {finding.title}",
            markup=False,
        )
    for entry in verdict.expired:
        err.print(f"expired waiver (no longer applied): {entry.label}", markup=False)
    for path in (*result.reports, *result.artifacts):
        err.print(f"wrote {path}", markup=False)
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with Path(summary_path).open("a", encoding="utf-8") as handle:
            handle.write((result.reports[1]).read_text(encoding="utf-8"))
    if not verdict.passed:
        err.print(failure(verdict), markup=False)
        return EXIT_FAILED
    out.print("scan passed", markup=False)
    return 0
