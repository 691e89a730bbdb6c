"""`--since` in Dagger: the changed paths the workflow computed, read into the core's `Changes`.

Why not history through the API: Dagger v0.21 can read it (`Directory.asGit` →
`GitRepository.commit(id)` / `ref(name)` → `GitRef.commonAncestor(other)`, `GitRef.tree` →
`Directory.changes(from)` → `Changeset.addedPaths` / `modifiedPaths` / `removedPaths`), but
only from a Directory holding `.git`: the module's source ignores `.git` (a new commit
would otherwise change every function's cache key), CI's checkouts are shallow, and with
`--source=SUBDIR` the Directory is not the repository. The workflow, which has the clone,
writes `git diff --name-only BASE HEAD` into a file instead (docs/github-actions.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagger

from wormhole_ci.affected import Changes, affected, listed_changes
from wormhole_ci.errors import WormholeCiError

if TYPE_CHECKING:
    from wormhole_ci.dagger_runtime.source import DaggerSource


@dataclass(frozen=True)
class Since:
    """The module's `--since`, `--changed` and `--repo-path` arguments."""

    ref: str
    changed: dagger.File | None
    repo_path: str

    async def changes(self) -> Changes:
        """The listed changes; without a listing the base counts as unknown (everything runs)."""
        listing = await self.changed.contents() if self.changed is not None else None
        return listed_changes(self.ref, listing, self.repo_path)


async def affected_json(source: DaggerSource) -> str:
    """`affected`: the selection as JSON (`wormhole-ci affected --json`)."""
    changes = await source.changes()
    if changes is None:
        raise WormholeCiError("affected: pass --since=BASE_SHA (and --changed=FILE)")
    return (await source.planned(lambda m: affected(m, changes))).to_json()
