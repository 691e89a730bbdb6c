"""The scan plan as data: which scanner runs where with which command (no Dagger runtime required).

Placeholders in argv are filled by each runtime: `{rules}` is the Semgrep rule folder,
`{out}` the report folder (SBOMs are written there), `{tmp}` a scratch folder (exported
requirements).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path

from wormhole_ci.manifest import Manifest, ServiceKind, ServiceSpec
from wormhole_ci.paths import GENERATED_DIRS
from wormhole_ci.plan import UV_ENV, project_pnpm_version
from wormhole_ci.security.python_locks import (
    UnauditableLock,
    poetry_requirements,
    require_pinned,
)
from wormhole_ci.toolchains import PNPM_VERSION

RULES_PLACEHOLDER = "{rules}"
OUT_PLACEHOLDER = "{out}"
TMP_PLACEHOLDER = "{tmp}"
# Never scanned: installed dependencies and build output (their own scanners cover them).
# Semgrep otherwise phones home on every start (a version check that hangs ~100 s offline).
OFFLINE_ENV = (("SEMGREP_ENABLE_VERSION_CHECK", "0"), ("SEMGREP_SEND_METRICS", "off"))
EXCLUDED_DIRS = tuple(sorted(GENERATED_DIRS))


class Family(StrEnum):
    """What the Dagger sub-functions and CLI options select."""

    SAST = "sast"
    """Semgrep and Trivy's secret/misconfiguration scan of the source."""
    AUDIT = "audit"
    """Dependency audits: pnpm audit, npm audit and pip-audit (and a row per unaudited service)."""
    SBOM = "sbom"
    """CycloneDX SBOMs (artifacts, not findings)."""


class ScanTool(StrEnum):
    """Every scanner the plan runs; `security.scanners.SCANNERS` says what each one is."""

    SEMGREP = "semgrep"
    TRIVY = "trivy"
    """Trivy's secret/misconfiguration scan of the source, or its CVE scan of an image."""
    TRIVY_SBOM = "trivy-sbom"
    """Trivy writing a CycloneDX SBOM (an artifact, not findings)."""
    PNPM_AUDIT = "pnpm-audit"
    NPM_AUDIT = "npm-audit"
    PIP_AUDIT = "pip-audit"
    UNAUDITED = "audit"
    """No auditor for the service's ecosystem: never run, always an `unavailable` row."""


@dataclass(frozen=True)
class ScanTask:
    """One scanner run over one target."""

    tool: ScanTool
    target: str
    """`monorepo` or a service name."""
    family: Family
    workdir: str
    """Relative to the monorepo root."""
    argv: tuple[str, ...]
    pre: tuple[tuple[str, ...], ...] = ()
    """Commands that prepare the scan's input (e.g. exporting requirements)."""
    env: tuple[tuple[str, str], ...] = ()
    manifest: str = ""
    """The lock file package findings are reported against (relative to the root)."""
    artifact: str = ""
    """A file the scan writes into `{out}` that is itself a report (SBOMs)."""
    tool_version: str = ""
    """The scanner version this target needs (pnpm audit: the project's pnpm); "" is the pin."""
    inputs: tuple[tuple[str, str], ...] = ()
    """Files (name, text) each runtime writes into `{tmp}` first (requirements from poetry.lock)."""

    @property
    def executable(self) -> str:
        """The name the runtimes resolve argv[0] by: `pnpm@9.15.9` for a target's own version."""
        if not self.argv:
            return ""  # an `unavailable` row runs nothing
        return f"{self.argv[0]}@{self.tool_version}" if self.tool_version else self.argv[0]

    unavailable: str = ""
    """Why this target cannot be scanned: nothing runs, the outcome is `unavailable`."""


def image_scan(tarball: str, name: str) -> ScanTask:
    """Trivy's CVE scan of an image tarball (`docker save` or OCI archive)."""
    return ScanTask(
        tool=ScanTool.TRIVY,
        target=name,
        family=Family.SAST,
        workdir=".",
        argv=(
            "trivy",
            "image",
            "--input",
            tarball,
            "--format",
            "json",
            "--quiet",
            "--scanners",
            "vuln",
            "--list-all-pkgs=false",
        ),
    )


