"""Benchmark `wormhole-ci build`: image sizes, and cold vs warm builds per service.

For each service image of the example (on a committed copy, with the local base images the
test harness makes — see tests/images/engine.py):
  cold         `build --no-cache` after the engine's build cache (cache mounts included) is
               pruned: every layer rebuilt, dependencies installed from the registry
  warm         the same build again: every layer from the engine's layer cache
  warm, 1 file one source file of the service changed: only the layers after the source copy
web is measured twice: a server file (Nuxt's build cache keeps the Vue bundles, only Nitro
rebuilds) and a page (Vue client, Vue server and Nitro bundles all rebuilt).
  native floor for web, the same one-file change built natively in the same run (`nuxt build`
               with its own build cache warm, dependencies installed): what Nuxt itself needs
               for that change, which no image build can beat (Node 20 is pinned by the
               specification, so Nuxt 4 / Vite 8's faster builds are out)
Each one-file rebuild (and, for web, its native floor) is the median of --samples runs,
interleaved image / native, each with a different changed line (the same line twice would be a
cache hit in both). Prints a table with the times, the ratio against each target, the final image size, its base
image's size and what the Dockerfile adds on top. Targets: api and runner one-file rebuild
<= 0.3 x cold; web one-file rebuild <= 1.2 x the native floor. Exits 0 only when all hold.
Run from the repository root: `make bench`, or `PYTHONPATH=. .venv/bin/python bench/images.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.images.engine import NODE_BASE, PYTHON_BASE, Engine, docker_engine, ensure_base_images
from tests.images.service_images import SERVICES
from wormhole_ci.images.engine import DOCKER_CLIENT_VARIABLE
from wormhole_ci.paths import GENERATED_DIRS
from wormhole_ci.toolchains import PNPM_VERSION, Provisioner, default_cache_dir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "wormhole"
TARGET = 0.3
FLOOR_TARGET = 1.2
BASES = ("--build-arg", f"NODE_IMAGE={NODE_BASE}", "--build-arg", f"PYTHON_IMAGE={PYTHON_BASE}")


# Further one-file rebuilds measured after the service's own source file.
MORE_FILES = {"web": ("pages/index.vue",)}


@dataclass(frozen=True)
class Row:
    service: str
    changed: str
    cold: float
    warm: float
    one_file: float
    size: int
    base: int
    floor: float | None = None
    """The native `nuxt build` of the same change (web only)."""

    @property
    def ratio(self) -> float:
        """Against the row's target: the native floor when there is one, else the cold build."""
        return self.one_file / (self.floor or self.cold)

    @property
    def target(self) -> float:
        return FLOOR_TARGET if self.floor else TARGET

    @property
    def basis(self) -> str:
        return "native" if self.floor else "cold"


def git(root: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.email=bench@example.com",
            "-c",
            "user.name=bench",
            "-C",
            str(root),
            *args,
        ],
        check=True,
        capture_output=True,
    )


def build(engine: Engine, repo: Path, service: str, *extra: str) -> tuple[float, str]:
    """Seconds for one `wormhole-ci build` and the built image's name."""
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wormhole_ci",
            "build",
            "--source",
            str(repo),
            "--service",
            service,
            *BASES,
            *extra,
        ],
        capture_output=True,
        text=True,
        env=engine.env(),
        timeout=1800,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"build of {service} failed:\n{done.stderr}")
    return seconds, done.stdout.split("\t")[1]


def image_size(engine: Engine, image: str) -> int:
    return int(engine.docker("image", "inspect", "--format", "{{.Size}}", image).stdout)


def describe_engine(engine: Engine) -> str:
    """The engine `wormhole-ci build` picks in this environment."""
    probe = "from wormhole_ci.images.engine import detect_engine; print(detect_engine().describe())"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=engine.env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def prune_build_cache(engine: Engine) -> None:
    """Empty the engine's build cache, cache mounts included (BuildKit keeps those across
    `--no-cache` builds), so that the cold build starts from nothing but the base images."""
    env = engine.env()
    client = env.get(DOCKER_CLIENT_VARIABLE, "docker")
    subprocess.run(
        [client, "builder", "prune", "--all", "--force"],
        env={**env, "DOCKER_BUILDKIT": "1"},
        capture_output=True,
        check=True,
        timeout=600,
    )


def changed(repo: Path, service: str, relative: str, sample: int) -> None:
    """Append a comment line, numbered by `sample`, to one source file (`git checkout`
    reverts it)."""
    source = repo / service / relative
    comment = {".py": "# {}", ".vue": "<!-- {} -->"}.get(source.suffix, "// {}")
    line = comment.format(f"bench: one changed line, sample {sample}")
    source.write_text(source.read_text() + "\n" + line + "\n")


