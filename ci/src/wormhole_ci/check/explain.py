"""Why a task reran: each task's last key inputs on disk, and the first one that differs.

A record holds what the task's result-cache key was computed from, as digests: the
command, tool versions in clear (not secret), a digest per env var name (a value is never
stored in clear nor shown: only the name is reported), and a digest per input file. One
record per task and source tree, overwritten by each run, so the store stays small.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from wormhole_ci import __version__
from wormhole_ci.jsonish import as_dict
from wormhole_ci.plan import Task
from wormhole_ci.results import Explanation, RunReport

LOCK_FILES = frozenset(
    {
        "uv.lock",
        "poetry.lock",
        "requirements.txt",
        "pnpm-lock.yaml",
        "package-lock.json",
        "yarn.lock",
        "bun.lock",
        "bun.lockb",
    }
)

# Causes, in the order `first_difference` looks for them.
COMMAND = "command"
TOOL = "tool version"
ENV = "env var"
LOCK = "lock file"
FILE = "file"
# Nothing of the task's own inputs differs, yet it ran (or had nothing to compare with).
NO_EARLIER_RUN = "no earlier run"
EARLIER_TASK_RAN = "earlier task ran"
LAST_RUN_FAILED = "last run failed"
OUTPUTS_MISSING = "outputs missing"
NOT_STORED = "no stored result"
CACHE_OFF = "cache disabled"

# What `--explain` can say in Dagger: the v0.21 API reports no per-exec cache status to the
# module (no such field in the schema), so the module says who decides instead of guessing.
ENGINE_EXPLANATION = (
    "explain: in Dagger the engine's cache decides reuse, not wormhole-ci's result cache: "
    "an exec is reused when its container, command, env and mounted files are unchanged, and "
    "a repeated call with the same source is answered by the function cache without running "
    "any task. The engine does not tell the module which execs it reused; "
    "`dagger call --progress=plain check` marks them CACHED."
)


@dataclass(frozen=True)
class KeyInputs:
    """The inputs of one task's cache key, as names → digests (nothing secret in clear)."""

    command: str
    """A digest of the argv and working directory."""
    tools: Mapping[str, str]
    """Tool → version: the task's tool, the host toolchain, wormhole-ci itself."""
    env: Mapping[str, str]
    """Env var name → a digest of name and value."""
    files: Mapping[str, str]
    """Input path (relative to the root) → a digest of its content."""

    def to_json(self) -> dict[str, object]:
        return {
            "command": self.command,
            "tools": dict(self.tools),
            "env": dict(self.env),
            "files": dict(self.files),
        }

    @classmethod
    def from_json(cls, raw: object) -> KeyInputs | None:
        """The inputs read back from a record, or None when it is not one."""
        data = as_dict(raw)
        if data is None or not isinstance(data.get("command"), str):
            return None
        return cls(
            command=str(data["command"]),
            tools=_str_map(data.get("tools")),
            env=_str_map(data.get("env")),
            files=_str_map(data.get("files")),
        )


@dataclass(frozen=True)
class Record:
    """A task's last run: its key, whether it passed, and the key's inputs."""

    key: str
    passed: bool
    inputs: KeyInputs


def key_inputs(task: Task, files: Mapping[str, str], toolchain: str) -> KeyInputs:
    """What `taskcache.task_key` covers for `task`, itemised (`files`: its input manifest)."""
    command = json.dumps([task.workdir, *task.argv]).encode()
    tools = {task.tool.value: task.tool_version or "any", **toolchain_versions(toolchain)}
    tools["wormhole-ci"] = __version__  # last: the Hasura check's tool is wormhole-ci itself
    env = {
        name: hashlib.sha256(f"{name}={value}".encode()).hexdigest()[:16]
        for name, value in task.env
    }
    return KeyInputs(hashlib.sha256(command).hexdigest()[:16], tools, env, dict(files))


def toolchain_versions(toolchain: str) -> dict[str, str]:
    """`linux-x86_64 node v20.20.0 python 3.11.7` → platform, node and python entries."""
    words = toolchain.split()
    if not words:
        return {}
    if len(words) % 2 == 0:
        return {"host toolchain": toolchain}  # not the host_fingerprint shape: compare whole
    pairs = dict(zip(words[1::2], words[2::2], strict=True))
    return {"platform": words[0], **pairs}


