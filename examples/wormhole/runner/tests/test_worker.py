import json
import logging
from dataclasses import dataclass, field

import pytest

from runner.execlog import RunRecord, StepRecord
from runner.jsonvalue import JSONObject, JSONValue
from runner.logs import json_formatter
from runner.metrics import RunnerMetrics
from runner.steps import (
    StepContext,
    StepDefinition,
    StepRegistry,
    StepValidationError,
    default_registry,
)
from runner.worker import Job, JobFormatError, RunProcessor

NO_SLEEP = StepContext(sleep=lambda _seconds: None)
DELAY: JSONObject = {"id": "s", "type": "delay"}


@dataclass
class FakeExecutionLog:
    steps: list[StepRecord] = field(default_factory=lambda: [])
    runs: list[RunRecord] = field(default_factory=lambda: [])
    fail: bool = False

    def step_finished(self, record: StepRecord) -> None:
        if self.fail:
            raise ConnectionError("mongo away")
        self.steps.append(record)

    def run_finished(self, record: RunRecord) -> None:
        if self.fail:
            raise ConnectionError("mongo away")
        self.runs.append(record)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def set_step(step_id: str, path: str, value: JSONValue) -> StepDefinition:
    return StepDefinition(
        step_id, "transform", {"operations": [{"op": "set", "path": path, "value": value}]}
    )


def run_job(*steps: StepDefinition, triggered_at: float | None = None) -> Job:
    return Job(
        "run-1",
        "run-1",
        steps,
        {"n": 1},
        tenant_id="tenant-a",
        workflow_id="wf-1",
        triggered_at=triggered_at,
    )


