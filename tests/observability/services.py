"""The example api and runner built and started on loopback ports, beside a real Redis."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import EXAMPLE
from wormhole_ci.paths import GENERATED_DIRS
from wormhole_ci.toolchains import PNPM_VERSION, Provisioner, default_cache_dir

SETUP_TIMEOUT = 300
T = TypeVar("T")


def redis_server_or_skip() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        reason = "redis-server is not installed (Debian package redis-server; make engine-deps)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true needs it", pytrace=False)
        pytest.skip(f"{reason}; skipped here (fails when CI=true)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


def post_json(url: str, payload: object) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    """``probe()`` until it returns something truthy (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except (OSError, urllib.error.URLError) as err:
            result, last = None, err
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last})")


def sample(metrics: str, name: str, labels: str = "") -> float | None:
    """The value of one series in a Prometheus text exposition (labels as written)."""
    pattern = re.escape(f"{name}{{{labels}}}" if labels else name) + r" ([0-9.eE+-]+)$"
    found = re.search(pattern, metrics, flags=re.MULTILINE)
    return float(found.group(1)) if found else None


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=SETUP_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv)} in {cwd}:\n{done.stdout}\n{done.stderr}"


def build_api(pnpm: str, api: Path, cache: Path) -> None:
    env = {
        **os.environ,
        "CI": "true",
        "pnpm_config_store_dir": str(cache / "pnpm-store"),
        "pnpm_config_cache_dir": str(cache / "pnpm-cache"),
    }
    run([pnpm, "install", "--frozen-lockfile", "--prefer-offline"], api, env)
    run([pnpm, "exec", "prisma", "generate"], api, env)
    run([pnpm, "run", "build"], api, env)


def build_runner(uv: str, runner: Path, cache: Path) -> None:
    env = {**os.environ, "UV_CACHE_DIR": str(cache / "uv"), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    run([uv, "sync", "--frozen", "--no-dev"], runner, env)


def copy_service(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copytree(EXAMPLE / name, target, ignore=shutil.ignore_patterns(*GENERATED_DIRS, ".env"))
    return target


def build_both(dest: Path) -> tuple[Path, Path]:
    """Copies of the example api and runner under `dest`, built concurrently with the pnpm
    store and uv cache that ``wormhole-ci check`` uses: (api, runner)."""
    cache = default_cache_dir()
    host = Provisioner(cache).provision(
        [("pnpm", PNPM_VERSION), ("uv", "")], {"pnpm": ["api"], "uv": ["runner"]}
    )
    pnpm, uv = host.resolve(("pnpm",))[0], host.resolve(("uv",))[0]
    api_dir, runner_dir = copy_service("api", dest), copy_service("runner", dest)
    with ThreadPoolExecutor(2) as pool:
        builds = [
            pool.submit(build_api, pnpm, api_dir, cache),
            pool.submit(build_runner, uv, runner_dir, cache),
        ]
        for build in builds:
            build.result()
    return api_dir, runner_dir


def base_env() -> dict[str, str]:
    """This process's environment without what would configure a service by accident."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PORT", "REDIS"))}


def api_command(api_dir: Path, redis_url: str, port: int) -> tuple[list[str], dict[str, str]]:
    env = {**base_env(), "PORT": str(port), "REDIS_URL": redis_url, "BUILD_SHA": "live"}
    return ["node", "dist/index.js"], env


def runner_command(
    runner_dir: Path, redis_url: str, port: int, **extra: str
) -> tuple[list[str], dict[str, str]]:
    env = {
        **base_env(),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "REDIS_URL": redis_url,
        "MONGO_URL": "",
        "BUILD_SHA": "live",
        **extra,
    }
    return [str(runner_dir / ".venv" / "bin" / "python"), "-m", "runner.main"], env


@dataclass
class Service:
    name: str
    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (every line must be one)."""
        text = self.log.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired as err:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"{self.name} did not stop on SIGTERM:\n{self.log.read_text()}"
            ) from err


@contextlib.contextmanager
def started(name: str, argv: list[str], cwd: Path, env: dict[str, str], port: int) -> Generator[Service]:  # fmt: skip
    log = cwd.parent / f"{name}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=stderr, stderr=subprocess.STDOUT, text=True
        )
    service = Service(name, process, port, log)
    try:
        wait_until(f"{name} /healthz", lambda: get(f"{service.url}/healthz"))
        yield service
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def redis_command(url: str, *args: str) -> bytes:
    """One command to the Redis at `url` (RESP over a socket); the raw reply line."""
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(request.encode())
        return conn.recv(4096)


@contextlib.contextmanager
def redis(binary: str, workdir: Path) -> Generator[str]:
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until("redis-server", lambda: redis_command(url, "PING").startswith(b"+PONG"), 10)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=10)