def differences(old: KeyInputs, new: KeyInputs, task: Task) -> list[Explanation]:
    """Every input that differs between two runs of `task`, most telling first."""
    return list(_differences(old, new, task))


def _differences(old: KeyInputs, new: KeyInputs, task: Task) -> Iterator[Explanation]:
    if old.command != new.command:
        command = " ".join(task.argv)
        yield Explanation(False, COMMAND, f"`{command}` in {task.workdir}", "changed")
    for name in sorted(old.tools.keys() | new.tools.keys()):
        before, after = old.tools.get(name, "none"), new.tools.get(name, "none")
        if before != after:
            yield Explanation(False, TOOL, name, f"{before} → {after}")
    for name, detail in _changed(old.env, new.env):
        yield Explanation(False, ENV, name, detail)  # the name only: values are secrets
    files = list(_changed(old.files, new.files))
    for path, detail in files:
        if path.rsplit("/", 1)[-1] in LOCK_FILES:
            yield Explanation(False, LOCK, path, detail)
    for path, detail in files:
        if path.rsplit("/", 1)[-1] not in LOCK_FILES:
            yield Explanation(False, FILE, path, detail)


def _changed(old: Mapping[str, str], new: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    for name in sorted(old.keys() | new.keys()):
        if name not in old:
            yield name, "added"
        elif name not in new:
            yield name, "removed"
        elif old[name] != new[name]:
            yield name, "changed"


def first_difference(old: KeyInputs, new: KeyInputs, task: Task) -> Explanation | None:
    """The most telling difference, counting the others in `more`; None when identical."""
    found = differences(old, new, task)
    if not found:
        return None
    first = found[0]
    return Explanation(False, first.cause, first.subject, first.detail, more=len(found) - 1)


class RunRecords:
    """Each task's last record, one small JSON file per task and source tree."""

    def __init__(self, directory: Path, source: Path) -> None:
        self.directory = directory
        self.source = source

    def _path(self, task: Task) -> Path:
        # Per source tree: two checkouts sharing one cache each compare with their own last run.
        name = hashlib.sha256(f"{self.source}\0{task.key}".encode()).hexdigest()[:24]
        return self.directory / f"{name}.json"

    def get(self, task: Task) -> Record | None:
        """The last record of `task`, if any."""
        try:
            raw = as_dict(json.loads(self._path(task).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None
        if raw is None:
            return None
        inputs = KeyInputs.from_json(raw.get("inputs"))
        key = raw.get("key")
        if inputs is None or not isinstance(key, str):
            return None
        return Record(key, raw.get("passed") is True, inputs)

    def put(self, task: Task, record: Record) -> None:
        """Keep `record` as the task's last (best effort: losing it only loses an explanation)."""
        path = self._path(task)
        data = {"key": record.key, "passed": record.passed, "inputs": record.inputs.to_json()}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            tmp.replace(path)
        except OSError:
            pass


def explain_lines(report: RunReport) -> list[str]:
    """`explain:` then one line per task: reused, or what made it run."""
    width = max((len(r.service) + len(r.task) + 1 for r in report.results), default=0)
    lines = ["explain:"]
    for result in report.results:
        name = f"{result.service}/{result.task}"
        if result.explanation is not None:
            why = result.explanation.text()
        else:
            why = f"not run ({result.status})"
        lines.append(f"  {name:<{width}}  {why}")
    return lines


def explanation_json(explanation: Explanation) -> dict[str, object]:
    """The JSON form of an explanation (the report's `explain` member)."""
    data: dict[str, object] = {"reused": explanation.reused}
    if not explanation.reused:
        data.update(
            cause=explanation.cause,
            subject=explanation.subject,
            detail=explanation.detail,
            more=explanation.more,
        )
    return data


def _str_map(value: object) -> dict[str, str]:
    return {k: v for k, v in (as_dict(value) or {}).items() if isinstance(v, str)}
