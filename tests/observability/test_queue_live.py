"""A workflow run through a real Redis (issue 15, item 1): the example api enqueues it with
BullMQ, the example runner's BullMQ worker runs it, and both ``/metrics`` endpoints show it.

Debian's ``redis-server`` runs on a free loopback port without persistence. The api is the
example's own build (``pnpm install``, ``prisma generate``, ``tsc``; ``node dist/index.js``)
and the runner its own venv (``uv sync --frozen --no-dev``; ``python -m runner.main``), both
from copies of the example, with the pnpm store and uv cache that ``wormhole-ci check`` uses.
Without ``redis-server`` the test is skipped, saying so, except under ``CI=true``, where it
fails: CI must not pass by skipping what it is there to prove.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.observability.services import (
    api_command,
    build_both,
    free_port,
    get,
    post_json,
    redis,
    redis_server_or_skip,
    runner_command,
    sample,
    started,
    wait_until,
)

pytestmark = pytest.mark.slow
QUEUE = "workflow-runs"
TENANT = "tenant-live"


DEFINITION = {
    "steps": [
        {"id": "tag", "type": "transform", "next": ["pause"],
         "config": {"operations": [{"op": "set", "path": "tagged", "value": True}]}},
        {"id": "pause", "type": "delay", "config": {"seconds": 0}},
    ]
}  # fmt: skip
BROKEN = {"steps": [{"id": "bad", "type": "delay", "config": {"seconds": -1}}]}


def test_a_run_flows_from_the_api_through_redis_to_the_runner(tmp_path: Path) -> None:
    binary = redis_server_or_skip()
    setup_started = time.monotonic()
    api_dir, runner_dir = build_both(tmp_path)
    print(f"setup (install, generate, build): {time.monotonic() - setup_started:.1f} s")

    flow_started = time.monotonic()
    with redis(binary, tmp_path) as redis_url:
        api_port, runner_port = free_port(), free_port()
        node, api_env = api_command(api_dir, redis_url, api_port)
        with started("api", node, api_dir, api_env, api_port) as api:
            # Enqueued before any runner exists: the backlog shows on the api's /metrics.
            status, first = post_json(
                f"{api.url}/workflows/wf-live/runs",
                {"tenant_id": TENANT, "definition": DEFINITION, "input": {"order": 7}},
            )
            assert status == 202, first
            backlog = get(f"{api.url}/metrics")
            assert sample(backlog, "wormhole_queue_waiting_jobs", f'queue="{QUEUE}"') == 1
            oldest = sample(backlog, "wormhole_queue_oldest_waiting_seconds", f'queue="{QUEUE}"')
            assert oldest is not None and oldest >= 0, backlog

            python, runner_env = runner_command(runner_dir, redis_url, runner_port)
            with started("runner", python, runner_dir, runner_env, runner_port) as runner:
                status, second = post_json(
                    f"{api.url}/workflows/wf-live/runs", {"tenant_id": TENANT, "definition": BROKEN}
                )
                assert status == 202, second

                def runner_done() -> str | None:
                    text = get(f"{runner.url}/metrics")
                    done = sample(text, "wormhole_runner_runs_total", 'outcome="succeeded"')
                    failed = sample(text, "wormhole_runner_runs_total", 'outcome="failed"')
                    return text if (done, failed) == (1.0, 1.0) else None

                runner_metrics = wait_until("both runs on the runner", runner_done)
                assert (
                    sample(runner_metrics, "wormhole_runner_runs_total", 'outcome="started"') == 2
                )
                assert sample(runner_metrics, "wormhole_runner_trigger_delay_seconds_count") == 2
                assert sample(runner_metrics, "wormhole_runner_run_duration_seconds_count") == 2
                assert "process_cpu_seconds_total" in runner_metrics

                def api_sees_failure() -> str | None:
                    text = get(f"{api.url}/metrics")
                    failed = sample(text, "wormhole_queue_failed_jobs", f'queue="{QUEUE}"')
                    return text if failed == 1.0 else None

                api_metrics = wait_until("the failed job on the api's /metrics", api_sees_failure)
                assert sample(api_metrics, "wormhole_queue_waiting_jobs", f'queue="{QUEUE}"') == 0
                assert sample(api_metrics, "wormhole_queue_oldest_waiting_seconds", f'queue="{QUEUE}"') == 0  # fmt: skip
                labels = 'route="/workflows/:id/runs",method="POST",status_code="202"'
                assert sample(api_metrics, "http_requests_total", labels) == 2
                assert sample(api_metrics, "http_request_duration_seconds_count", labels) == 2
                assert "process_cpu_seconds_total" in api_metrics
                assert runner.stop() == 0, runner.log.read_text()
            assert api.stop() == 0, api.log.read_text()
    print(f"flow (redis, api, runner, two runs): {time.monotonic() - flow_started:.1f} s")

    # One JSON line format on both sides, with the run's ids.
    platform = ["time", "level", "service", "tenant_id", "run_id", "message"]
    api_lines, runner_lines = api.lines(), runner.lines()
    for line in api_lines + runner_lines:
        assert list(line)[:6] == platform, line
    [enqueued] = [e for e in api_lines if e["run_id"] == first["run_id"]]
    assert enqueued == {
        **enqueued,
        "service": "api",
        "tenant_id": TENANT,
        "message": "run enqueued",
        "workflow_id": "wf-live",
    }
    finished = [e for e in runner_lines if e["message"] == "run finished"]
    assert [(e["service"], e["run_id"], e["tenant_id"]) for e in finished] == [
        ("runner", first["run_id"], TENANT)
    ]
    [failed] = [e for e in runner_lines if e["message"] == "run failed"]
    assert failed["run_id"] == second["run_id"]
