"""Debian's Prometheus, Alertmanager and exporters on loopback ports, loaded with the project's files."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml

from tests.observability.conftest import OBSERVABILITY

PROMETHEUS_YML = OBSERVABILITY / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = OBSERVABILITY / "alertmanager" / "alertmanager.yml"
SPEEDUP = 60
"""Every duration of the rules and of Alertmanager's grouping is divided by this."""
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}  # fmt: skip
# A range selector or a subquery: [5m], [1h30m], [30m:1m].
_RANGE = re.compile(r"\[((?:\d+(?:ms|s|m|h|d|w|y))+)(?::((?:\d+(?:ms|s|m|h|d|w|y))*))?\]")


def faster(duration: str) -> str:
    """A Prometheus duration divided by SPEEDUP (5m → 5s, 6h → 360s, 10s → 166ms)."""
    assert _DURATION.sub("", duration) == "", f"not a duration: {duration!r}"
    ms = sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION.findall(duration)) // SPEEDUP
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{max(ms, 1)}ms"


def _faster_range(match: re.Match[str]) -> str:
    step = match.group(2)
    return f"[{faster(match.group(1))}{'' if step is None else ':' + (step and faster(step))}]"


def live_prometheus_config(
    rule_files: list[Path], targets: Mapping[str, str], alertmanager: str | None, dest: Path
) -> Path:
    """The project's prometheus.yml and `rule_files`, made testable in seconds, under `dest`.

    What changes, and only that (deploy/observability/README.md, "Tested live"): scrape and
    evaluation every 1 s (timeout 1 s, as it may not exceed the interval); every rule's `for:`
    and every range selector divided by 60 (5m → 5s, 6h → 6m), thresholds untouched; each
    scrape job's target replaced by `targets[job]` (a 127.0.0.1 port) and a job without one
    left out; the rule files and the Alertmanager are this test's. Returns the config's path."""
    config = cast("dict[str, Any]", yaml.safe_load(PROMETHEUS_YML.read_text()))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    rules_dir = dest / "rules"
    rules_dir.mkdir(parents=True)
    for path in rule_files:
        doc = cast("dict[str, Any]", yaml.safe_load(path.read_text()))
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = faster(rule["for"])
                rule["expr"] = _RANGE.sub(_faster_range, rule["expr"])
        (rules_dir / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    config["rule_files"] = [str(rules_dir / "*.yml")]
    if alertmanager is None:
        del config["alerting"]
    else:
        config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    jobs: list[dict[str, Any]] = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job["static_configs"][0]["targets"] = [targets[job["job_name"]]]
            jobs.append(job)
    config["scrape_configs"] = jobs
    path = dest / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def live_alertmanager_config(receiver: str, smtp_port: int, dest: Path) -> Path:
    """The project's alertmanager.yml with only what a test must change, under `dest`:
    the secret files are temporary files (the Slack webhook URL is `receiver`/slack), the
    PagerDuty Events API is `receiver`/pagerduty, SMTP an unused loopback port, and
    group_wait/group_interval/repeat_interval divided by 60 like the rules' durations."""
    config = cast("dict[str, Any]", yaml.safe_load(ALERTMANAGER_YML.read_text()))
    secrets = dest / "secrets"
    secrets.mkdir(parents=True)
    values = {
        "smtp_password": "smtp-password-for-the-test",
        "slack_webhook_url": f"{receiver}/slack",
        "pagerduty_routing_key": "routing-key-for-the-test",
    }
    for name, value in values.items():
        (secrets / name).write_text(value)
    glob = config["global"]
    glob["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
    glob["smtp_auth_password_file"] = str(secrets / "smtp_password")
    glob["slack_api_url_file"] = str(secrets / "slack_webhook_url")
    glob["pagerduty_url"] = f"{receiver}/pagerduty"
    for item in config["receivers"]:
        for pagerduty in item.get("pagerduty_configs", []):
            pagerduty["routing_key_file"] = str(secrets / "pagerduty_routing_key")
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                route[key] = faster(route[key])
        routes.extend(route.get("routes", []))
    path = dest / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Daemon:
    name: str
    url: str
    log: Path


@contextlib.contextmanager
def daemon(
    name: str, argv: list[str], url: str, ready: str, log: Path, env: dict[str, str] | None = None
) -> Generator[Daemon]:
    """Start `argv` serving `url`, wait (15 s at most) until GET `url``ready` answers 200,
    terminate it afterwards."""
    with log.open("wb") as out:
        # Only PATH (and what the caller gives): no proxy or config of this shell leaks in.
        env = {"PATH": "/usr/bin:/bin", **(env or {})}
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited {process.returncode}: {log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}{ready}", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"{name} not ready after 15 s: {log.read_text()}")
            time.sleep(0.05)
        yield Daemon(name, url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def prometheus(binary: Path, config: Path, workdir: Path, port: int) -> Generator[Daemon]:
    """Prometheus on 127.0.0.1:`port`; the environment `staging` (its external label)."""
    argv = [
        str(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--enable-feature=expand-external-labels",
        "--log.level=warn",
    ]
    env = {"WORMHOLE_ENVIRONMENT": "staging"}
    url, log = f"http://127.0.0.1:{port}", workdir / "prometheus.log"
    with daemon("prometheus", argv, url, "/-/ready", log, env) as running:
        yield running


@contextlib.contextmanager
def alertmanager(binary: Path, config: Path, workdir: Path, port: int) -> Generator[Daemon]:
    """Alertmanager on 127.0.0.1:`port`, alone (no gossip cluster)."""
    argv = [
        str(binary),
        f"--config.file={config}",
        f"--storage.path={workdir / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    url, log = f"http://127.0.0.1:{port}", workdir / "alertmanager.log"
    with daemon("alertmanager", argv, url, "/-/ready", log) as running:
        yield running


def firing(prometheus_url: str) -> list[dict[str, Any]]:
    """Prometheus' alerts in state firing (/api/v1/alerts): labels, annotations, state."""
    response = httpx.get(f"{prometheus_url}/api/v1/alerts", timeout=5)
    response.raise_for_status()
    alerts = cast("list[dict[str, Any]]", response.json()["data"]["alerts"])
    return [a for a in alerts if a["state"] == "firing"]


def query(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's vector."""
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=5)
    response.raise_for_status()
    return cast("list[dict[str, Any]]", response.json()["data"]["result"])


@dataclass
class Receiver:
    """What Alertmanager sent to the loopback Slack webhook and PagerDuty Events API."""

    url: str
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list[tuple[str, dict[str, Any]]])  # fmt: skip
    lock: threading.Lock = field(default_factory=threading.Lock)

    def slack(self) -> list[dict[str, Any]]:
        with self.lock:
            return [body for path, body in self.received if path == "/slack"]

    def pagerduty(self) -> list[dict[str, Any]]:
        with self.lock:
            return [body for path, body in self.received if path == "/pagerduty"]


@contextlib.contextmanager
def receiver() -> Generator[Receiver]:
    """A loopback HTTP server recording every JSON notification, answering as Slack (200)
    and PagerDuty (202) do."""
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                state.received.append((self.path, json.loads(body)))
            status, answer = (202, b'{"status":"success"}') if self.path == "/pagerduty" else (200, b"ok")  # fmt: skip
            self.send_response(status)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def metric_names_of(exposition: str) -> set[str]:
    """The series names of a text exposition; a histogram's or summary's base name too."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.split(r"[{\s]", line, maxsplit=1)[0]
        names.add(name)
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix):
                names.add(name.removesuffix(suffix))
    return names
