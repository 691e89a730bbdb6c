import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from runner.config import Settings
from runner.health import HealthServer, make_server


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HealthServer]:
    monkeypatch.setenv("BUILD_SHA", "abc1234")
    settings = Settings.from_env()
    health = make_server("127.0.0.1", 0, settings.build_sha)
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
