"""The runbooks this tool's own messages name, and the check that every runbook is linked."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the constants are imported by every capability: keep them light
    from wormhole_ci.delivery.rules import Alert

# Paths relative to the monorepo root: the runbooks of the monorepo the tool runs on.
FAILED_MIGRATION = "docs/runbooks/failed-migration.md"
EXPAND_CONTRACT = "docs/runbooks/expand-contract.md"
HASURA_INCONSISTENT_METADATA = "docs/runbooks/hasura-inconsistent-metadata.md"

RUNBOOKS = (FAILED_MIGRATION, EXPAND_CONTRACT, HASURA_INCONSISTENT_METADATA)
"""Every runbook an error message of this tool points at: linked even without an alert."""


def runbook_problems(alerts: Iterable[Alert], directory: Path, shown: str) -> list[str]:
    """Links both ways: each alert's runbook_url names a file of `directory` (`shown`: its
    path in messages), and each runbook there is an alert's or one of RUNBOOKS."""
    if not directory.is_dir():
        return [
            f"{shown}: runbooks directory not found; create it or set the delivery service's "
            "`runbooks` in wormhole-ci.toml"
        ]
    problems: list[str] = []
    linked: set[str] = set()
    for alert in alerts:
        url = alert.annotations.get("runbook_url")
        if not url:
            continue  # reported by the alert checks
        name = url.rstrip("/").rsplit("/", 1)[-1]
        linked.add(name)
        if not (directory / name).is_file():
            problems.append(
                f"{alert.shown}: alert {alert.name} ({alert.severity}): runbook_url {url} names "
                f"{name}, which is not in {shown}/; write the runbook or fix the link"
            )
    named = {Path(path).name for path in RUNBOOKS}
    for path in sorted(directory.glob("*.md")):
        if path.name not in linked and path.name not in named:
            problems.append(
                f"{shown}/{path.name}: linked by no alert's runbook_url (and named by no "
                "wormhole-ci message); link it from the alert it is for, or delete it"
            )
    return problems
