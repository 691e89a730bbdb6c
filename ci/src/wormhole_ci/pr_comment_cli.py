"""`check --pr-comment N`: the check summary into the PR's wormhole-ci comment (its checks
section); the CLI side of notify/status.py's `post_check_summary`."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from wormhole_ci.errors import ImageError, WormholeCiError

if TYPE_CHECKING:
    from rich.console import Console

    from wormhole_ci.results import RunReport


def write_check_summary(
    args: argparse.Namespace, root: Path, report: RunReport, err: Console
) -> None:
    """The checks section of PR --pr-comment's comment; every problem (a bad reference, no
    repository, GitHub failing) is one warning: the check's exit code never depends on it."""
    from wormhole_ci.images.gitinfo import revision
    from wormhole_ci.notify.github import github_target
    from wormhole_ci.notify.status import post_check_summary
    from wormhole_ci.secretref import redact, resolve_secret

    def warn(line: str) -> None:
        err.print(line, markup=False)

    if not args.github_token:
        warn(f"warning: --pr-comment {args.pr_comment} without --github-token: not written")
        return
    try:
        token = resolve_secret(args.github_token, "--github-token")
        target = github_target(token, args.github_repository, os.environ)
    except WormholeCiError as exc:
        warn(f"warning: {exc}; the pull request's comment was not updated")
        return
    if target is None:
        warn(
            "warning: --pr-comment: no repository (--github-repository or $GITHUB_REPOSITORY): "
            "not written"
        )
        return
    sha = ""
    with contextlib.suppress(ImageError):  # no git: the comment names no commit
        sha = revision(root).sha
    post_check_summary(
        target,
        args.pr_comment,
        sha=sha,
        command=args.command,
        report=report,
        warn=lambda line: warn(redact(line, token)),
    )
