"""The scan's terminal table: one line per scanner and target; full reasons stay in the reports."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from wormhole_ci.security.model import Outcome, Status
from wormhole_ci.security.policy import Verdict

COLUMNS = ("scanner", "version", "target", "outcome", "findings", "blocking")
MORE = "… details in scan.md"
# Each column adds a border and one space of padding either side; one border closes the row.
_CHROME_PER_COLUMN = 3
_MIN_DETAIL = len(MORE) + 10


def one_line(text: str, limit: int) -> str:
    """`text` on one line (whitespace collapsed), cut to `limit` characters ending in MORE."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: max(0, limit - len(MORE))].rstrip() + MORE


def scan_table(verdict: Verdict, width: int) -> Table:
    """The verdict as a table at most `width` columns wide, one line per outcome.

    An unavailable or failed scanner's reason (pip-audit lists every skipped dependency)
    is cut to the room left by the other columns; scan.md, scan.json and SARIF keep it whole.
    """
    rows = [_cells(verdict, o) for o in verdict.outcomes]
    fixed = sum(
        max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) if rows else len(COLUMNS[i])
        for i in (0, 1, 2, 3, 5)
    )
    room = max(_MIN_DETAIL, width - fixed - _CHROME_PER_COLUMN * len(COLUMNS) - 1)
    table = Table(title=f"wormhole-ci scan (fail on {verdict.fail_on})")
    for column in COLUMNS:
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for row in rows:
        cells = list(row)
        cells[4] = one_line(cells[4], room)
        table.add_row(*(Text(c) for c in cells))
    return table


def _cells(verdict: Verdict, outcome: Outcome) -> tuple[str, ...]:
    blocking = sum(1 for f in verdict.blocking if f in outcome.findings)
    detail = (
        outcome.reason
        if outcome.status in (Status.UNAVAILABLE, Status.ERROR)
        else str(len(outcome.findings))
    )
    return (
        outcome.tool,
        outcome.tool_version or "?",
        outcome.target,
        str(outcome.status),
        detail,
        str(blocking),
    )