def change_one_file(engine: Engine, repo: Path, service: str, relative: str, sample: int) -> float:
    """Seconds for a rebuild after one source file changed (then reverted)."""
    changed(repo, service, relative, sample)
    try:
        seconds, _ = build(engine, repo, service)  # same commit, dirty tree: build allows it
    finally:
        git(repo, "checkout", "--", ".")
    return seconds


class NativeNuxt:
    """`nuxt build` of the web service on the host, as a developer runs it: the floor."""

    def __init__(self, repo: Path) -> None:
        cache = default_cache_dir()
        tools = Provisioner(cache).provision([("pnpm", PNPM_VERSION)], {"pnpm": ["web"]})
        self.web = repo / "web"
        self.env = {
            **os.environ,
            "CI": "true",
            "NUXT_TELEMETRY_DISABLED": "1",
            "pnpm_config_store_dir": str(cache / "pnpm-store"),
        }
        run(tools.resolve(("pnpm", "install", "--frozen-lockfile")), self.web, self.env)
        self.build()  # node_modules/.cache (Nuxt build cache, jiti) warm, as in the image

    def build(self) -> float:
        started = time.monotonic()
        run([str(self.web / "node_modules" / ".bin" / "nuxt"), "build"], self.web, self.env)
        return time.monotonic() - started

    def one_file(self, relative: str, sample: int) -> float:
        changed(self.web.parent, "web", relative, sample)
        try:
            return self.build()
        finally:
            git(self.web.parent, "checkout", "--", ".")


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")


def measure(engine: Engine, repo: Path, native: Path, service: str, samples: int) -> list[Row]:
    prune_build_cache(engine)
    cold, image = build(engine, repo, service, "--no-cache")
    warm, _ = build(engine, repo, service)
    size = image_size(engine, image)
    base = image_size(engine, SERVICES[service].base_image)
    files = (SERVICES[service].source_file, *MORE_FILES.get(service, ()))
    nuxt = NativeNuxt(native) if service == "web" else None
    rows: list[Row] = []
    for name in files:
        image_runs: list[float] = []
        native_runs: list[float] = []
        for sample in range(samples):
            # Interleaved, so that a slow spell of the machine weighs on both sides alike.
            image_runs.append(change_one_file(engine, repo, service, name, sample))
            if nuxt:
                native_runs.append(nuxt.one_file(name, sample))
        floor = statistics.median(native_runs) if native_runs else None
        rows.append(
            Row(service, name, cold, warm, statistics.median(image_runs), size, base, floor)
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--service", action="append", choices=sorted(SERVICES), default=[])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument(
        "--samples",
        type=int,
        default=3,
        help="one-file rebuilds per changed file (median reported; default 3)",
    )
    args = parser.parse_args()
    services = args.service or ["api", "web", "runner"]
    with docker_engine() as engine, tempfile.TemporaryDirectory(prefix="wormhole-ci-bench-") as tmp:
        ensure_base_images(engine)
        repo = Path(tmp) / "wormhole"
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(*GENERATED_DIRS, ".env"))
        git(repo, "init", "-q")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "bench")
        # the native builds get their own copy: the image builds never see node_modules or .nuxt
        native = Path(tmp) / "native"
        shutil.copytree(repo, native, symlinks=True)
        print(f"engine: {describe_engine(engine)}", flush=True)
        rows = [row for s in services for row in measure(engine, repo, native, s, args.samples)]
    mb = 1_000_000
    print(
        f"{'service':<8} {'changed file':<24} {'cold s':>7} {'warm s':>7} {'1 file s':>8} {'native s':>8} {'ratio':>6} {'vs':>6} {'target':>6} {'image MB':>9} {'base MB':>8} {'added MB':>9}"
    )
    for r in rows:
        floor = f"{r.floor:>8.1f}" if r.floor else f"{'-':>8}"
        print(
            f"{r.service:<8} {r.changed:<24} {r.cold:>7.1f} {r.warm:>7.1f} {r.one_file:>8.1f} {floor} "
            f"{r.ratio:>6.2f} {r.basis:>6} {r.target:>6.1f} "
            f"{r.size / mb:>9.0f} {r.base / mb:>8.0f} {(r.size - r.base) / mb:>9.0f}"
        )
    missed = [r for r in rows if r.ratio > r.target]
    print(
        f"targets: one-file rebuild <= {TARGET} x cold (api, runner), <= {FLOOR_TARGET} x the "
        f"native nuxt build of the same change (web): "
        + (
            "all met"
            if not missed
            else "MISSED " + ", ".join(f"{r.service} {r.changed}" for r in missed)
        )
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    r.__dict__ | {"ratio": r.ratio, "basis": r.basis, "target": r.target}
                    for r in rows
                ],
                indent=2,
            )
            + "\n"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
