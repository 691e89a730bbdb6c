import json
import logging
import threading

import pytest

from runner.jsonvalue import JSONObject, JSONValue
from runner.logs import json_formatter
from runner.steps import (
    StepContext,
    StepDefinition,
    StepRegistry,
    StepValidationError,
    default_registry,
)
from runner.worker import InMemoryQueue, Job, JobFormatError, JobResult, Worker

NO_SLEEP = StepContext(sleep=lambda _seconds: None)


class Collector:
    def __init__(self, expected: int) -> None:
        self.results: list[JobResult] = []
        self._lock = threading.Lock()
        self._expected = expected
        self.done = threading.Event()

    def __call__(self, result: JobResult) -> None:
        with self._lock:
            self.results.append(result)
            if len(self.results) >= self._expected:
                self.done.set()


def transform_job(job_id: str, value: int) -> Job:
    step = StepDefinition(
        "double",
        "transform",
        {"operations": [{"op": "set", "path": "doubled", "value": value * 2}]},
    )
    return Job(job_id, step, {"value": value})


def test_queue_is_fifo_and_times_out_when_empty() -> None:
    jobs = InMemoryQueue()
    assert jobs.get(timeout=0.01) is None
    first, second = transform_job("a", 1), transform_job("b", 2)
    jobs.put(first)
    jobs.put(second)
    assert len(jobs) == 2
    assert jobs.get(timeout=0.01) is first
    assert jobs.get(timeout=0.01) is second


def test_worker_pool_processes_every_job() -> None:
    jobs = InMemoryQueue()
    for index in range(20):
        jobs.put(transform_job(f"job-{index}", index))
    collector = Collector(expected=20)
    worker = Worker(
        jobs,
        default_registry(),
        context=NO_SLEEP,
        concurrency=3,
        sink=collector,
        poll_interval=0.01,
    )
    worker.start()
    try:
        assert collector.done.wait(10)
    finally:
        assert worker.stop(timeout=5)
    assert not worker.running
    by_id = {result.job_id: result.result for result in collector.results}
    assert sorted(by_id) == sorted(f"job-{index}" for index in range(20))
    assert by_id["job-7"].output == {"value": 7, "doubled": 14}
    assert len(jobs) == 0


def test_failed_steps_are_reported_not_raised() -> None:
    worker = Worker(InMemoryQueue(), default_registry(), context=NO_SLEEP)
    outcome = worker.process(Job("j", StepDefinition("s", "delay", {"seconds": -1}), {}))
    assert outcome.to_dict() == {
        "job_id": "j",
        "step_id": "s",
        "step_type": "delay",
        "status": "failed",
        "output": None,
        "error": "step 's' is invalid: seconds must be a number from 0 to 300",
    }


def json_lines(caplog: pytest.LogCaptureFixture) -> list[JSONObject]:
    formatter = json_formatter("test-sha")
    lines: list[JSONObject] = [json.loads(formatter.format(r)) for r in caplog.records]
    return lines


