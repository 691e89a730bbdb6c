"""Workflow runs: the job format, and the processor that executes one run.

A run job is what the api enqueues on the ``workflow-runs`` BullMQ queue when a workflow is
triggered; its data is a JSON object::

    {"run_id": str, "tenant_id": str?, "workflow_id": str?,
     "steps": [{"id": str, "type": str, "config": {...}}, ...], "input": {...}?}

The api sends the steps in execution order (a topological order of the definition's
``next`` graph). :class:`RunProcessor` runs them one after the other: each step gets the
previous step's output when that is an object (else the previous input), and the run stops
at the first failed step. It knows nothing about Redis: :mod:`runner.queue` feeds it from
BullMQ, the tests call it directly.

For each run the processor counts ``started`` and observes the trigger delay (job timestamp to
start), then counts ``succeeded`` or ``failed`` and observes the duration
(:mod:`runner.metrics`); it records every step and the run in the execution log
(:mod:`runner.execlog`, MongoDB) and logs ``run started`` then ``run finished`` or
``run failed``, and ``step finished``/``step failed`` per step, all with ``run_id`` and
``tenant_id`` (:mod:`runner.logs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from runner.execlog import DiscardExecutionLog, ExecutionLog, RunRecord, StepRecord
from runner.jsonvalue import JSONObject, JSONValue, to_json_object
from runner.metrics import RunnerMetrics
from runner.steps import StepContext, StepDefinition, StepRegistry, StepResult

logger = logging.getLogger(__name__)

MAX_STEPS = 100
"""The api's limit too (``MAX_STEPS`` in api/src/workflows.ts)."""


class JobFormatError(ValueError):
    """A queued message is not a valid run job."""


@dataclass(frozen=True, slots=True)
class Job:
    """One workflow run to execute."""

    id: str
    """The queue's job id (the api uses the run id)."""
    run_id: str
    steps: tuple[StepDefinition, ...]
    input: JSONObject
    tenant_id: str | None = None
    workflow_id: str | None = None
    triggered_at: float | None = None
    """Seconds since the epoch when the run was triggered (the BullMQ job timestamp)."""

    @classmethod
    def from_data(cls, job_id: str, data: object, *, triggered_at: float | None = None) -> Job:
        """Decode a job's data (see the module docstring); raise :class:`JobFormatError`."""
        try:
            payload = to_json_object(data, "job")
        except ValueError as err:
            raise JobFormatError(f"invalid job data: {err}") from None
        run_id = _optional_id(payload, "run_id")
        if run_id is None:
            raise JobFormatError("job run_id must be a non-empty string")
        raw_steps = payload.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise JobFormatError("job steps must be a non-empty list")
        if len(raw_steps) > MAX_STEPS:
            raise JobFormatError(f"job has more than {MAX_STEPS} steps")
        data_in = payload.get("input", {})
        if not isinstance(data_in, dict):
            raise JobFormatError("job input must be an object")
        return cls(
            id=job_id,
            run_id=run_id,
            steps=tuple(StepDefinition.from_dict(step) for step in raw_steps),
            input=data_in,
            tenant_id=_optional_id(payload, "tenant_id"),
            workflow_id=_optional_id(payload, "workflow_id"),
            triggered_at=triggered_at,
        )

    def log_fields(self) -> dict[str, str | None]:
        """Structured log context: the platform's ``run_id``/``tenant_id`` and the job id."""
        return {"run_id": self.run_id, "tenant_id": self.tenant_id, "job_id": self.id}


