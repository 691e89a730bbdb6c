"""The Hasura area of drift: the live metadata against the repository's, and what the engine
itself reports inconsistent."""

from __future__ import annotations

from wormhole_ci.drift.report import Area, AreaResult, DriftItem
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.hasura.client import HasuraClient
from wormhole_ci.hasura.diff import diff_metadata
from wormhole_ci.hasura.environment import HasuraRun

_MEANING = {
    "added": "in the repository, not live (never applied, or removed live)",
    "removed": "live only: added outside the repository (e.g. in the console)",
    "changed": "live differs from the repository (edited in the console, or never applied)",
}


def hasura_drift(run: HasuraRun, environment: str) -> AreaResult:
    """Export the live metadata (read-only) and compare it with the repository's."""
    result = AreaResult(Area.HASURA)
    apply = f"wormhole-ci hasura-apply --environment {environment}"
    keep = "or, to keep the live edit, `hasura metadata export` and commit it"
    try:
        with HasuraClient(run.target.url, run.admin_secret) as client:
            live = client.export()
            inconsistent = client.inconsistent()
    except WormholeCiError as exc:
        result.error = f"hasura at {run.target.url}: {exc}"
        return result
    changes = diff_metadata(live.metadata, run.metadata)
    result.checked.append(
        f"{run.target.url}: live metadata (resource_version {live.resource_version}) "
        f"against the repository's: {len(changes)} differences, "
        f"{len(inconsistent)} inconsistent objects"
    )
    result.items.extend(
        DriftItem(
            Area.HASURA,
            "metadata-changed",
            change.object,
            _MEANING.get(change.action, change.action),
            f"{apply} ({keep})",
        )
        for change in changes
    )
    result.items.extend(
        DriftItem(
            Area.HASURA,
            "metadata-inconsistent",
            obj.name,
            f"the engine reports it inconsistent: {obj.reason}",
            f"fix the database or the metadata in the repository, then {apply}",
        )
        for obj in inconsistent
    )
    return result
