"""The real Prometheus Pushgateway (Debian's prometheus-pushgateway) on a loopback port, and
reading back what it exposes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

BINARY = "prometheus-pushgateway"
MISSING = (
    f"{BINARY} is not installed (Debian package prometheus-pushgateway; `make test` installs "
    "it as root)"
)


def pushgateway_binary() -> str:
    """The binary, else a skip saying so, except under CI (`CI=true`), where it fails: CI must
    not pass by skipping what it is there to prove."""
    path = shutil.which(BINARY)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{MISSING}; CI=true needs it", pytrace=False)
        pytest.skip(f"{MISSING}; the Pushgateway tests are skipped here (they fail when CI=true)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Gateway:
    url: str
    auth: tuple[str, str] | None = None

    def exposition(self) -> str:
        """The gateway's /metrics, as Prometheus scrapes it."""
        response = httpx.get(f"{self.url}/metrics", auth=self.auth, timeout=5)
        response.raise_for_status()
        return response.text

    def samples(self) -> list[Sample]:
        """Every series of the job wormhole-ci."""
        return [
            Sample(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(self.exposition())
            for s in family.samples
            if s.labels.get("job") == "wormhole-ci" and s.name.startswith("wormhole_ci_")
        ]

    def value(self, name: str, command: str, environment: str) -> tuple[dict[str, str], float]:
        """The one series `name` of a group: its labels and value."""
        found = [
            s
            for s in self.samples()
            if s.name == name
            and s.labels["command"] == command
            and s.labels["environment"] == environment
        ]
        assert len(found) == 1, (name, command, environment, found)
        return found[0].labels, found[0].value

    def wipe(self) -> None:
        """Delete every group (the admin API, enabled for the tests)."""
        response = httpx.put(f"{self.url}/api/v1/admin/wipe", auth=self.auth, timeout=5)
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 5  # 202: the gateway wipes asynchronously
        while self.samples():
            assert time.monotonic() < deadline, "the gateway was not wiped within 5 s"
            time.sleep(0.02)


@contextmanager
def run_pushgateway(
    workdir: Path, *, basic_auth: tuple[str, str, str] | None = None
) -> Generator[Gateway]:
    """Start the gateway (no persistence: Debian's default file is under /var/lib), wait until
    it is ready, stop it afterwards. `basic_auth` is (user, password, bcrypt hash)."""
    binary = pushgateway_binary()
    port = free_port()
    argv = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        "--persistence.file=",
        "--web.enable-admin-api",
        "--log.level=warn",
    ]
    if basic_auth is not None:
        config = workdir / "web.yml"
        config.write_text(f"basic_auth_users:\n  {basic_auth[0]}: {basic_auth[2]}\n")
        argv.append(f"--web.config.file={config}")
    log = workdir / f"pushgateway-{port}.log"
    auth = (basic_auth[0], basic_auth[1]) if basic_auth else None
    gateway = Gateway(f"http://127.0.0.1:{port}", auth)
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(f"{BINARY} exited {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{gateway.url}/-/ready", auth=auth, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{BINARY} not ready after 15 s: {log.read_text()}")
            time.sleep(0.05)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
