"""The native command line: the same function names the Dagger module exposes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
from rich.console import Console
from rich.markup import escape

from wormhole_ci import __version__
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.hasura.check import validate_hasura
from wormhole_ci.junit import write_junit
from wormhole_ci.local import DEFAULT_TASK_TIMEOUT, LocalOptions, LocalRuntime, Reporter
from wormhole_ci.manifest import load_manifest
from wormhole_ci.plan import Plan, build_plan
from wormhole_ci.progress import LiveReporter, PlainReporter, print_report
from wormhole_ci.results import RunReport, summary
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
