"""Running the scan plan natively: each scanner as a host subprocess, its output parsed into an Outcome."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from wormhole_ci.security.model import Outcome
from wormhole_ci.security.parsers.common import RawRun, ServiceOf, last_lines
from wormhole_ci.security.scanners import SCANNERS
from wormhole_ci.security.tasks import (
    OUT_PLACEHOLDER,
    RULES_PLACEHOLDER,
    TMP_PLACEHOLDER,
    ScanTask,
)
from wormhole_ci.toolchains import HostTools

SCAN_TIMEOUT = 900.0


@dataclass(frozen=True)
class ScanRun:
    """Every task's outcome (in plan order, SBOMs included) and the artifact files written."""

    outcomes: tuple[Outcome, ...]
    artifacts: tuple[Path, ...]
    durations: tuple[tuple[str, float], ...]


def substitute(argv: tuple[str, ...], rules: str, out: str, tmp: str) -> list[str]:
    """Fill the runtime placeholders of a scan command."""
    return [
        a.replace(RULES_PLACEHOLDER, rules)
        .replace(OUT_PLACEHOLDER, out)
        .replace(TMP_PLACEHOLDER, tmp)
        for a in argv
    ]


class NativeScanner:
    """Runs scan tasks concurrently (at most `jobs`), never failing on a scanner's exit code."""

    def __init__(
        self,
        root: Path,
        tools: HostTools,
        *,
        rules: Path,
        out: Path,
        versions: dict[str, str],
        jobs: int,
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.tools = tools
        self.rules = rules
        self.out = out
        self.versions = versions
        self.jobs = jobs
        self.unavailable = dict(unavailable or {})
        """Why an executable (`ScanTask.executable`) could not be provisioned."""
        self.tmp = ""

    async def run(self, tasks: tuple[ScanTask, ...], service_of: ServiceOf) -> ScanRun:
        """All tasks; a scanner that cannot start is an `error` outcome, not an exception."""
        self.out.mkdir(parents=True, exist_ok=True)
        outcomes: dict[int, Outcome] = {}
        durations: dict[int, float] = {}
        limiter = anyio.CapacityLimiter(max(1, self.jobs))

        async def one(index: int, task: ScanTask) -> None:
            async with limiter:
                started = time.monotonic()
                reason = self.unavailable.get(task.executable)
                if reason is not None:
                    durations[index] = 0.0
                    outcomes[index] = Outcome.unavailable(
                        task.tool.value, task.target, reason, task.tool_version
                    )
                    return
                run = await self._execute(task) if not task.unavailable else RawRun(None, "")
                durations[index] = time.monotonic() - started
                outcomes[index] = SCANNERS[task.tool].parse(task, run, service_of)

        with tempfile.TemporaryDirectory(prefix="wormhole-ci-scan-") as scratch:
            self.tmp = scratch
            async with anyio.create_task_group() as group:
                for index, task in enumerate(tasks):
                    group.start_soon(one, index, task)
        artifacts = tuple(
            self.out / t.artifact for t in tasks if t.artifact and (self.out / t.artifact).exists()
        )
        return ScanRun(
            outcomes=tuple(outcomes[i] for i in range(len(tasks))),
            artifacts=artifacts,
            durations=tuple((f"{t.tool}:{t.target}", durations[i]) for i, t in enumerate(tasks)),
        )

    async def _execute(self, task: ScanTask) -> RawRun:
        version = task.tool_version or self.versions.get(SCANNERS[task.tool].binary, "")
        cwd = self.root / task.workdir
        env = {**os.environ, **dict(task.env)}
        env.pop("VIRTUAL_ENV", None)
        for name, text in task.inputs:
            (Path(self.tmp) / name).write_text(text, encoding="utf-8")
        for pre in task.pre:
            done = await self._process(
                substitute(pre, str(self.rules), str(self.out), self.tmp), cwd, env
            )
            if done.exit_code != 0:
                reason = f"preparing the scan failed: {' '.join(pre)}: {last_lines(done.stderr) or done.exit_code}"
                return RawRun(None, "", reason, version)
        argv = substitute(task.argv, str(self.rules), str(self.out), self.tmp)
        done = await self._process([task.executable, *argv[1:]], cwd, env)
        return RawRun(done.exit_code, done.stdout, done.stderr, version)

    async def _process(self, argv: list[str], cwd: Path, env: dict[str, str]) -> RawRun:
        resolved = self.tools.resolve(tuple(argv))
        try:
            with anyio.fail_after(SCAN_TIMEOUT):
                done = await anyio.run_process(
                    resolved, cwd=cwd, env=env, check=False, stdin=subprocess.DEVNULL
                )
        except TimeoutError:
            return RawRun(None, "", f"{argv[0]} timed out after {SCAN_TIMEOUT:.0f}s")
        except OSError as exc:
            return RawRun(None, "", f"could not start {argv[0]}: {exc.strerror or exc}")
        return RawRun(
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
