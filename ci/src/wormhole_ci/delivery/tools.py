"""promtool and amtool on the host: found on PATH, run with a timeout, output as text."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wormhole_ci.errors import ProvisionError

_TIMEOUT = 120.0
INSTALL = "apt-get install prometheus prometheus-alertmanager"
"""Debian's packages of promtool and amtool (what the Dagger container installs)."""


@dataclass(frozen=True)
class Tools:
    """The absolute paths of the binaries the validators run."""

    promtool: str
    amtool: str


@dataclass(frozen=True)
class Done:
    """A finished tool run."""

    code: int
    output: str
    """stdout then stderr."""


def find_tools() -> Tools:
    """promtool and amtool from PATH; ProvisionError naming each missing one and the fix."""
    found = {name: shutil.which(name) for name in ("promtool", "amtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise ProvisionError(
            f"validate-delivery needs {' and '.join(missing)}, not found on PATH; "
            f"install them (Debian: `{INSTALL}`) and retry"
        )
    return Tools(promtool=found["promtool"] or "", amtool=found["amtool"] or "")


def run(argv: list[str | Path], cwd: Path | None = None) -> Done:
    """Run a checker; a timeout or a failure to start is a failed run with the reason."""
    try:
        done = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Done(1, f"{Path(str(argv[0])).name} timed out after {_TIMEOUT:g} s")
    except OSError as exc:
        return Done(1, f"could not start {argv[0]}: {exc.strerror or exc}")
    return Done(done.returncode, (done.stdout + done.stderr).strip())


def indented(output: str, *replacements: tuple[str, str]) -> str:
    """A tool's output for a problem message: temporary paths replaced, lines indented."""
    for old, new in replacements:
        output = output.replace(old, new)
    lines = [line for line in output.splitlines() if line.strip()]
    return "".join(f"\n    {line}" for line in lines)