def test_worker_logs_each_job_with_its_run_and_tenant(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runner.worker")
    worker = Worker(InMemoryQueue(), default_registry(), context=NO_SLEEP)
    job = transform_job("job-1", 3)
    worker.process(Job(job.id, job.step, job.input, run_id="run-7", tenant_id="tenant-a"))

    started, finished = json_lines(caplog)
    context = {"job_id": "job-1", "step": "double", "step_type": "transform"}
    context |= {"run_id": "run-7", "tenant_id": "tenant-a"}
    assert started.items() >= {"level": "INFO", "message": "job started", **context}.items()
    assert (
        finished.items()
        >= {
            "level": "INFO",
            "logger": "runner.worker",
            "message": "job finished",
            "service": "runner",
            "version": "test-sha",
            "status": "succeeded",
            **context,
        }.items()
    )
    duration = finished["duration_ms"]
    assert isinstance(duration, float)
    assert duration >= 0


def test_worker_logs_failed_jobs_without_absent_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runner.worker")
    worker = Worker(InMemoryQueue(), default_registry(), context=NO_SLEEP)
    worker.process(Job("j", StepDefinition("s", "delay", {"seconds": -1}), {}, run_id="r"))

    _, failed = json_lines(caplog)
    assert failed["level"] == "WARNING"
    assert failed["message"] == "job failed"
    assert failed["run_id"] == "r"
    assert "tenant_id" not in failed
    assert failed["status"] == "failed"
    assert failed["error"] == "step 's' is invalid: seconds must be a number from 0 to 300"
    assert isinstance(failed["duration_ms"], float)


class Exploding:
    name = "explode"

    def prepare(self, step_id: str, config: JSONObject) -> "Exploding":
        return self

    def run(self, data: JSONObject, context: StepContext) -> JSONValue:
        raise KeyError("unexpected")


def test_unexpected_exceptions_become_failed_results(caplog: pytest.LogCaptureFixture) -> None:
    worker = Worker(InMemoryQueue(), StepRegistry([Exploding()]))
    outcome = worker.process(Job("j", StepDefinition("s", "explode"), {}))
    assert outcome.result.status == "failed"
    assert outcome.result.error == "internal error: KeyError('unexpected')"
    assert "job j crashed" in caplog.text


def test_a_failing_sink_does_not_stop_the_worker() -> None:
    jobs = InMemoryQueue()
    seen: list[str] = []
    both = threading.Event()

    def flaky_sink(result: JobResult) -> None:
        seen.append(result.job_id)
        if len(seen) == 2:
            both.set()
        raise RuntimeError("sink down")

    worker = Worker(jobs, default_registry(), context=NO_SLEEP, sink=flaky_sink, poll_interval=0.01)
    worker.start()
    jobs.put(transform_job("a", 1))
    jobs.put(transform_job("b", 2))
    try:
        assert both.wait(5)
    finally:
        assert worker.stop(timeout=5)
    assert seen == ["a", "b"]


def test_start_twice_and_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        Worker(InMemoryQueue(), default_registry(), concurrency=0)
    with pytest.raises(ValueError, match="poll_interval"):
        Worker(InMemoryQueue(), default_registry(), poll_interval=0)
    worker = Worker(InMemoryQueue(), default_registry(), poll_interval=0.01)
    worker.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            worker.start()
    finally:
        assert worker.stop(timeout=5)


def test_job_from_json() -> None:
    message = json.dumps(
        {"id": "j1", "step": {"id": "s", "type": "delay", "config": {"seconds": 1}}, "input": {}}
    )
    assert Job.from_json(message) == Job("j1", StepDefinition("s", "delay", {"seconds": 1}), {})
    assert Job.from_json(b'{"id": "j2", "step": {"id": "s", "type": "delay"}}').input == {}
    with_ids = Job.from_json(
        '{"id": "j3", "run_id": "r", "tenant_id": "t", "step": {"id": "s", "type": "delay"}}'
    )
    assert (with_ids.run_id, with_ids.tenant_id) == ("r", "t")


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "invalid job message"),
        ("[]", "invalid job message"),
        ('{"step": {}}', "job id must be a non-empty string"),
        ('{"id": "j", "input": [], "step": {}}', "job input must be an object"),
        ('{"id": "j", "run_id": 5, "step": {"id": "s", "type": "delay"}}', "job run_id must be"),
        ('{"id": "j", "tenant_id": "", "step": {"id": "s", "type": "delay"}}', "job tenant_id"),
    ],
)
def test_job_from_json_rejects_bad_messages(message: str, error: str) -> None:
    with pytest.raises(JobFormatError, match=error):
        Job.from_json(message)


def test_job_from_json_rejects_bad_steps() -> None:
    with pytest.raises(StepValidationError, match="type must be a non-empty string"):
        Job.from_json('{"id": "j", "step": {"id": "s"}}')
