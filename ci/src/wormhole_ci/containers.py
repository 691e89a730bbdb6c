"""Container specs shared by the capabilities: pinned images, paths, cache mounts, the
scanners' and the migration job's containers (no Dagger runtime required).

`dagger_runtime/` turns a spec into a Dagger container mechanically; everything that decides
what runs is here. The check containers are `check/container.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wormhole_ci.plan import Cache
from wormhole_ci.security.scanners import SCANNERS, Image
from wormhole_ci.security.tasks import ScanTool
from wormhole_ci.toolchains import PNPM_VERSION

# Exact tags. Digests are not pinned: none could be read from the vendors' own published
# material here (no registry is reachable); `dagger call` resolves and caches the tag.
NODE_IMAGE = "node:20.20.2-bookworm-slim"
PYTHON_IMAGE = "python:3.11.14-slim-bookworm"
POSTGRES_IMAGE = "postgres:15.17"
HASURA_ENGINE_IMAGE = "hasura/graphql-engine:v2.48.6"
# The same release with the Hasura CLI inside (/bin/hasura-cli).
HASURA_CLI_IMAGE = "hasura/graphql-engine:v2.48.6.cli-migrations-v3"

SOURCE_ROOT = "/src"
"""Where the monorepo (or the service's part of it) is placed in every container."""
MODULE_SOURCE = "/opt/wormhole-ci"
"""Where this package's own source is placed to install it (the Hasura check)."""
CACHE_ROOT = "/cache"


@dataclass(frozen=True)
class CacheMount:
    """A Dagger cache volume mounted where a tool's environment variable points."""

    volume: str
    path: str
    env: str


def cache_mount(cache: Cache) -> CacheMount:
    """The container side of a plan cache (the native runtime uses a host folder)."""
    # The stores behind these caches are content-addressed, so one volume per tool is
    # safe across lock files; keying by lock file would only duplicate the downloads.
    return CacheMount(
        volume=f"wormhole-ci-{cache.name}", path=f"{CACHE_ROOT}/{cache.name}", env=cache.env
    )


def container_path(relative: str) -> str:
    """The absolute path in a container of a monorepo-relative path."""
    return SOURCE_ROOT if relative in ("", ".") else f"{SOURCE_ROOT}/{relative}"


def corepack_pnpm(version: str) -> tuple[tuple[str, ...], ...]:
    """corepack ships with Node 20 and installs exactly the pnpm the plan names."""
    return (
        ("corepack", "enable", "pnpm"),
        ("corepack", "prepare", f"pnpm@{version}", "--activate"),
    )


COREPACK_ENV = (("COREPACK_ENABLE_DOWNLOAD_PROMPT", "0"),)


# -- scanners ----------------------------------------------------------------------
RULES_PATH = "/rules"
OUT_PATH = "/out"
SCRATCH_PATH = "/scratch"
REQUIREMENTS_PATH = "/opt/wormhole-ci-requirements.txt"
MODULE_REQUIREMENTS = "src/wormhole_ci/security/requirements"
"""Hash-locked scanner requirements, relative to the module source (`ci/`)."""
MODULE_RULES = "src/wormhole_ci/security/semgrep/rules"
_PIP_INSTALL = ("pip", "install", "--no-cache-dir", "--root-user-action=ignore")


@dataclass(frozen=True)
class ScannerSpec:
    """The container one scan task runs in."""

    tool: ScanTool
    image: str
    requirements: str
    """File name under MODULE_REQUIREMENTS to install with --require-hashes ("" for none)."""
    toolchain: tuple[tuple[str, ...], ...]
    caches: tuple[CacheMount, ...]
    env: tuple[tuple[str, str], ...]
    rules: bool
    """The project's Semgrep rules go to RULES_PATH."""


def scanner_spec(
    tool: ScanTool, env: tuple[tuple[str, str], ...], version: str = ""
) -> ScannerSpec:
    """Image, pinned installs and caches for a scan tool, from its `SCANNERS` entry.

    `version` is a target's own scanner version (pnpm audit: the project's pnpm).
    """
    scanner = SCANNERS[tool]
    extras = scanner.container
    caches = () if extras.cache is None else (cache_mount(extras.cache),)
    env = (*((c.env, c.path) for c in caches), *env)
    match extras.image:
        case Image.NODE:
            # npm ships with node; pnpm is activated by corepack (the target's own or the pin)
            image, toolchain = (
                NODE_IMAGE,
                corepack_pnpm(version or scanner.pin) if scanner.pin else (),
            )
            env = (*COREPACK_ENV, *env)
        case Image.PYTHON:
            # Scanner binaries come from the same hash-locked wheels the native CLI
            # installs, so both runtimes run byte-identical scanners (pinned by digest).
            image = PYTHON_IMAGE
            toolchain = (
                (*_PIP_INSTALL, "--require-hashes", "-r", REQUIREMENTS_PATH),
                *((*_PIP_INSTALL, f"{name}=={pin}") for name, pin in scanner.needs),
            )
    return ScannerSpec(
        tool,
        image,
        scanner.requirements,
        toolchain,
        caches,
        env,
        extras.rules,
    )


# -- the migration job ----------------------------------------------------------------------

MIGRATE_VENV = "/opt/wormhole-ci-venv"
MIGRATE_CACHE = CacheMount(
    volume="wormhole-ci-migrate-cache", path="/cache/wormhole-ci", env="WORMHOLE_CI_CACHE"
)
# node 20 for Prisma, Debian's python3 (3.11 on bookworm) for this package, and the
# PostgreSQL 15 client tools for pg_dump: the whole job in one container.
MIGRATE_TOOLCHAIN: tuple[tuple[str, ...], ...] = (
    ("apt-get", "update"),
    (
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "python3",
        "python3-venv",
        "postgresql-client-15",
        "ca-certificates",
    ),
    ("python3", "-m", "venv", MIGRATE_VENV),
    (f"{MIGRATE_VENV}/bin/pip", "install", "--no-cache-dir", MODULE_SOURCE),
    *corepack_pnpm(PNPM_VERSION),
)


def migrate_argv(
    *,
    service: str | None,
    tag: str | None,
    lock_timeout: int,
    allow_destructive: bool,
    no_backup: bool,
    dry_run: bool = False,
) -> tuple[str, ...]:
    """The native CLI run inside the job container; the URL only ever as `env:DATABASE_URL`.
    A dry run keeps `--backup-dir` only to name the backup a real run would write there."""
    argv = [
        f"{MIGRATE_VENV}/bin/wormhole-ci",
        "migrate",
        "--source",
        SOURCE_ROOT,
        "--database-url",
        "env:DATABASE_URL",
        "--lock-timeout",
        str(lock_timeout),
        "--output",
        f"{OUT_PATH}/migrate.json",
        "--cache-dir",
        MIGRATE_CACHE.path,
    ]
    if service:
        argv += ["--service", service]
    if tag:
        argv += ["--tag", tag]
    if allow_destructive:
        argv.append("--allow-destructive")
    argv += ["--no-backup"] if no_backup else ["--backup-dir", f"{OUT_PATH}/backups"]
    if dry_run:
        argv.append("--dry-run")
    return tuple(argv)


# -- the drift job ----------------------------------------------------------------------------

# The migration job's toolchain plus the PostgreSQL 15 server binaries: schema drift replays
# the migrations on a throwaway cluster (the shadow database).
DRIFT_TOOLCHAIN: tuple[tuple[str, ...], ...] = (
    MIGRATE_TOOLCHAIN[0],
    (*MIGRATE_TOOLCHAIN[1], "postgresql-15"),
    *MIGRATE_TOOLCHAIN[2:],
)


def drift_argv(*, environment: str, only: Sequence[str], expect_sha: str | None) -> tuple[str, ...]:
    """The native CLI run inside the drift job; secrets only through the variables the
    manifest names, set as secret variables of the container."""
    argv = [
        f"{MIGRATE_VENV}/bin/wormhole-ci",
        "drift",
        "--source",
        SOURCE_ROOT,
        "--environment",
        environment,
        "--output",
        f"{OUT_PATH}/drift.json",
        "--cache-dir",
        MIGRATE_CACHE.path,
    ]
    for area in only:
        argv += ["--only", area]
    if expect_sha:
        argv += ["--expect-sha", expect_sha]
    return tuple(argv)