def rules_dir() -> Path:
    """The project's own Semgrep rules, shipped inside the package."""
    return Path(str(resources.files("wormhole_ci.security") / "semgrep" / "rules"))


def scan_plan(
    manifest: Manifest, families: frozenset[Family] = frozenset(Family)
) -> tuple[ScanTask, ...]:
    """Every scan of the monorepo, in report order."""
    tasks: list[ScanTask] = []
    excludes = [arg for d in EXCLUDED_DIRS for arg in ("--exclude", d)]
    skip_dirs = [arg for d in EXCLUDED_DIRS for arg in ("--skip-dirs", f"**/{d}")]
    if Family.SAST in families:
        tasks.append(
            ScanTask(
                tool=ScanTool.SEMGREP,
                target="monorepo",
                family=Family.SAST,
                workdir=".",
                argv=(
                    "semgrep",
                    "scan",
                    "--config",
                    RULES_PLACEHOLDER,
                    "--json",
                    "--metrics=off",
                    "--disable-version-check",
                    # keep our rule ids as written (semgrep prefixes them with the config path)
                    "--no-rewrite-rule-ids",
                    "--quiet",
                    *excludes,
                    ".",
                ),
                env=OFFLINE_ENV,
            )
        )
        tasks.append(
            ScanTask(
                tool=ScanTool.TRIVY,
                target="monorepo",
                family=Family.SAST,
                workdir=".",
                argv=(
                    "trivy",
                    "fs",
                    "--scanners",
                    "secret,misconfig",
                    "--format",
                    "json",
                    "--quiet",
                    # without it every lock file's package list fills the report
                    "--list-all-pkgs=false",
                    "--skip-db-update",
                    *skip_dirs,
                    ".",
                ),
            )
        )
    for spec in manifest.services:
        node = spec.kind in (ServiceKind.NODE, ServiceKind.NUXT)
        if Family.AUDIT in families and node:
            tasks.append(_node_audit(manifest, spec))
        if Family.AUDIT in families and spec.kind is ServiceKind.PYTHON:
            tasks.append(_python_audit(manifest, spec))
        # Hasura metadata and delivery configuration hold no packages to list.
        if Family.SBOM in families and spec.kind not in (ServiceKind.HASURA, ServiceKind.DELIVERY):
            sbom = f"{OUT_PLACEHOLDER}/sbom-{spec.name}.cdx.json"
            tasks.append(
                ScanTask(
                    tool=ScanTool.TRIVY_SBOM,
                    target=spec.name,
                    family=Family.SBOM,
                    workdir=spec.path,
                    argv=(
                        "trivy",
                        "fs",
                        "--format",
                        "cyclonedx",
                        "--quiet",
                        "--skip-db-update",
                        *skip_dirs,
                        "--output",
                        sbom,
                        ".",
                    ),
                    artifact=f"sbom-{spec.name}.cdx.json",
                )
            )
    return tuple(tasks)


def _unless_pinned(version: str) -> str:
    """A target's own pnpm version, or "" when it is the scanner's pin anyway."""
    return "" if version == PNPM_VERSION else version


# Lock files of node package managers wormhole-ci has no auditor for, and why.
_UNAUDITED_LOCKS = (
    ("yarn.lock", "yarn"),
    ("bun.lock", "bun"),
    ("bun.lockb", "bun"),
)


