"""Entry point: ``python -m runner.main``.

Configures JSON logging on stderr (see :mod:`runner.logs`), starts the HTTP server
(``/healthz``, ``/metrics``), creates the MongoDB TTL indexes of the execution and audit logs
when ``MONGO_URL`` is set (in the background: an unreachable MongoDB is logged, not fatal) and
starts the BullMQ worker on ``REDIS_URL``, then waits for SIGTERM or SIGINT, on which it stops
taking jobs, lets running ones finish (up to ``SHUTDOWN_TIMEOUT`` seconds) and exits 0. Exits 2
when the configuration is invalid and 1 when the port cannot be bound.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from runner import __version__
from runner.config import ConfigError, Settings, build_sha_from_env
from runner.execlog import DiscardExecutionLog, ExecutionLog, MongoExecutionLog
from runner.health import make_server
from runner.logs import configure_logging
from runner.metrics import RunnerMetrics
from runner.queue import QUEUE_NAME, QueueConsumer
from runner.steps import default_registry
from runner.worker import RunProcessor

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

    metrics = RunnerMetrics()
    try:
        server = make_server(settings.host, settings.port, settings.build_sha, metrics)
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
    executions = execution_log(settings.mongo_url)
    consumer = QueueConsumer(
        RunProcessor(registry, metrics, executions=executions),
        settings.redis_url,
        concurrency=settings.concurrency,
    )
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
            "queue": QUEUE_NAME,
            "execution_log": "mongodb" if settings.mongo_url else "disabled",
            "step_types": list(registry.names()),
            "log_level": settings.log_level,
        },
    )
    try:
        server_thread.start()
        if isinstance(executions, MongoExecutionLog):
            threading.Thread(
                target=ensure_indexes, args=(executions,), name="mongo-indexes", daemon=True
            ).start()
        consumer.start()
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        if not consumer.stop(timeout=SHUTDOWN_TIMEOUT):
            logger.warning("runs still busy after %.0fs; exiting anyway", SHUTDOWN_TIMEOUT)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("runner stopped")
    return 0


def execution_log(mongo_url: str) -> ExecutionLog:
    """MongoDB when ``MONGO_URL`` is set; else runs are only in the JSON log lines."""
    return MongoExecutionLog.from_url(mongo_url) if mongo_url else DiscardExecutionLog()


def ensure_indexes(executions: MongoExecutionLog) -> None:
    """Create the TTL indexes; a failure is logged (retention is then not enforced: alert)."""
    try:
        created = executions.ensure_indexes()
    except Exception as err:
        logger.error("cannot create the MongoDB TTL indexes: %s", err, extra={"error": str(err)})
        return
    logger.info("MongoDB TTL indexes ready", extra={"indexes": created})


def run() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    run()
