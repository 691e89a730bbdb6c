"""Execution and audit logs in MongoDB, expired by TTL indexes.

Retention (PART_9 §5.3) is enforced by MongoDB itself: each collection has a TTL index on
``created_at`` (a BSON date), created by the runner at start-up with :func:`ensure_ttl_indexes`:

============================  ====================  ===================================
collection                    index name            ``expireAfterSeconds``
============================  ====================  ===================================
``execution_logs``            ``created_at_ttl``    2592000 (30 days)
``audit_logs``                ``created_at_ttl``    7776000 (90 days)
============================  ====================  ===================================

``execution_logs`` gets one document per step and one per run; ``audit_logs`` one per run
(who ran what, and how it ended). Creating an index that exists with the same options is a
no-op, so every start may call it; a changed retention is a conflict MongoDB reports (drop the
index, then restart), never a silent keep of the old value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    # pymongo is imported when MongoDB is used: it costs ~1 s at every start otherwise
    from pymongo import IndexModel
    from pymongo.collection import Collection
    from pymongo.database import Database

EXECUTION_LOGS: Final = "execution_logs"
AUDIT_LOGS: Final = "audit_logs"
TTL_FIELD: Final = "created_at"
TTL_INDEX_NAME: Final = "created_at_ttl"
DAY: Final = 24 * 60 * 60
RETENTION_SECONDS: Final[Mapping[str, int]] = {EXECUTION_LOGS: 30 * DAY, AUDIT_LOGS: 90 * DAY}
SERVER_SELECTION_TIMEOUT_MS: Final = 3000
"""A write waits at most this long for an unreachable MongoDB (the run goes on without it)."""

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One executed step, as stored in ``execution_logs``."""

    run_id: str
    tenant_id: str | None
    workflow_id: str | None
    step_id: str
    step_type: str
    status: str
    error: str | None
    duration_ms: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One finished run, stored in ``execution_logs`` and ``audit_logs``."""

    run_id: str
    job_id: str
    tenant_id: str | None
    workflow_id: str | None
    status: str
    error: str | None
    steps: int
    duration_ms: float
    created_at: datetime


class ExecutionLog(Protocol):
    """Where the runner records what it executed."""

    def step_finished(self, record: StepRecord) -> None: ...

    def run_finished(self, record: RunRecord) -> None: ...


class DiscardExecutionLog:
    """:class:`ExecutionLog` used when ``MONGO_URL`` is empty: the JSON log lines only."""

    def step_finished(self, record: StepRecord) -> None:
        pass

    def run_finished(self, record: RunRecord) -> None:
        pass


def ttl_index_models() -> dict[str, IndexModel]:
    """The TTL index of each collection (``IndexModel.document`` is the createIndexes spec)."""
    from pymongo import ASCENDING, IndexModel

    return {
        collection: IndexModel(
            [(TTL_FIELD, ASCENDING)], name=TTL_INDEX_NAME, expireAfterSeconds=seconds
        )
        for collection, seconds in RETENTION_SECONDS.items()
    }


def ensure_ttl_indexes(db: Database[Document]) -> dict[str, list[str]]:
    """Create the TTL indexes (idempotent); the index names created per collection."""
    return {
        collection: db[collection].create_indexes([model])
        for collection, model in ttl_index_models().items()
    }


class MongoExecutionLog:
    """:class:`ExecutionLog` on a MongoDB database (``MONGO_URL`` names it)."""

    def __init__(self, db: Database[Document]) -> None:
        self._db = db

    @classmethod
    def from_url(cls, url: str) -> MongoExecutionLog:
        """Connects lazily: nothing is sent before the first index creation or write."""
        from pymongo import MongoClient

        client: MongoClient[Document] = MongoClient(
            url, serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS, tz_aware=True
        )
        return cls(client.get_default_database())

    @property
    def db(self) -> Database[Document]:
        return self._db

    def ensure_indexes(self) -> dict[str, list[str]]:
        return ensure_ttl_indexes(self._db)

    def step_finished(self, record: StepRecord) -> None:
        self._collection(EXECUTION_LOGS).insert_one({"kind": "step", **_document(record)})

    def run_finished(self, record: RunRecord) -> None:
        document = _document(record)
        self._collection(EXECUTION_LOGS).insert_one({"kind": "run", **document})
        audit: Document = {
            "action": "workflow.run",
            "actor": "runner",
            "run_id": record.run_id,
            "tenant_id": record.tenant_id,
            "workflow_id": record.workflow_id,
            "outcome": record.status,
            "created_at": record.created_at,
        }
        self._collection(AUDIT_LOGS).insert_one(audit)

    def close(self) -> None:
        self._db.client.close()

    def _collection(self, name: str) -> Collection[Document]:
        return self._db[name]


def _document(record: StepRecord | RunRecord) -> Document:
    return asdict(record)
