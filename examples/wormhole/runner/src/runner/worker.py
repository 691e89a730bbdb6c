"""Job queue interface and the worker pool that consumes it.

The worker depends only on :class:`JobQueue`, which has one method: ``get(timeout)`` returns
the next job or ``None`` when none arrived within ``timeout`` seconds. :class:`InMemoryQueue`
is the implementation shipped here (used by ``runner.main`` and the tests); a broker-backed
queue plugs in by implementing the same method and decoding messages with
:meth:`Job.from_json`.

Each of ``concurrency`` threads loops: poll the queue, run the job's step through the
:class:`~runner.steps.StepRegistry`, hand the :class:`JobResult` to the sink. ``stop()`` lets
running jobs finish and leaves queued jobs in the queue.

Every job logs ``job started`` and then ``job finished`` or ``job failed`` (with
``duration_ms``), carrying ``job_id``, ``step``, ``step_type`` and, when the job has them,
``run_id`` and ``tenant_id`` as structured fields.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from runner.jsonvalue import JSONObject, JSONValue, to_json_object
from runner.steps import StepContext, StepDefinition, StepRegistry, StepResult

logger = logging.getLogger(__name__)


class JobFormatError(ValueError):
    """A queued message is not a valid job."""


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    step: StepDefinition
    input: JSONObject
    run_id: str | None = None
    tenant_id: str | None = None

    @classmethod
    def from_json(cls, message: str | bytes) -> Job:
        """Decode ``{"id": str, "step": {...}, "input": {...}, "run_id": str, "tenant_id": str}``.

        ``input`` defaults to ``{}``; ``run_id`` and ``tenant_id`` are optional.
        """
        try:
            payload = to_json_object(json.loads(message), "job")
        except ValueError as err:
            raise JobFormatError(f"invalid job message: {err}") from None
        job_id = payload.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise JobFormatError("job id must be a non-empty string")
        data = payload.get("input", {})
        if not isinstance(data, dict):
            raise JobFormatError("job input must be an object")
        return cls(
            id=job_id,
            step=StepDefinition.from_dict(payload.get("step")),
            input=data,
            run_id=_optional_id(payload, "run_id"),
            tenant_id=_optional_id(payload, "tenant_id"),
        )


def _optional_id(payload: JSONObject, key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise JobFormatError(f"job {key} must be a non-empty string")
    return value


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: str
    result: StepResult

    def to_dict(self) -> JSONObject:
        return {"job_id": self.job_id, **self.result.to_dict()}


class JobQueue(Protocol):
    def get(self, timeout: float) -> Job | None:
        """Return the next job, or ``None`` if none arrived within ``timeout`` seconds."""
        ...


class InMemoryQueue:
    """Thread-safe FIFO :class:`JobQueue` held in process memory."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Job] = queue.Queue()

    def put(self, job: Job) -> None:
        self._jobs.put(job)

    def get(self, timeout: float) -> Job | None:
        try:
            return self._jobs.get(timeout=timeout)
        except queue.Empty:
            return None

    def __len__(self) -> int:
        return self._jobs.qsize()


ResultSink = Callable[[JobResult], None]


def discard_result(result: JobResult) -> None:
    """Default sink: drop the result (the worker has already logged its outcome)."""


def job_log_fields(job: Job) -> dict[str, str]:
    """Structured log context for ``job``: ids, step, and ``run_id``/``tenant_id`` if set."""
    fields = {"job_id": job.id, "step": job.step.id, "step_type": job.step.type}
    if job.run_id is not None:
        fields["run_id"] = job.run_id
    if job.tenant_id is not None:
        fields["tenant_id"] = job.tenant_id
    return fields


class Worker:
    def __init__(
        self,
        jobs: JobQueue,
        registry: StepRegistry,
        *,
        context: StepContext | None = None,
        concurrency: int = 1,
        sink: ResultSink = discard_result,
        poll_interval: float = 0.5,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._jobs = jobs
        self._registry = registry
        self._context = context if context is not None else StepContext()
        self._concurrency = concurrency
        self._sink = sink
        self._poll_interval = poll_interval
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("worker already started")
        for index in range(self._concurrency):
            thread = threading.Thread(target=self._loop, name=f"runner-worker-{index}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Signal the threads to stop and wait; return ``True`` if all of them ended."""
        self._stopping.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    def process(self, job: Job) -> JobResult:
        """Run one job. Unexpected exceptions become a failed result instead of killing a thread."""
        fields = job_log_fields(job)
        logger.info("job started", extra=fields)
        started = time.monotonic()
        try:
            result = self._registry.run(job.step, job.input, self._context)
        except Exception as err:
            logger.exception("job %s crashed", job.id, extra=fields)
            result = StepResult(
                job.step.id, job.step.type, "failed", error=f"internal error: {err!r}"
            )
        outcome: dict[str, JSONValue] = {
            **fields,
            "status": result.status,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        }
        if result.ok:
            logger.info("job finished", extra=outcome)
        else:
            logger.warning("job failed", extra={**outcome, "error": result.error})
        return JobResult(job.id, result)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            job = self._jobs.get(self._poll_interval)
            if job is None:
                continue
            outcome = self.process(job)
            try:
                self._sink(outcome)
            except Exception:
                logger.exception("result sink failed for job %s", job.id)
