"""Entry point: ``python -m runner.main``.

Configures JSON logging on stderr (see :mod:`runner.logs`), starts the health server and the
worker pool, then waits for SIGTERM or SIGINT, on which it stops accepting health requests,
lets running jobs finish (up to ``SHUTDOWN_TIMEOUT`` seconds) and exits 0. Exits 2 when the
configuration is invalid and 1 when the port cannot be bound.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from runner import __version__
from runner.config import ConfigError, Settings, build_sha_from_env
from runner.health import make_server
from runner.logs import configure_logging
from runner.steps import default_registry
from runner.worker import InMemoryQueue, Worker

logger = logging.getLogger("runner")

SHUTDOWN_TIMEOUT = 10.0


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        configure_logging(Settings(build_sha=build_sha_from_env()))
        logger.error("invalid configuration: %s", err)
        return 2
    configure_logging(settings)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    try:
        server = make_server(settings.host, settings.port, settings.build_sha)
    except OSError as err:
        logger.error(
            "cannot listen on %s:%d: %s",
            settings.host,
            settings.port,
            err,
            extra={"host": settings.host, "port": settings.port},
        )
        return 1
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    registry = default_registry()
    worker = Worker(InMemoryQueue(), registry, concurrency=settings.concurrency)
    server_thread = threading.Thread(target=server.serve_forever, name="health", daemon=True)
    # Logged before the health server answers, so "started" always precedes anything a
    # client can trigger (a SIGTERM right after the first /healthz, say).
    logger.info(
        "runner started",
        extra={
            "package_version": __version__,
            "host": settings.host,
            "port": server.port,
            "concurrency": settings.concurrency,
            "step_types": list(registry.names()),
            "log_level": settings.log_level,
        },
    )
    try:
        server_thread.start()
        worker.start()
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        if not worker.stop(timeout=SHUTDOWN_TIMEOUT):
            logger.warning("workers still busy after %.0fs; exiting anyway", SHUTDOWN_TIMEOUT)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("runner stopped")
    return 0


def run() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    run()
