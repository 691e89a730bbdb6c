import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line must be one JSON object."""
    entries: list[dict[str, Any]] = [json.loads(line) for line in stderr.splitlines()]
    assert all(isinstance(entry, dict) for entry in entries)
    return entries


def get_health(port: int, deadline: float) -> dict[str, str]:
    url = f"http://127.0.0.1:{port}/healthz"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                assert response.status == 200
                body: dict[str, str] = json.loads(response.read())
                return body
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def get_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        assert response.status == 200
        text: str = response.read().decode()
        return text


def test_service_serves_health_and_metrics_without_redis_and_exits_cleanly_on_sigterm() -> None:
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "BUILD_SHA": "test-sha-42",
        "RUNNER_CONCURRENCY": "2",
        # nothing listens there: the runner must still serve /healthz and /metrics
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "MONGO_URL": "",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "runner.main"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert get_health(port, time.monotonic() + 15) == {
            "status": "ok",
            "version": "test-sha-42",
        }
        assert 'wormhole_runner_runs_total{outcome="started"} 0.0' in get_text(port, "/metrics")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    entries = json_lines(stderr)
    messages = [entry["message"] for entry in entries]
    assert messages[0] == "runner started"
    assert messages[-1] == "runner stopped"
    assert messages.count("received SIGTERM, shutting down") == 1, messages
    # The unreachable queue is reported, not fatal. A probe in flight when the signal lands
    # may still report once after the shutdown line (the queue stops after the HTTP server),
    # so the retry lines are allowed on both sides of it.
    others = [m for m in messages[1:-1] if m != "received SIGTERM, shutting down"]
    assert all("unavailable" in m for m in others), messages
    startup = entries[0]
    assert (
        startup.items()
        >= {
            "level": "INFO",
            "logger": "runner",
            "service": "runner",
            "tenant_id": None,
            "run_id": None,
            "version": "test-sha-42",
            "host": "127.0.0.1",
            "port": port,
            "concurrency": 2,
            "queue": "workflow-runs",
            "execution_log": "disabled",
            "step_types": ["delay", "http", "transform"],
        }.items()
    )
    assert startup["time"].endswith("Z")


def test_invalid_configuration_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runner.main"],
        env={**os.environ, "PORT": "not-a-port", "BUILD_SHA": "bad-config-sha"},
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert result.returncode == 2
    [entry] = json_lines(result.stderr)
    assert entry["level"] == "ERROR"
    assert entry["version"] == "bad-config-sha"
    assert entry["message"] == "invalid configuration: PORT must be an integer, got 'not-a-port'"
