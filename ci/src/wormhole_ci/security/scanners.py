"""What each scanner is: its binary, how it is installed, how its output is read (no Dagger runtime required).

One entry per `ScanTool`, read by both runtimes: the native runner (provisioning,
`--version`, parsing), `containers.scanner_spec` (image, installs, caches) and the
Dagger layer (rules mount, `--version` in the scanner's container).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from wormhole_ci.plan import Cache
from wormhole_ci.security.model import Outcome
from wormhole_ci.security.parsers import npm_audit, pip_audit, pnpm_audit, semgrep, trivy
from wormhole_ci.security.parsers.common import RawRun, ServiceOf, last_lines
from wormhole_ci.security.tasks import ScanTask, ScanTool
from wormhole_ci.toolchains import PNPM_VERSION, UV_VERSION

Parse = Callable[[ScanTask, RawRun, ServiceOf], Outcome]
"""A scan task's raw run → its Outcome."""


class Image(StrEnum):
    """The base a scanner's container starts from."""

    PYTHON = "python"
    """The binary comes from its hash-locked requirements (pip --require-hashes)."""
    NODE = "node"
    """Node's image; a `pin` is the pnpm corepack activates (npm ships with node)."""


@dataclass(frozen=True)
class ContainerExtras:
    """What a scanner's container needs besides its binary."""

    image: Image = Image.PYTHON
    cache: Cache | None = None
    """A cache volume the scanner finds through an environment variable (Trivy's DB)."""
    rules: bool = False
    """The project's Semgrep rules are mounted where `{rules}` points."""


@dataclass(frozen=True)
class Scanner:
    """One scanner: everything either runtime needs to install, run, version and parse it."""

    tool: ScanTool
    binary: str
    """The executable that runs the scan; `<binary> --version` is printed in every report
    ("" for a row that never runs: `UNAUDITED`)."""
    parse: Parse
    requirements: str = ""
    """The hash-locked requirements file under `security/requirements/` that installs
    `binary` ("" when it is not a Python package)."""
    pin: str = ""
    """The binary's version when no requirements file pins it (pnpm)."""
    needs: tuple[tuple[str, str], ...] = ()
    """Other executables the scan runs, with their pinned versions (pip-audit: uv exports
    the lock file)."""
    container: ContainerExtras = ContainerExtras()

    @property
    def version_argv(self) -> tuple[str, ...]:
        """The command whose output `version` reads."""
        return (self.binary, "--version")

    def version(self, output: str) -> str:
        """The version in the output of `version_argv`."""
        return version_from_output(self.binary, output)


def version_from_output(binary: str, output: str) -> str:
    """A tool's version from its `--version` output: trivy's `Version: 0.76.0` line, else
    the first line without the binary's name (`pip-audit 2.9.0` → `2.9.0`)."""
    lines = output.strip().splitlines()
    for line in lines:
        if line.lower().startswith("version:"):
            return line.split(":", 1)[1].strip()
    return lines[0].strip().removeprefix(f"{binary} ").strip() if lines else ""


def _semgrep(task: ScanTask, run: RawRun, service_of: ServiceOf) -> Outcome:
    return semgrep.parse(run, task.target, service_of)


def _trivy(task: ScanTask, run: RawRun, service_of: ServiceOf) -> Outcome:
    return trivy.parse(run, task.target, service_of)


def _pnpm_audit(task: ScanTask, run: RawRun, service_of: ServiceOf) -> Outcome:
    del service_of  # findings are packages of the task's lock file
    return pnpm_audit.parse(run, task.target, task.manifest)


def _npm_audit(task: ScanTask, run: RawRun, service_of: ServiceOf) -> Outcome:
    del service_of  # findings are packages of the task's lock file
    return npm_audit.parse(run, task.target, task.manifest)


def _unaudited(task: ScanTask, run: RawRun, service_of: ServiceOf) -> Outcome:
    """Nothing ran: the task says why the target cannot be audited."""
    del run, service_of
    return Outcome.unavailable(task.tool.value, task.target, task.unavailable)


def _pip_audit(task: ScanTask, run: RawRun, service_of: ServiceOf) -> Outcome:
    del service_of  # findings are packages of the task's lock file
    return pip_audit.parse(run, task.target, task.manifest)


def _artifact(task: ScanTask, run: RawRun, service_of: ServiceOf) -> Outcome:
    """A scanner that writes a file instead of findings: clean when it exited 0."""
    del service_of
    if run.exit_code == 0:
        return Outcome.of(task.tool.value, task.target, [], run.tool_version)
    return Outcome.error(
        task.tool.value,
        task.target,
        last_lines(run.stderr) or f"exit {run.exit_code}",
        run.tool_version,
    )


_TRIVY = ContainerExtras(cache=Cache(name="trivy-db", env="TRIVY_CACHE_DIR"))

SCANNERS: dict[ScanTool, Scanner] = {
    s.tool: s
    for s in (
        Scanner(
            ScanTool.SEMGREP,
            "semgrep",
            _semgrep,
            requirements="semgrep.txt",
            container=ContainerExtras(rules=True),
        ),
        Scanner(ScanTool.TRIVY, "trivy", _trivy, requirements="trivy.txt", container=_TRIVY),
        Scanner(
            ScanTool.TRIVY_SBOM, "trivy", _artifact, requirements="trivy.txt", container=_TRIVY
        ),
        Scanner(
            ScanTool.PNPM_AUDIT,
            "pnpm",
            _pnpm_audit,
            pin=PNPM_VERSION,
            container=ContainerExtras(image=Image.NODE),
        ),
        Scanner(
            ScanTool.NPM_AUDIT,
            "npm",
            _npm_audit,
            container=ContainerExtras(image=Image.NODE),
        ),
        Scanner(ScanTool.UNAUDITED, "", _unaudited),
        Scanner(
            ScanTool.PIP_AUDIT,
            "pip-audit",
            _pip_audit,
            requirements="pip-audit.txt",
            needs=(("uv", UV_VERSION),),
        ),
    )
}
"""Every scanner, by the name plans and reports use."""
