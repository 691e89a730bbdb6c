"""The native command line: the same function names the Dagger module exposes."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wormhole_ci import __version__
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.hasura.check import validate_hasura
from wormhole_ci.junit import write_junit
from wormhole_ci.local import DEFAULT_TASK_TIMEOUT, LocalOptions, LocalRuntime, Reporter
from wormhole_ci.manifest import load_manifest
from wormhole_ci.plan import Plan, build_plan
from wormhole_ci.progress import LiveReporter, PlainReporter, print_report
from wormhole_ci.results import RunReport, summary
from wormhole_ci.security.model import Status
from wormhole_ci.security.policy import FailOn, effective_severity
from wormhole_ci.security.scan import ScanOptions, run_scan
from wormhole_ci.security.tasks import Family
from wormhole_ci.security.writers.markdown import where
from wormhole_ci.toolchains import HostTools, Provisioner, default_cache_dir, host_fingerprint

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
    parser = _parser()
    args = parser.parse_args(argv)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        if args.command == "validate-hasura":
            return _validate_hasura(args, err)
        if args.command == "scan":
            return _scan(args, err)
        return _check(args, err)
    except WormholeCiError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


def _parser() -> argparse.ArgumentParser:
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
    scan = sub.add_parser(
        "scan",
        help="SAST (Semgrep, Trivy secrets/misconfig), dependency audits and SBOMs under one policy",
        description="Scan the monorepo; unavailable or failed scanners fail the scan unless allowed.",
    )
    _source(scan)
    scan.add_argument(
        "--fail-on",
        choices=[f.value for f in FailOn],
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
        choices=[f.value for f in Family],
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
    hasura = sub.add_parser(
        "validate-hasura",
        help="check Hasura metadata against the database schema",
        description="check Hasura metadata against the schema the migrations produce",
    )
    _source(hasura)
    hasura.add_argument(
        "--service", default=None, metavar="NAME", help="the hasura service (default: the only one)"
    )
    return parser


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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _check(args: argparse.Namespace, err: Console) -> int:
    manifest = load_manifest(args.source)
    plan = build_plan(manifest, services=args.service, families=_CHECKS[args.command])
    if not plan.services:
        raise WormholeCiError(f"{args.command}: nothing to run for the selected services")
    out = Console(highlight=False, soft_wrap=True)
    for note in plan.notes:
        err.print(f"note: {note}", markup=False)
    cache_dir: Path = (args.cache_dir or default_cache_dir()).resolve()
    provisioner = Provisioner(cache_dir)
    needs: dict[str, list[str]] = {}
    for task in plan.tasks:
        needs.setdefault(task.tool.value, []).append(task.service)
    tools = provisioner.provision(((t.tool.value, t.tool_version) for t in plan.tasks), needs)
    for message in provisioner.messages:
        err.print(message, markup=False)
    options = LocalOptions(
        source=manifest.root,
        log_dir=(args.log_dir or manifest.root / ".wormhole-ci" / "logs").resolve(),
        cache_dir=cache_dir,
        jobs=args.jobs,
        task_timeout=args.task_timeout,
        reuse=not args.no_cache,
        toolchain=host_fingerprint(),
    )
    report = _run(plan, options, tools, out, args.progress)
    print_report(out, report, args.command)
    if args.junit:
        write_junit(report, args.junit)
    if not report.ok:
        err.print(summary(report, args.command), markup=False)
        return EXIT_FAILED
    return 0


def _run(
    plan: Plan, options: LocalOptions, tools: HostTools, out: Console, progress: str
) -> RunReport:
    live = progress == "live" or (progress == "auto" and out.is_terminal)
    if live:
        with LiveReporter(out, plan) as reporter:
            return anyio.run(LocalRuntime(options, tools, reporter).run, plan)
    plain: Reporter = PlainReporter(sys.stdout)
    return anyio.run(LocalRuntime(options, tools, plain).run, plan)


def _scan(args: argparse.Namespace, err: Console) -> int:
    manifest = load_manifest(args.source)
    options = ScanOptions(
        fail_on=FailOn(args.fail_on or manifest.security.fail_on),
        allow_unavailable=args.allow_unavailable,
        output_dir=(args.output_dir or manifest.root / ".wormhole-ci" / "scan").resolve(),
        families=frozenset(Family(f) for f in args.only) or frozenset(Family),
        jobs=args.jobs,
        cache_dir=(args.cache_dir or default_cache_dir()).resolve(),
        today=dt.date.today(),
        images=tuple(args.image),
    )
    result = run_scan(manifest, options)
    verdict = result.verdict
    out = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"wormhole-ci scan (fail on {verdict.fail_on})")
    for column in ("scanner", "version", "target", "outcome", "findings", "blocking"):
        table.add_column(column)
    for o in verdict.outcomes:
        blocking = sum(1 for f in verdict.blocking if f in o.findings)
        detail = (
            o.reason if o.status in (Status.UNAVAILABLE, Status.ERROR) else str(len(o.findings))
        )
        table.add_row(
            o.tool, o.tool_version or "?", o.target, str(o.status), escape(detail), str(blocking)
        )
    out.print(table)
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
        err.print("scan failed: " + "; ".join(verdict.reasons()), markup=False)
        return EXIT_FAILED
    out.print("scan passed", markup=False)
    return 0


def _validate_hasura(args: argparse.Namespace, err: Console) -> int:
    manifest = load_manifest(args.source)
    service = args.service
    if service is None:
        kinds = [s.name for s in manifest.services if s.kind == "hasura"]
        if len(kinds) != 1:
            raise WormholeCiError(
                f"validate-hasura: {len(kinds)} hasura services in the manifest; pass --service NAME"
            )
        service = kinds[0]
    report = validate_hasura(manifest, service)
    print(
        f"hasura metadata of {service!r}: {len(report.tables)} tables consistent with the {report.origin}"
    )
    for table in report.tables:
        print(f"  {table}")
    return 0