def _optional_id(payload: JSONObject, key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise JobFormatError(f"job {key} must be a non-empty string")
    return value


@dataclass(frozen=True, slots=True)
class RunResult:
    job_id: str
    run_id: str
    status: Literal["succeeded", "failed"]
    steps: tuple[StepResult, ...]
    output: JSONValue = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def to_dict(self) -> JSONObject:
        return {
            "job_id": self.job_id,
            "run_id": self.run_id,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "steps": [step.to_dict() for step in self.steps],
        }


class RunProcessor:
    """Executes runs; safe to call from several threads at once."""

    def __init__(
        self,
        registry: StepRegistry,
        metrics: RunnerMetrics,
        *,
        context: StepContext | None = None,
        executions: ExecutionLog | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._metrics = metrics
        self._context = context if context is not None else StepContext()
        self._executions: ExecutionLog = (
            executions if executions is not None else DiscardExecutionLog()
        )
        self._clock = clock
        self._monotonic = monotonic

    @property
    def registry(self) -> StepRegistry:
        return self._registry

    def process(self, job: Job) -> RunResult:
        """Run every step of ``job``. Failures, even unexpected exceptions, become a result."""
        fields = job.log_fields()
        delay = None if job.triggered_at is None else self._clock() - job.triggered_at
        self._metrics.run_started(delay)
        logger.info(
            "run started",
            extra={
                **fields,
                "workflow_id": job.workflow_id,
                "steps": len(job.steps),
                "trigger_delay_ms": None if delay is None else round(delay * 1000, 3),
            },
        )
        started = self._monotonic()
        results: list[StepResult] = []
        data: JSONObject = job.input
        output: JSONValue = data
        for step in job.steps:
            result = self._run_step(job, step, data)
            results.append(result)
            if not result.ok:
                break
            output = result.output
            if isinstance(output, dict):
                data = output
        duration = self._monotonic() - started
        failed = next((r for r in results if not r.ok), None)
        run = RunResult(
            job.id,
            job.run_id,
            "succeeded" if failed is None else "failed",
            tuple(results),
            output=output if failed is None else None,
            error=None if failed is None else f"step {failed.step_id!r}: {failed.error}",
        )
        self._metrics.run_finished(run.status, duration)
        self._record(
            "run",
            lambda: self._executions.run_finished(
                RunRecord(
                    run_id=job.run_id,
                    job_id=job.id,
                    tenant_id=job.tenant_id,
                    workflow_id=job.workflow_id,
                    status=run.status,
                    error=run.error,
                    steps=len(results),
                    duration_ms=round(duration * 1000, 3),
                    created_at=self._now(),
                )
            ),
            fields,
        )
        outcome = {**fields, "status": run.status, "duration_ms": round(duration * 1000, 3)}
        if run.ok:
            logger.info("run finished", extra=outcome)
        else:
            logger.warning("run failed", extra={**outcome, "error": run.error})
        return run

    def _run_step(self, job: Job, step: StepDefinition, data: JSONObject) -> StepResult:
        fields = {**job.log_fields(), "step": step.id, "step_type": step.type}
        started = self._monotonic()
        try:
            result = self._registry.run(step, data, self._context)
        except Exception as err:
            logger.exception("step %s crashed", step.id, extra=fields)
            result = StepResult(step.id, step.type, "failed", error=f"internal error: {err!r}")
        duration_ms = round((self._monotonic() - started) * 1000, 3)
        self._record(
            "step",
            lambda: self._executions.step_finished(
                StepRecord(
                    run_id=job.run_id,
                    tenant_id=job.tenant_id,
                    workflow_id=job.workflow_id,
                    step_id=step.id,
                    step_type=step.type,
                    status=result.status,
                    error=result.error,
                    duration_ms=duration_ms,
                    created_at=self._now(),
                )
            ),
            fields,
        )
        outcome = {**fields, "status": result.status, "duration_ms": duration_ms}
        if result.ok:
            logger.info("step finished", extra=outcome)
        else:
            logger.warning("step failed", extra={**outcome, "error": result.error})
        return result

    def _record(self, what: str, write: Callable[[], None], fields: dict[str, str | None]) -> None:
        """The execution log is best effort: a run never fails because MongoDB is away."""
        try:
            write()
        except Exception as err:
            logger.warning(
                "execution log write failed (%s): %s",
                what,
                err,
                extra={**fields, "error": str(err)},
            )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)
