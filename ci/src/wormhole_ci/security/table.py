"""The scan's terminal table: one line per scanner and target; full reasons stay in the reports."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from wormhole_ci.security.model import Outcome, Status
from wormhole_ci.security.policy import Verdict

COLUMNS = ("scanner", "version", "target", "outcome", "findings", "blocking")
MORE = "… details in scan.md"
NARROW_CAPTION = "reasons cut to fit; details in scan.md"
# Each column adds a border and one space of padding either side; one border closes the row.
_CHROME_PER_COLUMN = 3
_MIN_KEPT = 10
"""Characters of a reason worth keeping before MORE."""
_DETAIL = COLUMNS.index("findings")


def one_line(text: str, limit: int) -> str:
    """`text` on one line (whitespace collapsed), cut to `limit` characters.

    A cut text ends in MORE, or in "…" alone when MORE does not fit with some of the text.
    """
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    suffix = MORE if limit >= len(MORE) + _MIN_KEPT else "…"
    return flat[: max(0, limit - len(suffix))].rstrip() + suffix


def scan_table(verdict: Verdict, width: int) -> Table:
    """The verdict as a table at most `width` columns wide, one line per outcome.

    The other columns keep their full text; an unavailable or failed scanner's reason
    (pip-audit lists every skipped dependency) is cut to the room they leave. scan.md,
    scan.json and SARIF keep it whole.
    """
    rows = [_cells(verdict, o) for o in verdict.outcomes]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    fixed = sum(w for i, w in enumerate(widths) if i != _DETAIL)
    room = max(1, width - fixed - _CHROME_PER_COLUMN * len(COLUMNS) - 1)
    table = Table(title=f"wormhole-ci scan (fail on {verdict.fail_on})")
    for i, column in enumerate(COLUMNS):
        keep = None if i == _DETAIL else widths[i]
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=keep)
    for row in rows:
        cells = list(row)
        cells[_DETAIL] = one_line(cells[_DETAIL], room)
        table.add_row(*(Text(c) for c in cells))
        if cells[_DETAIL].endswith("…"):  # too narrow for MORE on the row: say it once
            table.caption = NARROW_CAPTION
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
