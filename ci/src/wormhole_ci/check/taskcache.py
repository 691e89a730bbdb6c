"""Reusing passed results: a task whose inputs, command and tools are unchanged is not rerun.

The key covers the task's command, environment, toolchain versions and the content of
its input paths (dependency and build output folders excluded); only passes are kept,
and a hit also needs the task's declared outputs to exist. The runtime additionally
reruns everything after a task of the same service that had to run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from wormhole_ci import __version__
from wormhole_ci.jsonish import as_dict
from wormhole_ci.paths import GENERATED_DIRS
from wormhole_ci.plan import Task

IGNORED_DIRS = GENERATED_DIRS | {".git"}
IGNORED_SUFFIXES = (".tsbuildinfo", ".pyc", ".log")
# Hex digits kept per file digest in a manifest: enough to tell two versions of one file
# apart, small enough that a large service's manifest stays a few kilobytes.
_SHORT = 16


@dataclass(frozen=True)
class CachedPass:
    """What is remembered of a passed task."""

    duration: float
    tail: str


def input_files(root: Path, paths: Iterable[str]) -> Iterator[Path]:
    """Every input file under `paths` (relative to root), in a stable order."""
    for rel in sorted(set(paths)):
        start = root / rel
        if start.is_file():
            yield start
            continue
        for directory, dirs, files in os.walk(start):
            dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
            for name in sorted(files):
                if not name.endswith(IGNORED_SUFFIXES):
                    yield Path(directory) / name


def input_manifest(root: Path, paths: Iterable[str]) -> dict[str, str]:
    """Every input file under `paths` (relative to root) → a digest of its content.

    Kept beside a task's last run so `--explain` can name the file that changed.
    """
    files: dict[str, str] = {}
    for path in input_files(root, paths):
        if path.is_symlink():
            content = b"link:" + str(path.readlink()).encode()
        elif path.exists():
            content = path.read_bytes()
        else:
            content = b""
        files[path.relative_to(root).as_posix()] = hashlib.sha256(content).hexdigest()[:_SHORT]
    return files


def manifest_digest(files: dict[str, str]) -> str:
    """One digest of an input manifest (names and content digests, in order)."""
    digest = hashlib.sha256()
    for name, content in files.items():
        digest.update(b"\0" + name.encode() + b"\0" + content.encode())
    return digest.hexdigest()


def inputs_digest(root: Path, paths: Iterable[str]) -> str:
    """A digest of the names and content of every input file under `paths`."""
    return manifest_digest(input_manifest(root, paths))


def task_key(task: Task, inputs: str, toolchain: str) -> str:
    """A digest of everything the task's result depends on (`inputs`: its inputs_digest)."""
    digest = hashlib.sha256()
    header = {
        "wormhole-ci": __version__,
        "toolchain": toolchain,
        "tool": [task.tool.value, task.tool_version],
        "argv": list(task.argv),
        "env": [list(pair) for pair in task.env],
        "workdir": task.workdir,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(inputs.encode())
    return digest.hexdigest()


class ResultCache:
    """Passed results on disk, one small JSON file per key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, key: str) -> CachedPass | None:
        """The remembered pass for `key`, if any."""
        try:
            raw = as_dict(json.loads((self.directory / f"{key}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None
        if raw is None:
            return None
        duration = raw.get("duration")
        return CachedPass(
            duration=float(duration) if isinstance(duration, (int, float)) else 0.0,
            tail=str(raw.get("tail", "")),
        )

    def put(self, key: str, entry: CachedPass) -> None:
        """Remember a pass (best effort: a cache that cannot be written only costs time)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f"{key}.json.tmp"
            tmp.write_text(
                json.dumps({"duration": entry.duration, "tail": entry.tail}), encoding="utf-8"
            )
            tmp.replace(self.directory / f"{key}.json")
        except OSError:
            pass
