"""HTTP endpoints: ``GET /healthz`` answers ``{"status": "ok", "version": ...}``, ``GET /metrics``
the Prometheus metrics of :mod:`runner.metrics`."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from runner.metrics import CONTENT_TYPE, RunnerMetrics

logger = logging.getLogger(__name__)


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], version: str, metrics: RunnerMetrics | None = None
    ) -> None:
        self.version = version
        self.metrics = metrics
        super().__init__(address, HealthHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]


class HealthHandler(BaseHTTPRequestHandler):
    server_version = "wormhole-runner"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            version = self.server.version if isinstance(self.server, HealthServer) else "dev"
            self._send_json(HTTPStatus.OK, {"status": "ok", "version": version})
        elif (
            path == "/metrics"
            and isinstance(self.server, HealthServer)
            and self.server.metrics is not None
        ):
            self._send(HTTPStatus.OK, CONTENT_TYPE, self.server.metrics.render())
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _send_json(self, status: HTTPStatus, payload: dict[str, str]) -> None:
        self._send(status, "application/json", json.dumps(payload).encode())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


def make_server(
    host: str, port: int, version: str, metrics: RunnerMetrics | None = None
) -> HealthServer:
    """Bind (``port`` 0 picks a free port); call ``serve_forever`` to answer requests.

    Without ``metrics``, ``/metrics`` is a 404 like any other path.
    """
    return HealthServer((host, port), version, metrics)
