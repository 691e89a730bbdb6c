"""Affected selection: which services a set of changed paths touches, and why (both runtimes)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from wormhole_ci.manifest import MANIFEST_NAME, Manifest, ServiceKind, ServiceSpec
from wormhole_ci.paths import GENERATED_DIRS
from wormhole_ci.plan import Plan, build_plan

if TYPE_CHECKING:
    from wormhole_ci.security.tasks import ScanTask

WORKFLOWS = ".github/workflows/"
"""Relative to the git repository root (not the monorepo's folder in it)."""
# Lock files at the monorepo root (a workspace's shared lock) and the service kinds reading them.
_ROOT_LOCKS: dict[str, frozenset[ServiceKind]] = {
    **dict.fromkeys(
        ("pnpm-lock.yaml", "package-lock.json", "yarn.lock", "bun.lock", "bun.lockb"),
        frozenset({ServiceKind.NODE, ServiceKind.NUXT}),
    ),
    **dict.fromkeys(
        ("uv.lock", "poetry.lock", "requirements.txt"), frozenset({ServiceKind.PYTHON})
    ),
}
_GIT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Changes:
    """What changed since a base commit, as git (or the workflow) reported it."""

    since: str
    """The ref asked for (`--since`)."""
    base: str | None
    """The commit compared against; None: unknown (not in this clone, or no git)."""
    paths: tuple[str, ...]
    """Changed paths relative to the git repository root (empty when `base` is None)."""
    prefix: str = ""
    """The monorepo's folder inside the repository ("" at its root), POSIX, no slashes around."""
    why_unknown: str = ""


@dataclass(frozen=True)
class Affected:
    """The services to run, each with the reasons it was selected."""

    services: tuple[str, ...]
    """In manifest order."""
    reasons: dict[str, tuple[str, ...]]
    base: str | None
    notes: tuple[str, ...] = ()

    def to_json(self) -> str:
        data = {
            "services": list(self.services),
            "reasons": {k: list(v) for k, v in self.reasons.items()},
            "base": self.base,
            "notes": list(self.notes),
        }
        return json.dumps(data, indent=2, sort_keys=True)


def affected(manifest: Manifest, changes: Changes) -> Affected:
    """The services `changes` touch: their own files, the manifest, the workflows, the root
    lock files their kind reads, and for hasura its database service's Prisma migrations."""
    services = manifest.services
    if changes.base is None:
        note = (
            f"base {changes.since!r} is unknown ({changes.why_unknown}): every service is selected"
        )
        return Affected(
            tuple(s.name for s in services),
            {s.name: ("base unknown",) for s in services},
            None,
            (note,),
        )
    reasons: dict[str, list[str]] = {s.name: [] for s in services}
    unowned: list[str] = []
    for path in changes.paths:
        local = _local(path, changes.prefix)
        hits = _reasons(manifest, path, local)
        for name, why in hits:
            if why not in reasons[name]:
                reasons[name].append(why)
        if not hits:
            unowned.append(path)
    chosen = tuple(s.name for s in services if reasons[s.name])
    notes: list[str] = []
    if unowned:
        shown = ", ".join(unowned[:5]) + (", …" if len(unowned) > 5 else "")
        notes.append(f"{len(unowned)} changed path(s) belong to no service: {shown}")
    return Affected(
        chosen, {name: tuple(reasons[name]) for name in chosen}, changes.base, tuple(notes)
    )


def _local(path: str, prefix: str) -> str | None:
    """`path` relative to the monorepo root, or None when it lies outside it."""
    if not prefix:
        return path
    return path[len(prefix) + 1 :] if path.startswith(prefix + "/") else None


def _reasons(manifest: Manifest, path: str, local: str | None) -> list[tuple[str, str]]:
    every = manifest.services
    if path.startswith(WORKFLOWS):
        return [(s.name, f"workflow {path}") for s in every]
    if local is None:
        return []
    if local == MANIFEST_NAME:
        return [(s.name, f"manifest {local}") for s in every]
    if "/" not in local and local in _ROOT_LOCKS:
        kinds = _ROOT_LOCKS[local]
        return [(s.name, f"lock file {local}") for s in every if s.kind in kinds]
    out: list[tuple[str, str]] = []
    for spec in every:
        if any(_under(local, folder) for folder in _folders(spec)):
            out.append((spec.name, f"changed {local}"))
        elif spec.database and _under(local, _migrations(manifest.service(spec.database))):
            out.append((spec.name, f"{spec.database}'s migrations changed: {local}"))
    return out


def _folders(spec: ServiceSpec) -> tuple[str, ...]:
    # delivery also owns its runbooks: alerts' runbook_url must name files there
    runbooks = (spec.runbooks or "docs/runbooks",) if spec.kind is ServiceKind.DELIVERY else ()
    return (spec.path, *runbooks)


def _migrations(database: ServiceSpec) -> str:
    # Prisma's migrations (and the schema they are generated from) define Hasura's tables.
    return str(PurePosixPath(database.path) / "prisma")


def _under(path: str, folder: str) -> bool:
    return folder in ("", ".") or path == folder or path.startswith(folder.rstrip("/") + "/")


def select(manifest: Manifest, changes: Changes, services: Sequence[str] = ()) -> Affected:
    """`affected`, narrowed to `services` when some are named (`--service` with `--since`)."""
    found = affected(manifest, changes)
    if not services:
        return found
    kept = tuple(s for s in found.services if s in services)
    return Affected(kept, {s: found.reasons[s] for s in kept}, found.base, found.notes)


def affected_plan(
    manifest: Manifest,
    changes: Changes | None,
    services: Sequence[str] = (),
    families: Sequence[str] = (),
) -> Plan:
    """The check plan of `services` (all when empty) limited to what `changes` affects (no
    limit when None); each selected service's reasons, and the notes, are the plan's notes."""
    if changes is None:
        return build_plan(manifest, services, families)
    chosen = select(manifest, changes, services)
    notes = (*chosen.notes, *selection_lines(chosen))
    if not chosen.services:
        return Plan(manifest.project, (), notes)
    plan = build_plan(manifest, chosen.services, families)
    return replace(plan, notes=(*notes, *plan.notes))


def selection_lines(chosen: Affected) -> tuple[str, ...]:
    """One line per selected service naming why, or one saying nothing is affected."""
    base = chosen.base[:12] if chosen.base else "an unknown base"
    if not chosen.services:
        return (f"affected since {base}: no service",)
    return tuple(
        f"affected since {base}: {name} ({'; '.join(chosen.reasons[name])})"
        for name in chosen.services
    )


def affected_scan(
    tasks: Sequence[ScanTask], manifest: Manifest, changes: Changes | None
) -> tuple[tuple[ScanTask, ...], tuple[str, ...]]:
    """The scan tasks `changes` affects (all when None) and the selection's notes: each
    affected service's own scans, and the monorepo-wide ones when any service is affected."""
    if changes is None:
        return tuple(tasks), ()
    chosen = affected(manifest, changes)
    names = set(chosen.services)
    kept = tuple(t for t in tasks if t.target in names or (names and t.target == "monorepo"))
    return kept, (*chosen.notes, *selection_lines(chosen))


def git_changes(root: Path, since: str) -> Changes:
    """What changed between the merge base of `since` and HEAD and the work tree of the
    repository holding `root` (committed, staged, unstaged and untracked: what a check runs on)."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None:
        return Changes(since, None, (), why_unknown=f"{root} is not in a git work tree")
    prefix = (_git(root, "rev-parse", "--show-prefix") or "").strip("/")
    base = _git(root, "rev-parse", "--verify", "--quiet", f"{since}^{{commit}}")
    if base is None:
        why = "not in this clone: a shallow clone, or a ref never fetched"
        return Changes(since, None, (), prefix, why)
    # The merge base, as for a pull request: what the branch changed, not what main gained since.
    merge_base = _git(root, "merge-base", base, "HEAD")
    if merge_base is None:
        why = f"no common history with HEAD in this clone (shallow?) for {base[:12]}"
        return Changes(since, None, (), prefix, why)
    diff = _git(Path(top), "diff", "--name-only", "--no-renames", "-z", merge_base) or ""
    untracked = _git(Path(top), "ls-files", "--others", "--exclude-standard", "-z") or ""
    # generated folders (logs, installs, builds) are never task inputs (paths.py)
    listed = (p for p in (diff + "\0" + untracked).split("\0") if p)
    paths = _unique(p for p in listed if GENERATED_DIRS.isdisjoint(p.split("/")))
    return Changes(since, merge_base, paths, prefix)


def listed_changes(since: str, listing: str | None, prefix: str) -> Changes:
    """Changes handed over by a workflow (`git diff --name-only BASE HEAD`, one path a line);
    no listing means the workflow could not compute it (the base was not fetched)."""
    if listing is None:
        why = "no list of changed paths was given (the workflow could not diff against it)"
        return Changes(since, None, (), prefix.strip("/"), why)
    paths = _unique(line.strip() for line in listing.splitlines() if line.strip())
    return Changes(since, since, paths, prefix.strip("/"))


def _unique(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(paths))


def _git(root: Path, *args: str) -> str | None:
    """git's stdout (stripped of the trailing newline), or None when it failed."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return done.stdout.rstrip("\n") if done.returncode == 0 else None