def sample(metrics: RunnerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def processor(
    metrics: RunnerMetrics,
    executions: FakeExecutionLog | None = None,
    registry: StepRegistry | None = None,
    clock: FakeClock | None = None,
) -> RunProcessor:
    return RunProcessor(
        registry or default_registry(),
        metrics,
        context=NO_SLEEP,
        executions=executions or FakeExecutionLog(),
        clock=clock or FakeClock(1_000.0),
    )


def test_steps_run_in_order_each_on_the_previous_output() -> None:
    metrics = RunnerMetrics(process_metrics=False)
    executions = FakeExecutionLog()
    job = run_job(
        set_step("a", "x", 1),
        StepDefinition("wait", "delay", {"seconds": 0}),
        set_step("b", "y", 2),
    )
    result = processor(metrics, executions).process(job)
    assert result.ok
    assert result.output == {"n": 1, "x": 1, "y": 2}
    assert [s.step_id for s in result.steps] == ["a", "wait", "b"]
    assert [(r.step_id, r.status, r.run_id, r.tenant_id) for r in executions.steps] == [
        ("a", "succeeded", "run-1", "tenant-a"),
        ("wait", "succeeded", "run-1", "tenant-a"),
        ("b", "succeeded", "run-1", "tenant-a"),
    ]
    [run] = executions.runs
    assert (run.run_id, run.workflow_id, run.status, run.steps) == ("run-1", "wf-1", "succeeded", 3)
    assert run.created_at.timestamp() == 1_000.0


def test_a_failed_step_stops_the_run() -> None:
    metrics = RunnerMetrics(process_metrics=False)
    bad = StepDefinition("bad", "delay", {"seconds": -1})
    job = run_job(set_step("a", "x", 1), bad, set_step("b", "y", 2))
    result = processor(metrics).process(job)
    assert result.to_dict() == {
        "job_id": "run-1",
        "run_id": "run-1",
        "status": "failed",
        "output": None,
        "error": "step 'bad': step 'bad' is invalid: seconds must be a number from 0 to 300",
        "steps": [
            {
                "step_id": "a",
                "step_type": "transform",
                "status": "succeeded",
                "output": {"n": 1, "x": 1},
                "error": None,
            },
            {
                "step_id": "bad",
                "step_type": "delay",
                "status": "failed",
                "output": None,
                "error": "step 'bad' is invalid: seconds must be a number from 0 to 300",
            },
        ],
    }


def test_metrics_count_runs_by_outcome_and_observe_delay_and_duration() -> None:
    metrics = RunnerMetrics(process_metrics=False)
    clock = FakeClock(1_000.0)
    runs = processor(metrics, clock=clock)
    runs.process(run_job(set_step("a", "x", 1), triggered_at=997.5))
    runs.process(run_job(StepDefinition("bad", "nope"), triggered_at=993.0))
    runs.process(run_job(set_step("a", "x", 1)))
    assert sample(metrics, "wormhole_runner_runs_total", outcome="started") == 3
    assert sample(metrics, "wormhole_runner_runs_total", outcome="succeeded") == 2
    assert sample(metrics, "wormhole_runner_runs_total", outcome="failed") == 1
    assert sample(metrics, "wormhole_runner_run_duration_seconds_count") == 3
    # a job without a timestamp has no trigger delay
    assert sample(metrics, "wormhole_runner_trigger_delay_seconds_count") == 2
    assert sample(metrics, "wormhole_runner_trigger_delay_seconds_sum") == pytest.approx(9.5)
    # 2.5 s is within the 5 s SLA, 7 s is not
    assert sample(metrics, "wormhole_runner_trigger_delay_seconds_bucket", le="5.0") == 1
    assert sample(metrics, "wormhole_runner_trigger_delay_seconds_bucket", le="7.5") == 2


def test_an_unavailable_execution_log_does_not_fail_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = RunnerMetrics(process_metrics=False)
    result = processor(metrics, FakeExecutionLog(fail=True)).process(run_job(set_step("a", "x", 1)))
    assert result.ok
    assert "execution log write failed (step): mongo away" in caplog.text
    assert "execution log write failed (run): mongo away" in caplog.text


class Exploding:
    name = "explode"

    def prepare(self, step_id: str, config: JSONObject) -> "Exploding":
        return self

    def run(self, data: JSONObject, context: StepContext) -> JSONValue:
        raise KeyError("unexpected")


def test_unexpected_exceptions_become_failed_results(caplog: pytest.LogCaptureFixture) -> None:
    metrics = RunnerMetrics(process_metrics=False)
    runs = processor(metrics, registry=StepRegistry([Exploding()]))
    result = runs.process(run_job(StepDefinition("s", "explode")))
    assert result.status == "failed"
    assert result.error == "step 's': internal error: KeyError('unexpected')"
    assert "step s crashed" in caplog.text


def json_lines(caplog: pytest.LogCaptureFixture) -> list[JSONObject]:
    formatter = json_formatter("test-sha")
    lines: list[JSONObject] = [json.loads(formatter.format(r)) for r in caplog.records]
    return lines


def test_worker_lines_carry_the_run_and_tenant(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runner.worker")
    metrics = RunnerMetrics(process_metrics=False)
    processor(metrics).process(run_job(set_step("a", "x", 1), triggered_at=999.0))

    started, step, finished = json_lines(caplog)
    platform = {"service": "runner", "tenant_id": "tenant-a", "run_id": "run-1"}
    assert list(started)[:6] == ["time", "level", "service", "tenant_id", "run_id", "message"]
    assert started.items() >= {**platform, "level": "INFO", "message": "run started"}.items()
    assert started["trigger_delay_ms"] == 1000.0
    assert started["workflow_id"] == "wf-1"
    assert step.items() >= {**platform, "message": "step finished", "step": "a"}.items()
    assert (
        finished.items()
        >= {
            **platform,
            "level": "INFO",
            "logger": "runner.worker",
            "message": "run finished",
            "version": "test-sha",
            "job_id": "run-1",
            "status": "succeeded",
        }.items()
    )
    assert isinstance(finished["duration_ms"], float)


def test_failed_runs_log_a_warning_with_the_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runner.worker")
    metrics = RunnerMetrics(process_metrics=False)
    processor(metrics).process(run_job(StepDefinition("s", "delay", {"seconds": -1})))
    *_, failed = json_lines(caplog)
    assert failed["level"] == "WARNING"
    assert failed["message"] == "run failed"
    assert failed["run_id"] == "run-1"
    assert (
        failed["error"] == "step 's': step 's' is invalid: seconds must be a number from 0 to 300"
    )


def test_job_from_data() -> None:
    data: JSONObject = {
        "run_id": "r1",
        "tenant_id": "t1",
        "workflow_id": "w1",
        "steps": [{"id": "s", "type": "delay", "config": {"seconds": 1}, "next": []}],
        "input": {"a": 1},
    }
    assert Job.from_data("r1", data, triggered_at=5.0) == Job(
        "r1",
        "r1",
        (StepDefinition("s", "delay", {"seconds": 1}),),
        {"a": 1},
        tenant_id="t1",
        workflow_id="w1",
        triggered_at=5.0,
    )
    minimal = Job.from_data("j", {"run_id": "r", "steps": [{"id": "s", "type": "delay"}]})
    assert (minimal.input, minimal.tenant_id, minimal.triggered_at) == ({}, None, None)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("not an object", "invalid job data"),
        ({"steps": [DELAY]}, "job run_id must be a non-empty string"),
        ({"run_id": "r", "steps": []}, "job steps must be a non-empty list"),
        ({"run_id": "r", "steps": [{"id": f"s{i}", "type": "delay"} for i in range(101)]}, "100"),
        ({"run_id": "r", "steps": [DELAY], "input": []}, "job input must be an object"),
        ({"run_id": "r", "tenant_id": "", "steps": [DELAY]}, "job tenant_id"),
    ],
)
def test_job_from_data_rejects_bad_jobs(data: JSONValue, error: str) -> None:
    with pytest.raises(JobFormatError, match=error):
        Job.from_data("j", data)


def test_job_from_data_rejects_bad_steps() -> None:
    with pytest.raises(StepValidationError, match="type must be a non-empty string"):
        Job.from_data("j", {"run_id": "r", "steps": [{"id": "s"}]})
