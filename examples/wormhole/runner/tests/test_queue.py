"""The BullMQ side of the worker, without Redis: job decoding, the processor's outcome, and
a consumer that survives an unreachable Redis. (A real Redis is exercised by wormhole-ci's
``tests/observability/test_queue_live.py``.)"""

import asyncio
import logging
import time
from dataclasses import dataclass

import pytest

from runner.jsonvalue import JSONObject, JSONValue
from runner.metrics import RunnerMetrics
from runner.queue import (
    QUEUE_NAME,
    QueueConsumer,
    RunFailedError,
    job_from_queue,
    process_queue_job,
)
from runner.steps import StepContext, default_registry
from runner.worker import JobFormatError, RunProcessor


@dataclass
class FakeQueueJob:
    """The attributes of a ``bullmq.Job`` that the runner reads."""

    id: str | None
    data: object
    timestamp: int = 0


def run_data(*steps: JSONObject) -> JSONObject:
    return {"run_id": "run-9", "tenant_id": "t-9", "steps": list(steps), "input": {"v": 1}}


SET_X: JSONObject = {
    "id": "s",
    "type": "transform",
    "config": {"operations": [{"op": "set", "path": "x", "value": 2}]},
}


def make_processor(metrics: RunnerMetrics) -> RunProcessor:
    return RunProcessor(default_registry(), metrics, context=StepContext(sleep=lambda _s: None))


def test_queue_name_is_the_one_the_api_uses() -> None:
    assert QUEUE_NAME == "workflow-runs"


def test_the_job_timestamp_in_milliseconds_is_the_trigger_time() -> None:
    job = job_from_queue(FakeQueueJob("run-9", run_data(SET_X), timestamp=1_700_000_000_250))
    assert job.id == "run-9"
    assert job.run_id == "run-9"
    assert job.triggered_at == 1_700_000_000.25
    assert job_from_queue(FakeQueueJob("run-9", run_data(SET_X))).triggered_at is None
    with pytest.raises(JobFormatError, match="no id"):
        job_from_queue(FakeQueueJob(None, run_data(SET_X)))


def test_a_succeeded_run_returns_its_summary() -> None:
    metrics = RunnerMetrics(process_metrics=False)
    job = FakeQueueJob("run-9", run_data(SET_X), timestamp=int(time.time() * 1000))
    result = asyncio.run(process_queue_job(make_processor(metrics), job))
    assert result == {"run_id": "run-9", "status": "succeeded", "steps": 1}
    assert metrics.registry.get_sample_value("wormhole_runner_trigger_delay_seconds_count") == 1


def test_a_failed_run_fails_the_queue_job() -> None:
    metrics = RunnerMetrics(process_metrics=False)
    job = FakeQueueJob("run-9", run_data({"id": "s", "type": "delay", "config": {"seconds": -1}}))
    with pytest.raises(RunFailedError, match="step 's'"):
        asyncio.run(process_queue_job(make_processor(metrics), job))
    failed = metrics.registry.get_sample_value("wormhole_runner_runs_total", {"outcome": "failed"})
    assert failed == 1


UNDECODABLE: list[JSONValue] = [{"run_id": "r"}, "garbage", {"run_id": "r", "steps": [{}]}]


@pytest.mark.parametrize("data", UNDECODABLE)
def test_an_undecodable_job_fails_without_running(
    data: object, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = RunnerMetrics(process_metrics=False)
    with pytest.raises(RunFailedError, match="invalid job"):
        asyncio.run(process_queue_job(make_processor(metrics), FakeQueueJob("j", data)))
    assert "invalid job j" in caplog.text
    started = metrics.registry.get_sample_value(
        "wormhole_runner_runs_total", {"outcome": "started"}
    )
    assert started == 0


def test_the_consumer_survives_an_unreachable_redis_and_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="runner.queue")
    metrics = RunnerMetrics(process_metrics=False)
    consumer = QueueConsumer(
        make_processor(metrics), "redis://:s3cret@127.0.0.1:1/0", concurrency=2, retry_delay=0.05
    )
    consumer.start()
    try:
        deadline = time.monotonic() + 10
        while len(caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert consumer.running
    finally:
        assert consumer.stop(timeout=10)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) >= 2, messages
    assert messages[0].startswith(
        "queue workflow-runs on redis://:***@127.0.0.1:1/0 unavailable: "
    ), messages
    assert messages[0].endswith("; retrying in 0s")
    assert "s3cret" not in caplog.text


def test_bad_concurrency_and_double_start_are_rejected() -> None:
    metrics = RunnerMetrics(process_metrics=False)
    with pytest.raises(ValueError, match="concurrency"):
        QueueConsumer(make_processor(metrics), "redis://127.0.0.1:1/0", concurrency=0)
    consumer = QueueConsumer(make_processor(metrics), "redis://127.0.0.1:1/0", retry_delay=0.05)
    consumer.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            consumer.start()
    finally:
        assert consumer.stop(timeout=10)
