"""Alertmanager: the configuration is valid for amtool, every severity/team goes where the
README says, and the inhibition rules hold on a real Alertmanager."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.observability.conftest import OBSERVABILITY, debian_tool

CONFIG = OBSERVABILITY / "alertmanager" / "alertmanager.yml"

# severity, team → the receivers, in the order Alertmanager notifies them
ROUTES = [
    ("critical", "backend", ["pagerduty", "slack-backend"]),
    ("critical", "workflows", ["pagerduty", "slack-workflows"]),
    ("critical", "platform", ["pagerduty", "slack-platform"]),
    ("warning", "backend", ["slack-backend"]),
    ("warning", "workflows", ["slack-workflows"]),
    ("warning", "platform", ["slack-platform"]),
    ("info", "backend", ["email-backend"]),
    ("info", "workflows", ["email-workflows"]),
    ("info", "platform", ["email-platform"]),
    # never dropped: an unknown team still pages when critical, else reaches the platform list
    ("critical", "unknown", ["pagerduty", "email-platform"]),
    ("warning", "unknown", ["email-platform"]),
    ("info", "unknown", ["email-platform"]),
    ("", "", ["email-platform"]),
    ("", "backend", ["email-platform"]),
]


@pytest.mark.ops
def test_amtool_check_config(amtool: Path) -> None:
    done = subprocess.run(
        [amtool, "check-config", CONFIG], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.ops
@pytest.mark.parametrize(("severity", "team", "receivers"), ROUTES)
def test_route(amtool: Path, severity: str, team: str, receivers: list[str]) -> None:
    labels = ["alertname=Test", "environment=production", "service=api"]
    labels += [f"severity={severity}"] if severity else []
    labels += [f"team={team}"] if team else []
    done = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().split(",") == receivers


def test_every_receiver_is_routed_and_secrets_are_files() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    names = {r["name"] for r in config["receivers"]}
    routed = {config["route"]["receiver"]} | {r["receiver"] for r in config["route"]["routes"]}
    assert names == routed
    text = CONFIG.read_text()
    for secret in ("smtp_auth_password:", "api_url:", "routing_key:", "service_key:"):
        assert f" {secret}" not in text, f"{secret} inline: secrets are *_file only"
    assert config["global"]["smtp_auth_password_file"].startswith("/etc/alertmanager/secrets/")
    assert config["global"]["slack_api_url_file"].startswith("/etc/alertmanager/secrets/")
    assert config["route"]["group_by"] == ["alertname", "environment", "service"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on loopback with the project's configuration (the secret files
    under tmp_path); its base URL."""
    binary = debian_tool("prometheus-alertmanager", "prometheus-alertmanager")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value in [
        ("smtp_password", "x"),
        ("slack_webhook_url", "http://127.0.0.1:9/slack"),
        ("pagerduty_routing_key", "x"),
    ]:
        (secrets / name).write_text(value)
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.read_text().replace("/etc/alertmanager/secrets", str(secrets)))
    port = _free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError:
                assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
                assert time.monotonic() < deadline, "alertmanager not ready in 20 s"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)


def _post(url: str, alerts: list[dict[str, object]]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def _inhibited(url: str) -> dict[tuple[str, str, str], bool]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
        alerts = json.load(response)
    return {
        (a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["environment"]): bool(
            a["status"]["inhibitedBy"]
        )
        for a in alerts
    }


def _alert(name: str, severity: str, environment: str, service: str) -> dict[str, object]:
    labels = {
        "alertname": name,
        "severity": severity,
        "environment": environment,
        "service": service,
        "team": "platform",
    }
    return {"labels": labels, "annotations": {"summary": name}}


@pytest.mark.ops
def test_inhibition(alertmanager: str) -> None:
    """critical silences the warning of the same alert and environment only; TargetDown
    silences its own service's other alerts in its environment only."""
    _post(
        alertmanager,
        [
            _alert("ApiHighErrorRate", "critical", "production", "api"),
            _alert("ApiHighErrorRate", "warning", "production", "api"),
            _alert("ApiHighErrorRate", "warning", "staging", "api"),
            _alert("RedisMemoryHigh", "warning", "production", "redis"),
            _alert("TargetDown", "warning", "production", "postgres"),
            _alert("PostgresConnectionsNearMax", "critical", "production", "postgres"),
            _alert("PostgresConnectionsNearMax", "critical", "staging", "postgres"),
        ],
    )
    assert _inhibited(alertmanager) == {
        ("ApiHighErrorRate", "critical", "production"): False,
        ("ApiHighErrorRate", "warning", "production"): True,
        ("ApiHighErrorRate", "warning", "staging"): False,
        ("RedisMemoryHigh", "warning", "production"): False,
        ("TargetDown", "warning", "production"): False,
        ("PostgresConnectionsNearMax", "critical", "production"): True,
        ("PostgresConnectionsNearMax", "critical", "staging"): False,
    }
    # grouped by alertname, environment and service, per receiver of the route
    with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts/groups", timeout=5) as response:
        groups = json.load(response)
    found = {
        (g["receiver"]["name"], tuple(sorted(g["labels"].items())), len(g["alerts"]))
        for g in groups
    }
    api = (("alertname", "ApiHighErrorRate"), ("environment", "production"), ("service", "api"))
    assert ("pagerduty", api, 1) in found  # the critical one
    assert ("slack-platform", api, 2) in found  # both severities share the group
    postgres = (
        ("alertname", "PostgresConnectionsNearMax"),
        ("environment", "staging"),
        ("service", "postgres"),
    )
    assert ("pagerduty", postgres, 1) in found
