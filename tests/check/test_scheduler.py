"""The shared scheduler over a fake executor: order, blocking, `after`, concurrency, state."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest

from wormhole_ci.check.scheduler import Ran, Reporter, schedule
from wormhole_ci.manifest import ServiceKind
from wormhole_ci.plan import Plan, ServicePlan, Task, Tool
from wormhole_ci.results import RunReport, Status, TaskResult

State = tuple[str, ...]
"""The fake's per-service state: the setup tasks applied so far (like a container chain)."""


@dataclass
class FakeExecutor:
    """Runs nothing: each task sleeps, then passes unless named in `failing`."""

    concurrent_checks: bool
    failing: frozenset[str] = frozenset()
    delays: dict[str, float] = field(default_factory=dict[str, float])
    events: list[str] = field(default_factory=list[str])
    ran_from: dict[str, State] = field(default_factory=dict[str, State])
    ended: list[str] = field(default_factory=list[str])

    def begin(self, service: ServicePlan, rank: int) -> State:
        return ()

    async def ready(self) -> None:
        pass

    async def run(self, task: Task, state: State, reporter: Reporter) -> Ran[State]:
        reporter.started(task)
        self.ran_from[task.key] = state
        self.events.append(f"start {task.key}")
        await anyio.sleep(self.delays.get(task.key, 0.01))
        self.events.append(f"end {task.key}")
        status = Status.FAILED if task.key in self.failing else Status.PASSED
        code = 1 if status is Status.FAILED else 0
        return Ran(TaskResult(task.service, task.name, status, 0.0, code), (*state, task.name))

    def waiting(self, state: State) -> None:
        pass

    def end(self, state: State) -> None:
        self.ended.append(",".join(state))


