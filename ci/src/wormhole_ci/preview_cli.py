"""`wormhole-ci preview`: its arguments and its handler (the core is wormhole_ci.preview)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wormhole_ci.errors import WormholeCiError

if TYPE_CHECKING:
    from rich.console import Console


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:  # pyright: ignore[reportPrivateUsage]
    cmd: argparse.ArgumentParser = sub.add_parser(
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
    cmd.add_argument(
        "--source",
        type=Path,
        default=Path(),
        metavar="DIR",
        help="monorepo root holding wormhole-ci.toml (default: .)",
    )
    cmd.add_argument(
        "--environment",
        required=True,
        metavar="NAME",
        help="an [environments.NAME] with a [environments.NAME.preview] table",
    )
    cmd.add_argument("--pr", required=True, type=_pr, metavar="N", help="the pull request number")
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


def preview(args: argparse.Namespace, err: Console) -> int:
    from wormhole_ci.images.engine import detect_engine
    from wormhole_ci.images.gitinfo import revision
    from wormhole_ci.manifest import load_manifest
    from wormhole_ci.preview.flow import PreviewFailed, PreviewRecord, preview_of
    from wormhole_ci.preview.native import (
        NativePreviewOptions,
        NativePreviewSteps,
        preview_secrets,
        run_native_preview,
    )
    from wormhole_ci.secretref import redact
    from wormhole_ci.toolchains import default_cache_dir

    manifest = load_manifest(args.source)
    env = manifest.environment(args.environment)
    preview_of(env)  # a missing [preview] table fails before anything else
    rev = revision(manifest.root, args.tag)
    secrets = preview_secrets(env, close=args.close)
    work = (args.work_dir or manifest.root / ".wormhole-ci" / "preview").resolve()

    def say(line: str) -> None:
        err.print(line, markup=False)

    steps = None
    if not args.close:
        steps = NativePreviewSteps(
            manifest,
            env,
            detect_engine(args.engine),
            secrets,
            options=NativePreviewOptions(
                revision=rev,
                work_dir=work,
                cache_dir=(args.cache_dir or default_cache_dir()).resolve(),
                build_args=tuple(args.build_arg),
            ),
            say=say,
        )

    def write(record: PreviewRecord) -> None:
        if args.output:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(record.to_dict(), indent=2)
            args.output.write_text(redact(text, *secrets.values()) + "\n", encoding="utf-8")

    try:
        record = run_native_preview(
            manifest,
            env,
            secrets,
            pr=args.pr,
            sha=rev.sha,
            close=args.close,
            say=say,
            steps=steps,
            poll_interval=args.poll_interval,
        )
    except PreviewFailed as exc:
        write(exc.record)
        message = redact(str(exc), *secrets.values())
        from rich.markup import escape

        err.print(f"[bold red]preview failed:[/] {escape(message)}")
        return 1
    except WormholeCiError as exc:
        raise WormholeCiError(redact(str(exc), *secrets.values())) from None
    write(record)
    if args.close:
        print(f"closed the preview of PR {args.pr}: database {record.database} dropped")
    else:
        print(
            f"preview of PR {args.pr} at {rev.short}: "
            + ", ".join(f"{s.service} {s.url}" for s in record.services)
        )
    return 0


def _pr(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a pull request number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a pull request number is at least 1")
    return value


def _build_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return (name, value)
