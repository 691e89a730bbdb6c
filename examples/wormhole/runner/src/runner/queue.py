"""The BullMQ worker: consumes the ``workflow-runs`` queue on Redis and runs each job.

``bullmq`` (BullMQ for Python, the same Lua scripts and key layout as the api's Node BullMQ)
is asyncio-based; :class:`QueueConsumer` runs its event loop in a thread of its own so the
rest of the runner stays synchronous. Steps block (HTTP calls, ``delay``), so each job runs
in a worker thread (``asyncio.to_thread``); ``RUNNER_CONCURRENCY`` jobs run at once.

A run whose steps fail makes the BullMQ job fail (:class:`RunFailedError`), so the queue's
failed count, which the api exports as ``wormhole_queue_failed_jobs``, counts failed runs.
A job whose data cannot be decoded fails the same way.

Redis being unreachable does not stop the process: the consumer logs a warning and tries
again every ``retry_delay`` seconds (``/healthz`` keeps answering; the queue alerts say why
nothing runs). It pings Redis itself before it starts a BullMQ worker, because BullMQ's own
connection retries for minutes (20 attempts, backoff up to 20 s) before it reports anything;
once running, BullMQ retries lost connections itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any, Final, Protocol

import bullmq  # pyright: ignore[reportMissingTypeStubs]
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from runner.jsonvalue import JSONObject
from runner.steps import StepValidationError
from runner.worker import Job, JobFormatError, RunProcessor

logger = logging.getLogger(__name__)

QUEUE_NAME: Final = "workflow-runs"
"""The api enqueues on this queue (api/src/queue.ts); the names must match."""
DRAIN_DELAY_SECONDS: Final = 1
"""How long an idle worker blocks on Redis; bounds how long a shutdown waits for it."""
RUN_RETRY_DELAY_MS: Final = 2000
"""BullMQ's wait before it retries after a lost connection (its default is 15 s)."""
PROBE_TIMEOUT_SECONDS: Final = 2.0


class RunFailedError(Exception):
    """Raised into BullMQ so that the job of a failed run is marked failed."""


class QueueJob(Protocol):
    """What the processor reads of a BullMQ job."""

    @property
    def id(self) -> str | None: ...

    @property
    def data(self) -> object: ...

    @property
    def timestamp(self) -> int | float: ...


def job_from_queue(job: QueueJob) -> Job:
    """The run a BullMQ job describes; its timestamp (ms) is the trigger time."""
    if not job.id:
        raise JobFormatError("job has no id")
    triggered_at = job.timestamp / 1000 if job.timestamp else None
    return Job.from_data(job.id, job.data, triggered_at=triggered_at)


async def process_queue_job(processor: RunProcessor, job: QueueJob) -> JSONObject:
    """BullMQ's processor: run the job in a thread; a failed run raises :class:`RunFailedError`.

    The return value is the job's ``returnvalue`` in Redis.
    """
    try:
        run_job = job_from_queue(job)
    except (JobFormatError, StepValidationError, ValueError) as err:
        logger.error("invalid job %s: %s", job.id, err, extra={"job_id": job.id})
        raise RunFailedError(f"invalid job: {err}") from err
    result = await asyncio.to_thread(processor.process, run_job)
    if not result.ok:
        raise RunFailedError(result.error or "run failed")
    return {"run_id": result.run_id, "status": result.status, "steps": len(result.steps)}


class QueueConsumer:
    """Consumes ``queue`` on ``redis_url`` with a BullMQ ``Worker`` until :meth:`stop`."""

    def __init__(
        self,
        processor: RunProcessor,
        redis_url: str,
        *,
        concurrency: int = 1,
        queue: str = QUEUE_NAME,
        retry_delay: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._processor = processor
        self._redis_url = redis_url
        self._concurrency = concurrency
        self._queue = queue
        self._retry_delay = retry_delay
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("consumer already started")
        self._thread = threading.Thread(target=self._run, name="queue-consumer", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop taking jobs, let running ones finish; ``True`` if everything ended in time."""
        if self._thread is None:
            return True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        while not self._stop.is_set():
            problem = await self._probe()
            if problem is not None:
                self._unavailable(problem)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._retry_delay)
                continue
            worker = self._worker()
            running = asyncio.ensure_future(worker.run())
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.done():
                await worker.close()
                with contextlib.suppress(Exception):
                    await running
                return
            stopping.cancel()
            self._unavailable(str(running.exception() or "worker stopped"))
            with contextlib.suppress(Exception):
                await worker.close(force=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._retry_delay)

    async def _probe(self) -> str | None:
        """``None`` when Redis answers a PING within ``PROBE_TIMEOUT_SECONDS``, else why not."""
        client = Redis.from_url(  # pyright: ignore[reportUnknownMemberType] - **kwargs untyped
            self._redis_url,
            socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
            socket_timeout=PROBE_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            await client.ping()  # pyright: ignore[reportUnknownMemberType]
        except (RedisError, OSError) as err:
            return str(err) or type(err).__name__
        finally:
            await client.aclose()
        return None

    def _unavailable(self, problem: str) -> None:
        logger.warning(
            "queue %s on %s unavailable: %s; retrying in %.0fs",
            self._queue,
            _redact(self._redis_url),
            problem,
            self._retry_delay,
        )

    def _worker(self) -> Any:
        async def processor(job: Any, token: str) -> JSONObject:
            return await process_queue_job(self._processor, job)

        # bullmq's own annotations are loose (a Future-returning processor, a partial options
        # TypedDict); its documented API is used as is, untyped.
        worker_class: Any = bullmq.Worker
        worker = worker_class(
            self._queue,
            processor,
            {
                "connection": self._redis_url,
                "concurrency": self._concurrency,
                "autorun": False,
                "drainDelay": DRAIN_DELAY_SECONDS,
                "runRetryDelay": RUN_RETRY_DELAY_MS,
            },
        )
        worker.on("error", _log_worker_error)
        return worker


def _log_worker_error(error: object, *_: object) -> None:
    logger.warning("queue worker error: %s", error)


def _redact(url: str) -> str:
    """``url`` without a password (``redis://:secret@host`` -> ``redis://:***@host``)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
