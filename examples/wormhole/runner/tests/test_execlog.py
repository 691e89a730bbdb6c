"""Execution and audit logs in MongoDB. MongoDB cannot run on the development machines, so
these run against ``mongomock`` (an in-memory implementation of pymongo's API) and pin the
exact ``createIndexes`` specification that the runner sends at start-up."""

from datetime import UTC, datetime
from typing import Any

import mongomock
import pytest
from bson import SON

from runner.execlog import (
    AUDIT_LOGS,
    EXECUTION_LOGS,
    MongoExecutionLog,
    RunRecord,
    StepRecord,
    ensure_ttl_indexes,
    ttl_index_models,
)

NOW = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)


@pytest.fixture
def db() -> Any:
    client: Any = mongomock.MongoClient(tz_aware=True)  # pyright: ignore[reportUnknownVariableType]
    return client["wormhole_logs"]


def test_the_create_indexes_specification_is_exact() -> None:
    specs = {name: model.document for name, model in ttl_index_models().items()}
    assert specs == {
        "execution_logs": {
            "key": SON([("created_at", 1)]),
            "name": "created_at_ttl",
            "expireAfterSeconds": 2592000,
        },
        "audit_logs": {
            "key": SON([("created_at", 1)]),
            "name": "created_at_ttl",
            "expireAfterSeconds": 7776000,
        },
    }
    assert 2592000 == 30 * 24 * 3600
    assert 7776000 == 90 * 24 * 3600


def test_start_up_creates_the_ttl_indexes_idempotently(db: Any) -> None:
    created = {EXECUTION_LOGS: ["created_at_ttl"], AUDIT_LOGS: ["created_at_ttl"]}
    assert ensure_ttl_indexes(db) == created
    # a restart creates them again with the same options: a no-op, not an error
    assert MongoExecutionLog(db).ensure_indexes() == ensure_ttl_indexes(db)
    for collection, seconds in ((EXECUTION_LOGS, 2592000), (AUDIT_LOGS, 7776000)):
        info = db[collection].index_information()
        assert sorted(info) == ["_id_", "created_at_ttl"]
        ttl = info["created_at_ttl"]
        assert list(ttl["key"]) == [("created_at", 1)]
        assert ttl["expireAfterSeconds"] == seconds


def test_steps_and_runs_are_written_with_a_bson_date(db: Any) -> None:
    log = MongoExecutionLog(db)
    log.step_finished(
        StepRecord("run-1", "t-1", "wf-1", "s1", "http", "succeeded", None, 12.5, NOW)
    )
    log.run_finished(
        RunRecord("run-1", "job-1", "t-1", "wf-1", "failed", "step 's2': boom", 2, 40.0, NOW)
    )
    step, run = db[EXECUTION_LOGS].find({}, {"_id": False}).sort("kind", -1)
    assert step == {
        "kind": "step",
        "run_id": "run-1",
        "tenant_id": "t-1",
        "workflow_id": "wf-1",
        "step_id": "s1",
        "step_type": "http",
        "status": "succeeded",
        "error": None,
        "duration_ms": 12.5,
        "created_at": NOW,
    }
    assert run["kind"] == "run"
    assert (run["status"], run["error"], run["steps"]) == ("failed", "step 's2': boom", 2)
    [audit] = db[AUDIT_LOGS].find({}, {"_id": False})
    assert audit == {
        "action": "workflow.run",
        "actor": "runner",
        "run_id": "run-1",
        "tenant_id": "t-1",
        "workflow_id": "wf-1",
        "outcome": "failed",
        "created_at": NOW,
    }


def test_from_url_uses_the_database_named_in_the_url() -> None:
    log = MongoExecutionLog.from_url("mongodb://127.0.0.1:1/wormhole_logs")
    try:
        assert log.db.name == "wormhole_logs"
    finally:
        log.close()