class Reports:
    """A reporter keeping both events in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def started(self, task: Task) -> None:
        self.events.append(f"started {task.key}")

    def finished(self, result: TaskResult) -> None:
        self.events.append(f"finished {result.service}:{result.task} {result.status}")


def task(service: str, name: str, after: tuple[str, ...] = ()) -> Task:
    return Task(service, name, Tool.UV, "", service, ("true",), after=after)


def service(name: str, *names: str) -> ServicePlan:
    return ServicePlan(name, ServiceKind.PYTHON, name, tuple(task(name, n) for n in names))


def run(plan: Plan, executor: FakeExecutor, reporter: Reports | None = None) -> RunReport:
    return anyio.run(schedule, plan, executor, reporter or Reports())


def statuses(report: RunReport) -> dict[str, Status]:
    return {f"{r.service}:{r.task}": r.status for r in report.results}


@pytest.mark.parametrize("concurrent", [False, True])
def test_a_failed_setup_blocks_the_rest_of_its_service_only(concurrent: bool) -> None:
    plan = Plan(
        "p",
        (service("a", "install", "prepare", "lint", "test"), service("b", "install", "test")),
    )
    executor = FakeExecutor(concurrent, failing=frozenset({"a:install"}))
    reports = Reports()
    report = run(plan, executor, reports)
    assert statuses(report) == {
        "a:install": Status.FAILED,
        "a:prepare": Status.BLOCKED,
        "a:lint": Status.BLOCKED,
        "a:test": Status.BLOCKED,
        "b:install": Status.PASSED,
        "b:test": Status.PASSED,
    }
    assert report.results[1].tail == "not run: a:install did not pass"
    # blocked tasks never reached the executor, yet every task reported
    assert "start a:prepare" not in executor.events
    assert sorted(e for e in reports.events if e.startswith("finished")) == sorted(
        f"finished {k} {s}" for k, s in statuses(report).items()
    )


@pytest.mark.parametrize("concurrent", [False, True])
def test_a_failed_check_stops_nothing(concurrent: bool) -> None:
    plan = Plan("p", (service("a", "install", "lint", "typecheck", "test"),))
    report = run(plan, FakeExecutor(concurrent, failing=frozenset({"a:lint"})))
    assert statuses(report) == {
        "a:install": Status.PASSED,
        "a:lint": Status.FAILED,
        "a:typecheck": Status.PASSED,
        "a:test": Status.PASSED,
    }


@pytest.mark.parametrize("concurrent", [False, True])
def test_after_waits_for_the_dependency(concurrent: bool) -> None:
    plan = Plan(
        "p",
        (
            service("db", "install", "prepare"),
            ServicePlan(
                "meta", ServiceKind.HASURA, "meta", (task("meta", "validate", ("db:prepare",)),)
            ),
        ),
    )
    executor = FakeExecutor(concurrent, delays={"db:install": 0.1, "db:prepare": 0.1})
    report = run(plan, executor)
    assert statuses(report)["meta:validate"] is Status.PASSED
    assert executor.events.index("end db:prepare") < executor.events.index("start meta:validate")


@pytest.mark.parametrize("concurrent", [False, True])
def test_a_dependency_that_did_not_pass_blocks(concurrent: bool) -> None:
    plan = Plan(
        "p",
        (
            service("db", "install", "prepare"),
            ServicePlan(
                "meta",
                ServiceKind.HASURA,
                "meta",
                (task("meta", "validate", ("db:prepare",)), task("meta", "extra")),
            ),
        ),
    )
    # db:install fails, so db:prepare is blocked: a blocked dependency blocks too
    report = run(plan, FakeExecutor(concurrent, failing=frozenset({"db:install"})))
    assert statuses(report) == {
        "db:install": Status.FAILED,
        "db:prepare": Status.BLOCKED,
        "meta:validate": Status.BLOCKED,
        "meta:extra": Status.PASSED,
    }
    assert report.results[2].tail == "not run: db:prepare did not pass"


def test_concurrent_checks_run_side_by_side_after_setup_in_order() -> None:
    plan = Plan("p", (service("a", "install", "prepare", "lint", "typecheck", "test"),))
    executor = FakeExecutor(True, delays={"a:lint": 0.2, "a:typecheck": 0.2, "a:test": 0.2})
    report = run(plan, executor)
    assert report.ok
    events = executor.events
    # setup strictly in order, before any check
    assert events[:4] == ["start a:install", "end a:install", "start a:prepare", "end a:prepare"]
    # every check started before any finished: they overlapped
    assert sorted(events[4:7]) == ["start a:lint", "start a:test", "start a:typecheck"]
    # each check runs from the state every setup task left
    assert {executor.ran_from[k] for k in ("a:lint", "a:typecheck", "a:test")} == {
        ("install", "prepare")
    }
    # results stay in plan order whatever finished first
    assert [r.task for r in report.results] == ["install", "prepare", "lint", "typecheck", "test"]


def test_sequential_checks_run_one_after_another() -> None:
    plan = Plan("p", (service("a", "install", "lint", "test"),))
    executor = FakeExecutor(False)
    run(plan, executor)
    assert executor.events == [
        "start a:install",
        "end a:install",
        "start a:lint",
        "end a:lint",
        "start a:test",
        "end a:test",
    ]


def test_a_failed_setup_does_not_advance_the_state() -> None:
    plan = Plan("p", (service("a", "install", "prepare"), service("b", "install", "test")))
    executor = FakeExecutor(True, failing=frozenset({"a:prepare"}))
    run(plan, executor)
    assert executor.ran_from["b:test"] == ("install",)
    # the state each service ended with: only passed setup tasks extend it
    assert sorted(executor.ended) == ["install", "install"]


def test_services_run_concurrently() -> None:
    plan = Plan("p", tuple(service(f"s{i}", "test") for i in range(4)))
    executor = FakeExecutor(False, delays={f"s{i}:test": 0.2 for i in range(4)})
    run(plan, executor)
    assert [e.split()[0] for e in executor.events] == ["start"] * 4 + ["end"] * 4
