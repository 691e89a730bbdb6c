"""`wormhole-ci preview`: its arguments and its handler (the core is wormhole_ci.preview)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from wormhole_ci import terminal
from wormhole_ci.errors import WormholeCiError

if TYPE_CHECKING:
    from rich.console import Console


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
    if args.github_token:
        import dataclasses

        from wormhole_ci.secretref import resolve_secret

        token = resolve_secret(args.github_token, "--github-token")
        secrets = dataclasses.replace(secrets, github_token=token)
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
            github_repository=args.github_repository,
        )
    except PreviewFailed as exc:
        write(exc.record)
        message = redact(str(exc), *secrets.values())

        err.print(f"[bold red]preview failed:[/] {terminal.escape(message)}")
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
