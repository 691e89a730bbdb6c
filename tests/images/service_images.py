"""Building and running the example's service images: the steps the image tests drive."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import EXAMPLE
from tests.images.engine import NODE_BASE, PYTHON_BASE, Engine
from wormhole_ci.paths import GENERATED_DIRS

SOURCE_URL = "https://example.invalid/wormhole"
_BUILD_TIMEOUT = 1200.0


@dataclass(frozen=True)
class ServiceImage:
    """What the tests need to know about one service's Dockerfile."""

    name: str
    port: int
    base_arg: str
    base_image: str
    source_file: str
    """A source file whose change must rebuild only the steps after the dependency install."""
    absent: tuple[str, ...]
    """Paths that must not exist in the final image (build tools, dev dependencies)."""


SERVICES: Mapping[str, ServiceImage] = {
    "api": ServiceImage(
        "api",
        3000,
        "NODE_IMAGE",
        NODE_BASE,
        "src/slug.ts",
        (
            "/app/src",
            "/app/node_modules/typescript",
            "/app/node_modules/vitest",
            "/app/node_modules/.bin/tsc",
            "/usr/local/bin/pnpm",
        ),
    ),
    "web": ServiceImage(
        "web",
        3000,
        "NODE_IMAGE",
        NODE_BASE,
        "server/utils/health.ts",
        ("/app/node_modules", "/app/.nuxt", "/app/pages", "/usr/local/bin/pnpm"),
    ),
    "runner": ServiceImage(
        "runner",
        8080,
        "PYTHON_IMAGE",
        PYTHON_BASE,
        "src/runner/health.py",
        ("/app", "/usr/local/bin/uv", "/opt/venv/bin/pytest", "/opt/venv/bin/ruff"),
    ),
}


def copy_service(name: str, dest: Path) -> Path:
    """A copy of examples/wormhole/NAME without installed dependencies or build output (the
    .dockerignore excludes them too; the copy keeps the example's own folders untouched)."""
    target = dest / name
    shutil.copytree(EXAMPLE / name, target, ignore=shutil.ignore_patterns(*GENERATED_DIRS, ".env"))
    return target


@dataclass(frozen=True)
class Build:
    tag: str
    seconds: float
    output: str

    def steps(self) -> list[tuple[str, bool]]:
        """(instruction, served from the layer cache) for each step of the build log: BuildKit's
        plain progress (`#N [stage i/n] INSTRUCTION` … `#N CACHED`) or the legacy builder's."""
        vertices = re.findall(r"^#(\d+) \[[^\]]*\d+/\d+\] (.+)$", self.output, flags=re.MULTILINE)
        if vertices:
            cached = set(re.findall(r"^#(\d+) CACHED$", self.output, flags=re.MULTILINE))
            return [(text.strip(), number in cached) for number, text in vertices]
        blocks = re.split(r"^Step \d+/\d+ : ", self.output, flags=re.MULTILINE)[1:]
        return [(block.splitlines()[0].strip(), " ---> Using cache" in block) for block in blocks]


def build_image(engine: Engine, service: ServiceImage, context: Path, tag: str, sha: str) -> Build:
    """`wormhole-ci build` of a service directory (a one-service monorepo around `context`),
    with the base image overridden; the image is then also tagged `tag`."""
    root = context.parent
    (root / "wormhole-ci.toml").write_text(
        f'[project]\nname = "wormhole"\nrepository = "{SOURCE_URL}"\n\n'
        f'[services.{service.name}]\npath = "{context.name}"\n'
    )
    logs = root / ".build-logs"
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable, "-m", "wormhole_ci", "build", "--source", str(root),
            "--tag", sha, "--version-tag", f"0.0.0-{sha[:7]}", "--log-dir", str(logs),
            "--build-arg", f"{service.base_arg}={service.base_image}",
        ],
        capture_output=True, text=True, timeout=_BUILD_TIMEOUT, env=engine.env(), check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"wormhole-ci build of {service.name} failed:\n{done.stderr}")
    engine.docker("tag", f"wormhole-{service.name}:{sha[:7]}", tag)
    output = (logs / f"build-{service.name}.log").read_text()
    return Build(tag, seconds, output)


def image_config(engine: Engine, tag: str) -> dict[str, Any]:
    return json.loads(engine.docker("image", "inspect", "--format", "{{json .Config}}", tag).stdout)


def image_size(engine: Engine, tag: str) -> int:
    return int(engine.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)


def present_paths(engine: Engine, tag: str, paths: tuple[str, ...]) -> list[str]:
    """Which of `paths` exist in the image."""
    done = engine.docker(
        "run", "--rm", "--entrypoint", "/bin/sh", tag,
        "-c", 'for p; do if [ -e "$p" ]; then echo "$p"; fi; done', "sh", *paths,
    )  # fmt: skip
    return done.stdout.split()


@dataclass(frozen=True)
class Container:
    engine: Engine
    id: str
    host_port: int

    def logs(self) -> str:
        done = self.engine.docker("logs", self.id, check=False)
        return done.stdout + done.stderr

    def state(self) -> dict[str, Any]:
        return json.loads(self.engine.docker("inspect", "--format", "{{json .State}}", self.id).stdout)  # fmt: skip

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Until the image's HEALTHCHECK reports healthy; fails early if it exits or is unhealthy."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            health = state.get("Health") or {}
            status = health.get("Status")
            if status == "healthy":
                return
            if not state.get("Running") or status == "unhealthy" or time.monotonic() > deadline:
                raise AssertionError(
                    f"container {self.id[:12]} not healthy (running={state.get('Running')}, "
                    f"health={status}); health log: {health.get('Log')}\nlogs:\n{self.logs()}"
                )
            time.sleep(1)

    def get_json(self, path: str, timeout: float = 15.0) -> Any:
        """GET `path` on the published port. A connection reset or refusal is retried until
        `timeout`: seen twice under two parallel test workers right after the container
        reported healthy (its HEALTHCHECK probes from inside; the published port goes
        through the engine's proxy). Anything else, or a reset that persists, fails."""
        url = f"http://127.0.0.1:{self.host_port}{path}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    return json.loads(response.read())
            except (OSError, http.client.RemoteDisconnected) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                transient = (ConnectionResetError, ConnectionRefusedError, http.client.RemoteDisconnected)  # fmt: skip
                if not isinstance(reason, transient) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


@contextlib.contextmanager
def running(engine: Engine, tag: str, port: int) -> Generator[Container]:
    """The image running with PORT published on a free loopback port; removed afterwards."""
    # The image's HEALTHCHECK command, probed every second instead of its production interval.
    cid = engine.docker(
        "run", "--detach", "--publish", f"127.0.0.1::{port}", "--health-interval", "1s", tag
    ).stdout.strip()  # fmt: skip
    try:
        published = engine.docker("port", cid, f"{port}/tcp").stdout.split()
        host_port = next(int(p.rsplit(":", 1)[1]) for p in published if p.startswith("127.0.0.1:"))
        yield Container(engine, cid, host_port)
    finally:
        engine.docker("rm", "--force", cid, check=False)
