"""Entry point: ``python -m runner.main``.

Starts the health server and the worker pool, then waits for SIGTERM or SIGINT, on which it
stops accepting health requests, lets running jobs finish (up to ``SHUTDOWN_TIMEOUT`` seconds)
and exits 0. Exits 2 when the configuration is invalid and 1 when the port cannot be bound.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from runner import __version__
from runner.config import ConfigError, Settings
from runner.health import make_server
from runner.steps import default_registry
from runner.worker import InMemoryQueue, Worker

logger = logging.getLogger("runner")

SHUTDOWN_TIMEOUT = 10.0


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        logger.error("invalid configuration: %s", err)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    try:
        server = make_server(settings.host, settings.port, settings.build_sha)
    except OSError as err:
        logger.error("cannot listen on %s:%d: %s", settings.host, settings.port, err)
        return 1
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    registry = default_registry()
    worker = Worker(InMemoryQueue(), registry, concurrency=settings.concurrency)
    server_thread = threading.Thread(target=server.serve_forever, name="health", daemon=True)
    try:
        server_thread.start()
        worker.start()
        logger.info(
            "runner %s (build %s) listening on %s:%d with %d workers; step types: %s",
            __version__,
            settings.build_sha,
            settings.host,
            server.port,
            settings.concurrency,
            ", ".join(registry.names()),
        )
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        if not worker.stop(timeout=SHUTDOWN_TIMEOUT):
            logger.warning("workers still busy after %.0fs; exiting anyway", SHUTDOWN_TIMEOUT)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("stopped")
    return 0


def run() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    run()
