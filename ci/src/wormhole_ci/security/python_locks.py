"""What pip-audit is given for a poetry.lock or requirements.txt, and why some cannot be audited."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from wormhole_ci.jsonish import as_dict, as_list

# Local code (path dependencies, the project itself): not published anywhere to look up.
_LOCAL_SOURCES = frozenset({"directory", "file"})
# `name==1.2` or `name===1.2`, extras and a trailing environment marker allowed.
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*===?\s*[^\s,;*]+\s*(;.*)?$")


class UnauditableLock(Exception):
    """The lock file cannot be turned into something pip-audit reads as written."""

    def __init__(self, lock: str, message: str) -> None:
        super().__init__(f"{lock}: {message}")
        self.lock = lock


def poetry_requirements(lock: Path, shown: str) -> str:
    """Every package poetry.lock pins, as `name==version` lines (dev groups included: what the
    lock can install is what is audited)."""
    try:
        data = tomllib.loads(lock.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UnauditableLock(shown, f"cannot be read ({exc}); re-run `poetry lock`") from None
    lines: list[str] = []
    for package in map(as_dict, as_list(data.get("package")) or []):
        if package is None:
            continue
        name, version = package.get("name"), package.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise UnauditableLock(
                shown, "a [[package]] entry has no name or version; re-run `poetry lock`"
            )
        if str((as_dict(package.get("source")) or {}).get("type", "")) in _LOCAL_SOURCES:
            continue
        lines.append(f"{name}=={version}")
    return "".join(f"{line}\n" for line in sorted(lines))


def require_pinned(text: str, shown: str) -> None:
    """Raise naming the first requirement not pinned to one version (pip-audit would have to
    resolve it, so what it audits would not be what is deployed)."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].split("\\", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue  # comments, options, `-r`/`-c` includes (pip-audit reads those itself)
        if not _PINNED.match(line):
            raise UnauditableLock(
                shown,
                f"line {number} ({line!r}) is not pinned to one version, so what would be "
                "audited is not what is installed; pin every line (`uv pip compile` or "
                "`pip-compile` write such a file) or commit a uv.lock",
            )
