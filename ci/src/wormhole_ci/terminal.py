"""rich for the command line, imported on first use: a no-op `check --since` never loads it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def console(*, stderr: bool = False) -> Console:
    """The CLI's Console: no highlighting, long lines kept whole."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    """`text` shown literally inside rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)
