"""The preview capability's errors (one base, so the CLI maps them to one exit code)."""

from __future__ import annotations

from wormhole_ci.errors import WormholeCiError


class PreviewError(WormholeCiError):
    """A preview cannot be opened or closed; the message says what was undone and what to do."""
