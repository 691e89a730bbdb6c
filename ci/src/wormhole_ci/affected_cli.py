"""`wormhole-ci affected` and the `--since` option of the check and scan commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from wormhole_ci.affected import Changes
    from wormhole_ci.manifest import Manifest
    from wormhole_ci.plan import Plan

# Imports happen in the functions, as in cli.py: every other command's start-up stays fast.


def affected_command(args: argparse.Namespace, err: Console) -> int:
    """Print the affected services (one a line with the reasons, or the JSON document)."""
    from wormhole_ci.affected import affected, git_changes
    from wormhole_ci.manifest import load_manifest

    manifest = load_manifest(args.source)
    chosen = affected(manifest, git_changes(manifest.root, args.since))
    if args.json:
        print(chosen.to_json())
        return 0
    for note in chosen.notes:
        err.print(f"note: {note}", markup=False)
    for name in chosen.services:
        print(f"{name}\t{'; '.join(chosen.reasons[name])}")
    return 0


def since_plan(manifest: Manifest, args: argparse.Namespace, families: Sequence[str]) -> Plan:
    """The check plan limited to what changed since `--since`."""
    from wormhole_ci.affected import affected_plan, git_changes

    return affected_plan(manifest, git_changes(manifest.root, args.since), args.service, families)


def nothing_to_check(args: argparse.Namespace, families: Sequence[str]) -> int | None:
    """A `--since` check that selects no service, answered before rich or the check runtime
    is imported (a no-op pull request costs start-up only); None when there is something to
    run or an error to report, both of which the normal path does."""
    from wormhole_ci.errors import WormholeCiError
    from wormhole_ci.manifest import load_manifest

    try:
        plan = since_plan(load_manifest(args.source), args, families)
    except WormholeCiError:
        return None
    if plan.services:
        return None
    return nothing_affected(args.command, plan.notes, args.junit)


def nothing_affected(command: str, notes: Sequence[str], junit: Path | None = None) -> int:
    """A `--since` run that selected no service: it passes, saying why (and an empty JUnit
    report when one was asked for, so a CI step uploading it finds it)."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if junit is not None:
        from wormhole_ci.check.junit import write_junit
        from wormhole_ci.results import RunReport

        write_junit(RunReport(results=()), junit, notes)
    print(f"{command}: nothing to run (no service is affected)")
    return 0


def since_changes(manifest: Manifest, since: str | None, err: Console) -> Changes | None:
    """`--since` of `scan`: the changes (None without it), with the selection printed."""
    from wormhole_ci.affected import affected, git_changes, selection_lines

    if since is None:
        return None
    changes = git_changes(manifest.root, since)
    chosen = affected(manifest, changes)
    for line in (*chosen.notes, *selection_lines(chosen)):
        err.print(f"note: {line}", markup=False)
    return changes