def _node_audit(manifest: Manifest, spec: ServiceSpec) -> ScanTask:
    """The node service's audit by its lock file, or an explicit `unavailable` row: every
    node service appears in the audit, so a missing auditor fails the policy closed."""
    service, path = spec.name, spec.path
    directory = manifest.root / path
    if (directory / "pnpm-lock.yaml").exists():
        return ScanTask(
            tool=ScanTool.PNPM_AUDIT,
            target=service,
            family=Family.AUDIT,
            workdir=path,
            argv=("pnpm", "audit", "--json"),
            manifest=f"{path}/pnpm-lock.yaml",
            tool_version=_unless_pinned(project_pnpm_version(spec, directory)),
        )
    if (directory / "package-lock.json").exists():
        return ScanTask(
            tool=ScanTool.NPM_AUDIT,
            target=service,
            family=Family.AUDIT,
            workdir=path,
            # the lock file as committed: no node_modules needed, nothing installed
            argv=("npm", "audit", "--json", "--package-lock-only"),
            manifest=f"{path}/package-lock.json",
        )
    for lock, manager in _UNAUDITED_LOCKS:
        if (directory / lock).exists():
            reason = (
                f"{path}/{lock}: wormhole-ci has no auditor for {manager}; audit it with "
                f"{manager}'s own tool, or accept the gap with --allow-unavailable"
            )
            return _unaudited(service, path, reason, f"{path}/{lock}")
    reason = (
        f"{path}/: no lock file (pnpm-lock.yaml, package-lock.json), so nothing pins what "
        "would be audited; commit the lock file"
    )
    return _unaudited(service, path, reason, "")


def _unaudited(service: str, path: str, reason: str, manifest: str) -> ScanTask:
    return ScanTask(
        tool=ScanTool.UNAUDITED,
        target=service,
        family=Family.AUDIT,
        workdir=path,
        argv=(),
        manifest=manifest,
        unavailable=reason,
    )


# pip-audit reads the requirements as written: no pip resolution, no virtualenv.
_PIP_AUDIT = ("pip-audit", "--format", "json", "--progress-spinner", "off", "--disable-pip")


def _python_audit(manifest: Manifest, spec: ServiceSpec) -> ScanTask:
    """pip-audit over the service's lock by its lock file (uv.lock, poetry.lock, a pinned
    requirements.txt), or an explicit `unavailable` row saying why it cannot be audited."""
    service, path = spec.name, spec.path
    directory = manifest.root / path
    requirements = f"{TMP_PLACEHOLDER}/{service}-requirements.txt"

    def audit(
        argv: tuple[str, ...],
        lock: str,
        *,
        pre: tuple[tuple[str, ...], ...] = (),
        env: tuple[tuple[str, str], ...] = (),
        inputs: tuple[tuple[str, str], ...] = (),
    ) -> ScanTask:
        return ScanTask(
            tool=ScanTool.PIP_AUDIT,
            target=service,
            family=Family.AUDIT,
            workdir=path,
            argv=(_PIP_AUDIT[0], *argv, *_PIP_AUDIT[1:]),
            pre=pre,
            env=env,
            manifest=f"{path}/{lock}",
            inputs=inputs,
        )

    if (directory / "uv.lock").exists():
        export = ("uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--quiet")
        # hashed, fully pinned requirements (runtime dependencies only)
        return audit(
            ("-r", requirements, "--require-hashes"),
            "uv.lock",
            pre=((*export, "-o", requirements),),
            env=UV_ENV,
        )
    try:
        if (directory / "poetry.lock").exists():
            pins = poetry_requirements(directory / "poetry.lock", f"{path}/poetry.lock")
            # every locked package pinned exactly, so no resolution is needed (--no-deps)
            return audit(
                ("-r", requirements, "--no-deps"),
                "poetry.lock",
                inputs=((f"{service}-requirements.txt", pins),),
            )
        if (directory / "requirements.txt").exists():
            text = (directory / "requirements.txt").read_text(encoding="utf-8")
            require_pinned(text, f"{path}/requirements.txt")
            hashed = "--hash" in text
            return audit(
                ("-r", "requirements.txt", "--require-hashes" if hashed else "--no-deps"),
                "requirements.txt",
            )
    except UnauditableLock as exc:
        return _unaudited(service, path, str(exc), exc.lock)
    reason = (
        f"{path}/: no lock file (uv.lock, poetry.lock or a pinned requirements.txt), so nothing "
        "pins what would be audited; commit one"
    )
    return _unaudited(service, path, reason, "")
