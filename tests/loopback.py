"""Serve a contract server's handler on 127.0.0.1:<free port> for the length of a `with`."""

from __future__ import annotations

import threading
from collections.abc import Generator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serve_loopback(handler: type[BaseHTTPRequestHandler]) -> Generator[str]:
    """Run `handler` on a free loopback port; yields its base URL, and stops the server on
    exit (within the short poll below, not the default 0.5 s)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{int(httpd.server_address[1])}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
