import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from runner.config import Settings
from runner.health import HealthServer, make_server
from runner.metrics import RunnerMetrics


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HealthServer]:
    monkeypatch.setenv("BUILD_SHA", "abc1234")
    settings = Settings.from_env()
    health = make_server("127.0.0.1", 0, settings.build_sha, RunnerMetrics())
    thread = threading.Thread(target=health.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield health
    finally:
        health.shutdown()
        health.server_close()
        thread.join(5)


def test_healthz_reports_ok_and_the_build_sha(server: HealthServer) -> None:
    url = f"http://127.0.0.1:{server.port}/healthz"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read()) == {"status": "ok", "version": "abc1234"}


def test_healthz_ignores_the_query_string(server: HealthServer) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz?probe=1", timeout=5) as r:
        assert r.status == 200


@pytest.mark.parametrize("path", ["/", "/health", "/healthz/extra"])
def test_other_paths_are_404(server: HealthServer, path: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5)
    with info.value as error:
        assert error.code == 404
        assert json.loads(error.read()) == {"error": "not found"}


def test_metrics_are_served_in_the_prometheus_text_format(server: HealthServer) -> None:
    assert server.metrics is not None
    server.metrics.run_started(1.5)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        text = r.read().decode()
    assert 'wormhole_runner_runs_total{outcome="started"} 1.0' in text
    assert "wormhole_runner_trigger_delay_seconds_count 1.0" in text
    assert "process_cpu_seconds_total" in text


def test_without_metrics_the_path_is_404() -> None:
    health = make_server("127.0.0.1", 0, "dev")
    thread = threading.Thread(target=health.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{health.port}/metrics", timeout=5)
        with info.value as error:
            assert error.code == 404
    finally:
        health.shutdown()
        health.server_close()
        thread.join(5)
