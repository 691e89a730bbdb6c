"""The log shipping configuration: Vector labels every Wormhole line by service, tenant and
stream (run id as structured metadata) and Loki keeps execution logs 30 days, audit 90."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import EXAMPLE

OBSERVABILITY = EXAMPLE / "deploy" / "observability"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_loki_keeps_execution_logs_30_days_and_audit_logs_90() -> None:
    loki = load(OBSERVABILITY / "loki" / "loki.yaml")
    assert loki["compactor"]["retention_enabled"] is True  # without it nothing is deleted
    limits = loki["limits_config"]
    assert limits["retention_period"] == "720h"
    assert limits["retention_stream"] == [
        {"selector": '{stream="audit"}', "priority": 1, "period": "2160h"}
    ]
    assert limits["allow_structured_metadata"] is True


def test_vector_ships_the_services_json_lines_with_their_labels() -> None:
    vector = load(OBSERVABILITY / "vector" / "vector.yaml")
    sink = vector["sinks"]["loki"]
    assert sink["endpoint"] == "http://loki:3100"
    assert sink["inputs"] == ["wormhole"]
    assert set(sink["labels"]) == {"environment", "service", "tenant", "level", "stream"}
    assert sink["labels"]["stream"] == "{{ stream }}"
    # the run id is searchable but not a label (one stream per run would swamp the index)
    assert sink["structured_metadata"]["run_id"] == "{{ run_id }}"
    remap = vector["transforms"]["wormhole"]["source"]
    for field in ("parse_json", ".tenant_id", ".run_id", '"audit"', '"execution"'):
        assert field in remap
    assert vector["api"]["address"].startswith("127.0.0.1:")  # the stack's healthcheck


def test_the_stack_mounts_both_configurations() -> None:
    stack = (EXAMPLE / "deploy" / "coolify" / "docker-compose.yml").read_text()
    assert "./deploy/observability/loki/loki.yaml:/etc/loki/loki.yaml:ro" in stack
    assert "./deploy/observability/vector/vector.yaml:/etc/vector/vector.yaml:ro" in stack
