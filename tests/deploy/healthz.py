"""/healthz servers on loopback whose reported version a test (or a deployment) sets."""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Health:
    versions: dict[str, str] = field(default_factory=dict[str, str])
    ports: dict[str, int] = field(default_factory=dict[str, int])
    hits: int = 0


@contextmanager
def run_health(services: Sequence[str]) -> Generator[Health]:
    """One server per service on 127.0.0.1:<free port>, answering {"version": …}."""
    state = Health()
    servers: list[ThreadingHTTPServer] = []
    for service in services:

        class Handler(BaseHTTPRequestHandler):
            name = service

            def do_GET(self) -> None:
                state.hits += 1
                version = state.versions.get(self.name, "dev")
                body = json.dumps({"status": "ok", "version": version}).encode()
                self.send_response(200 if self.path == "/healthz" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        state.ports[service] = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
    try:
        yield state
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
