"""Benchmark `wormhole-ci build`: image sizes, and cold vs warm builds per service.

For each service image of the example (on a committed copy, with the local base images the
test harness makes — see tests/images/engine.py):
  cold         `build --no-cache`: every layer rebuilt (dependencies installed from the registry)
  warm         the same build again: every layer from the engine's layer cache
  warm, 1 file one source file of the service changed: only the layers after the source copy
Prints a table with the times, the ratio warm-1-file / cold (target <= 0.3), the final
image size, its base image's size and what the Dockerfile adds on top.
Run from the repository root: `make bench`, or `PYTHONPATH=. .venv/bin/python bench/images.py`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.images.engine import NODE_BASE, PYTHON_BASE, Engine, docker_engine, ensure_base_images
from tests.images.service_images import SERVICES
from wormhole_ci.paths import GENERATED_DIRS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "wormhole"
TARGET = 0.3
BASES = ("--build-arg", f"NODE_IMAGE={NODE_BASE}", "--build-arg", f"PYTHON_IMAGE={PYTHON_BASE}")


@dataclass(frozen=True)
class Row:
    service: str
    cold: float
    warm: float
    one_file: float
    size: int
    base: int

    @property
    def ratio(self) -> float:
        return self.one_file / self.cold


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


def size(engine: Engine, image: str) -> int:
    return int(engine.docker("image", "inspect", "--format", "{{.Size}}", image).stdout)


def measure(engine: Engine, repo: Path, service: str) -> Row:
    cold, image = build(engine, repo, service, "--no-cache")
    warm, _ = build(engine, repo, service)
    source = repo / service / SERVICES[service].source_file
    comment = "#" if source.suffix == ".py" else "//"
    source.write_text(source.read_text() + f"\n{comment} bench: one changed line\n")
    one_file, _ = build(engine, repo, service)  # same commit, dirty tree: build allows it
    git(repo, "checkout", "--", ".")
    return Row(
        service,
        cold,
        warm,
        one_file,
        size(engine, image),
        size(engine, SERVICES[service].base_image),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--service", action="append", choices=sorted(SERVICES), default=[])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    services = args.service or ["api", "web", "runner"]
    with docker_engine() as engine, tempfile.TemporaryDirectory(prefix="wormhole-ci-bench-") as tmp:
        ensure_base_images(engine)
        repo = Path(tmp) / "wormhole"
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(*GENERATED_DIRS, ".env"))
        git(repo, "init", "-q")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "bench")
        rows = [measure(engine, repo, s) for s in services]
    mb = 1_000_000
    print(
        f"{'service':<8} {'cold s':>7} {'warm s':>7} {'1 file s':>8} {'1file/cold':>10} {'image MB':>9} {'base MB':>8} {'added MB':>9}"
    )
    for r in rows:
        print(
            f"{r.service:<8} {r.cold:>7.1f} {r.warm:>7.1f} {r.one_file:>8.1f} {r.ratio:>10.2f} "
            f"{r.size / mb:>9.0f} {r.base / mb:>8.0f} {(r.size - r.base) / mb:>9.0f}"
        )
    worst = max(r.ratio for r in rows)
    print(
        f"target: warm rebuild with one file changed <= {TARGET} x cold: worst {worst:.2f} -> {'met' if worst <= TARGET else 'MISSED'}"
    )
    if args.json:
        args.json.write_text(
            json.dumps([r.__dict__ | {"ratio": r.ratio} for r in rows], indent=2) + "\n"
        )
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
