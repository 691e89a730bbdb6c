"""Applying the repository's Hasura metadata to an engine: export, diff, guarded replace,
consistency check, and restoring the exported metadata when the apply does not hold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from wormhole_ci.delivery.runbooks import HASURA_INCONSISTENT_METADATA
from wormhole_ci.errors import HasuraApiError, HasuraConflictError, InconsistentObject
from wormhole_ci.hasura.client import Exported, HasuraClient
from wormhole_ci.hasura.diff import Change, diff_metadata

RUNBOOK = HASURA_INCONSISTENT_METADATA
"""Where an apply that failed on inconsistent metadata sends the reader."""


@dataclass
class ApplyResult:
    """What one apply did to one engine."""

    url: str
    outcome: str
    """"applied", "unchanged", "failed", "refused" (a concurrent console edit) or "dry-run"."""
    before_version: int | None
    """The live resource_version the apply started from (None: the export failed)."""
    after_version: int | None
    """The resource_version after the apply (or after the restore); None when unknown."""
    changes: list[Change] = field(default_factory=list[Change])
    inconsistent: list[InconsistentObject] = field(default_factory=list[InconsistentObject])
    restored: bool = False
    """The exported metadata was re-applied after a failure."""
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "outcome": self.outcome,
            "before_version": self.before_version,
            "after_version": self.after_version,
            "changes": [{"action": c.action, "object": c.object} for c in self.changes],
            "inconsistent": [
                {"type": o.type, "name": o.name, "reason": o.reason} for o in self.inconsistent
            ],
            "restored": self.restored,
            "detail": self.detail,
        }


class HasuraApplyFailed(HasuraApiError):
    """An apply was refused or did not hold; `.result` says what happened (and the restore)."""

    def __init__(self, message: str, *, result: ApplyResult) -> None:
        super().__init__(message, inconsistent=result.inconsistent)
        self.result = result


def apply_metadata(
    client: HasuraClient,
    metadata: dict[str, object],
    say: Callable[[str], None],
    *,
    dry_run: bool = False,
) -> ApplyResult:
    """Make `metadata` the engine's live metadata, or leave the engine as it was.

    The replace carries the exported resource_version, so a console edit made since the
    export is refused (outcome "refused", nothing written) instead of overwritten. When
    the replace or the consistency check after it fails, the exported metadata is put
    back and HasuraApplyFailed says so. Export failures (unreachable, wrong secret) raise
    the client's HasuraApiError: nothing was attempted.
    """
    url = client.url
    say(f"hasura {url}: exporting the live metadata")
    exported = client.export()
    before = exported.resource_version
    changes = diff_metadata(exported.metadata, metadata)
    say(f"hasura {url}: live metadata at resource_version {before}; {_count(changes)}")
    for change in changes:
        say(f"  {change}")
    if dry_run:
        return ApplyResult(url, "dry-run", before, before, changes, detail="nothing written")
    if not changes:
        inconsistent = client.inconsistent()
        result = ApplyResult(url, "unchanged", before, before, [], inconsistent)
        if inconsistent:
            result.outcome = "failed"
            result.detail = (
                "the live metadata equals the repository's but the engine reports it "
                f"inconsistent:{_lines(inconsistent)}\nfix the database or the metadata, then re-run; "
                f"see {RUNBOOK}"
            )
            raise HasuraApplyFailed(f"hasura {url}: {result.detail}", result=result)
        say(f"hasura {url}: unchanged and consistent")
        return result
    say(f"hasura {url}: replacing the metadata (resource_version {before})")
    try:
        client.replace(metadata, resource_version=before)
    except HasuraConflictError as err:
        result = ApplyResult(url, "refused", before, None, changes, detail=str(err))
        raise HasuraApplyFailed(
            f"hasura {url}: not applied, nothing written: the live metadata changed since it "
            f"was exported at resource_version {before} ({err})",
            result=result,
        ) from err
    except HasuraApiError as err:
        _restore(client, exported, changes, err.inconsistent, str(err), say)
    try:
        inconsistent = client.inconsistent()
    except HasuraApiError as err:
        _restore(client, exported, changes, [], str(err), say)
    if inconsistent:
        _restore(
            client,
            exported,
            changes,
            inconsistent,
            "the engine reports the applied metadata inconsistent",
            say,
        )
    after = _version(client)
    say(f"hasura {url}: applied and consistent (resource_version {before} → {after})")
    return ApplyResult(url, "applied", before, after, changes, detail=_count(changes))


def _restore(  # noqa: PLR0917 (a private helper of apply_metadata)
    client: HasuraClient,
    exported: Exported,
    changes: list[Change],
    inconsistent: list[InconsistentObject],
    cause: str,
    say: Callable[[str], None],
) -> NoReturn:
    """Put the exported metadata back after a failed apply, then raise HasuraApplyFailed."""
    url, before = client.url, exported.resource_version
    say(f"hasura {url}: the apply failed; restoring the metadata exported at version {before}")
    result = ApplyResult(url, "failed", before, None, changes, list(inconsistent))
    objects = _lines(inconsistent)
    try:
        # No resource_version: the failed replace may or may not have moved it (a connection
        # lost after the engine committed), and the point is to get back to the exported
        # state whatever happened. allow_inconsistent_metadata=true, only here: the exported
        # metadata is what the engine itself served a moment ago, and it may already have
        # been inconsistent (a migration dropped a column the live metadata still tracks);
        # a strict restore would then be refused and leave the failed apply's metadata live
        # (or whatever the engine fell back to) instead of the previous state.
        client.replace(exported.metadata, resource_version=None, allow_inconsistent=True)
    except HasuraApiError as err:
        result.detail = f"{cause}; restoring the exported metadata failed too: {err}"
        raise HasuraApplyFailed(
            f"hasura {url}: apply failed ({cause}){objects}\nrestoring the metadata exported "
            f"at resource_version {before} FAILED: {err}\nthe live metadata may be the "
            "repository's; check the engine (`wormhole-ci drift`) before re-running",
            result=result,
        ) from err
    result.restored = True
    result.after_version = _version(client)
    result.detail = f"{cause}; restored the metadata exported at resource_version {before}"
    now = f" (resource_version is now {result.after_version})" if result.after_version else ""
    raise HasuraApplyFailed(
        f"hasura {url}: apply failed ({cause}){objects}\nthe live metadata was restored to "
        f"version {before}{now}; fix the metadata or the database, then re-run"
        + (f"; see {RUNBOOK}" if inconsistent else ""),
        result=result,
    )


def _version(client: HasuraClient) -> int | None:
    try:
        return client.export().resource_version
    except HasuraApiError:
        return None


def _count(changes: list[Change]) -> str:
    if not changes:
        return "no changes"
    return f"{len(changes)} change{'s' if len(changes) != 1 else ''}"


def _lines(objects: list[InconsistentObject]) -> str:
    return "".join(f"\n  inconsistent: {o}" for o in objects)
