"""Issue 15 live: real faults fire the project's alerts through Prometheus and Alertmanager.

Redis, PostgreSQL, the example api and runner, the PostgreSQL, Redis and node exporters, a
Pushgateway, Prometheus and Alertmanager (Debian's binaries) run on loopback ports, loaded
with deploy/observability's own files through the documented test override (stack.py:
durations divided by 60, targets on 127.0.0.1, secrets in temporary files). Redis refusing
writes makes the api answer 503, a thousand jobs wait with no runner: ApiHighErrorRate and
QueueBacklogHigh fire, Slack and PagerDuty (a loopback receiver) get them with their
runbook; the load stops, the runner drains the queue, and both resolve. The same stack
then proves every metric the rules and dashboards name is exported by a live target.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
import yaml
from psycopg import sql

from tests.observability.conftest import OBSERVABILITY, RULES, RUNBOOK_BASE, RUNBOOKS, debian_tool
from tests.observability.gateway import run_pushgateway
from tests.observability.promql import metric_names
from tests.observability.services import (
    api_command,
    build_both,
    free_port,
    get,
    post_json,
    redis,
    redis_command,
    redis_server_or_skip,
    runner_command,
    sample,
    started,
    wait_until,
)
from tests.observability.stack import (
    Receiver,
    alertmanager,
    daemon,
    firing,
    live_alertmanager_config,
    live_prometheus_config,
    metric_names_of,
    prometheus,
    query,
    receiver,
)
from wormhole_ci.observability.push import Command, Pushgateway, RunSignal
from wormhole_ci.pgtemp import TempPostgres, create_role_and_database, drop_role_and_database

pytestmark = [pytest.mark.slow, pytest.mark.ops, pytest.mark.postgres]
QUEUE = "workflow-runs"
BACKLOG = 1010
"""Jobs enqueued with no runner: more than QueueBacklogHigh's threshold of 1000."""
JOB = {
    "tenant_id": "tenant-live",
    "definition": {"steps": [{"id": "noop", "type": "delay", "config": {"seconds": 0}}]},
}
DASHBOARDS = sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json"))
UNAVAILABLE_HERE: dict[str, str] = {}
"""Metrics the rules or dashboards name that no live target here can export, with the
reason. Empty: node-exporter runs too (Debian prometheus-node-exporter)."""
SCRAPE_SERIES = {"up"}
"""Series Prometheus makes itself for every target (metrics.txt's source `scrape`)."""


def test_api_errors_and_a_queue_backlog_alert_and_resolve(
    tmp_path: Path, pg_server: TempPostgres
) -> None:
    tools = {
        name: debian_tool(name, package)
        for name, package in [
            ("prometheus", "prometheus"),
            ("prometheus-alertmanager", "prometheus-alertmanager"),
            ("prometheus-postgres-exporter", "prometheus-postgres-exporter"),
            ("prometheus-redis-exporter", "prometheus-redis-exporter"),
            ("prometheus-node-exporter", "prometheus-node-exporter"),
        ]
    }
    redis_binary = redis_server_or_skip()
    started_at = time.monotonic()
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        # The builds take the longest: the rest of the stack starts meanwhile.
        build = pool.submit(build_both, tmp_path)
        redis_url = stack.enter_context(redis(redis_binary, tmp_path))
        dsn = stack.enter_context(monitoring_role(pg_server))
        ports = {
            job: free_port()
            for job in (
                "postgres-exporter",
                "redis-exporter",
                "node-exporter",
                "alertmanager",
                "prometheus",
                "api",
                "runner",
            )
        }
        exporters = {
            "postgres-exporter": (
                [str(tools["prometheus-postgres-exporter"])],
                {"DATA_SOURCE_NAME": dsn},
            ),
            "redis-exporter": (
                [str(tools["prometheus-redis-exporter"]), f"--redis.addr={redis_url}"],
                {},
            ),
            "node-exporter": ([str(tools["prometheus-node-exporter"])], {}),
        }
        for job, (argv, env) in exporters.items():
            address = f"127.0.0.1:{ports[job]}"
            argv.append(f"--web.listen-address={address}")
            log = tmp_path / f"{job}.log"
            stack.enter_context(daemon(job, argv, f"http://{address}", "/metrics", log, env))
        gateway = stack.enter_context(run_pushgateway(tmp_path))
        # A successful deploy pushed, so the gateway exports the pipeline's metrics.
        pushed = Pushgateway(gateway.url).push(
            [RunSignal(Command.DEPLOY, "staging", "verified", True, "live000", seconds=1.0)], print
        )
        assert pushed
        notified = stack.enter_context(receiver())
        am_config = live_alertmanager_config(notified.url, free_port(), tmp_path / "am")
        manager = stack.enter_context(
            alertmanager(
                tools["prometheus-alertmanager"], am_config, tmp_path, ports["alertmanager"]
            )
        )
        api_dir, runner_dir = build.result()
        print(
            f"setup (builds, redis, postgres, exporters, alertmanager): {time.monotonic() - started_at:.1f} s"
        )

        phase = time.monotonic()
        node, api_env = api_command(api_dir, redis_url, ports["api"])
        api = stack.enter_context(started("api", node, api_dir, api_env, ports["api"]))
        targets = {job: f"127.0.0.1:{port}" for job, port in ports.items()}
        targets["pushgateway"] = gateway.url.removeprefix("http://")
        config = live_prometheus_config(
            RULES, targets, targets["alertmanager"], tmp_path / "prometheus"
        )
        prom = stack.enter_context(
            prometheus(tools["prometheus"], config, tmp_path, ports["prometheus"])
        )

        # No runner yet: the jobs wait.
        trigger = f"{api.url}/workflows/wf-live/runs"
        with ThreadPoolExecutor(8) as posting:
            statuses = list(posting.map(post_json, [trigger] * BACKLOG, [JOB] * BACKLOG))
        assert [status for status, _ in statuses] == [202] * BACKLOG
        waiting = sample(
            get(f"{api.url}/metrics"), "wormhole_queue_waiting_jobs", f'queue="{QUEUE}"'
        )
        assert waiting == BACKLOG
        # Redis at its memory limit refuses writes (BullMQ needs noeviction): triggers get 503.
        redis_command(redis_url, "CONFIG", "SET", "maxmemory-policy", "noeviction")
        redis_command(redis_url, "CONFIG", "SET", "maxmemory", "1")
        load = stack.enter_context(error_load(trigger))
        print(
            f"load (api, prometheus, {BACKLOG} jobs, redis full): {time.monotonic() - phase:.1f} s"
        )

        phase = time.monotonic()
        wanted = [("ApiHighErrorRate", "critical"), ("QueueBacklogHigh", "warning")]
        alerts = wait_until(
            "ApiHighErrorRate (critical) and QueueBacklogHigh (warning) firing in Prometheus",
            lambda: fired(prom.url, wanted),
            timeout=60,
        )
        api_alert, queue_alert = alerts[wanted[0]], alerts[wanted[1]]
        assert (api_alert["labels"]["team"], api_alert["labels"]["service"]) == ("backend", "api")
        assert queue_alert["labels"]["team"] == "workflows"
        assert queue_alert["labels"]["queue"] == QUEUE
        assert_runbook(api_alert["annotations"]["runbook_url"], "high-error-rate.md")
        assert_runbook(queue_alert["annotations"]["runbook_url"], "queue-backing-up.md")

        slack_api = wait_until(
            "Slack: ApiHighErrorRate firing",
            lambda: slack_message(notified, "FIRING", "ApiHighErrorRate"),
        )
        slack_queue = wait_until(
            "Slack: QueueBacklogHigh firing",
            lambda: slack_message(notified, "FIRING", "QueueBacklogHigh"),
        )
        page = wait_until(
            "PagerDuty: ApiHighErrorRate triggered",
            lambda: pagerduty_event(notified, "trigger", "ApiHighErrorRate"),
        )
        assert slack_api["channel"] == "#wormhole-backend-alerts"
        assert slack_queue["channel"] == "#wormhole-workflows-alerts"
        for message, runbook in (
            (slack_api, "high-error-rate.md"),
            (slack_queue, "queue-backing-up.md"),
        ):
            [button] = message["attachments"][0]["actions"]
            assert_runbook(button["url"], runbook)
        assert page["routing_key"] == "routing-key-for-the-test"
        assert page["payload"]["severity"] == "critical"
        assert [link["href"] for link in page["links"]] == [api_alert["annotations"]["runbook_url"]]
        # the warning of the same alert is inhibited by the critical one: never a page or message
        assert not [p for p in notified.pagerduty() if "QueueBacklogHigh" in json.dumps(p)]
        print(
            f"fire (prometheus, alertmanager, slack, pagerduty): {time.monotonic() - phase:.1f} s"
        )

        phase = time.monotonic()
        statuses = load.stop()
        assert statuses and set(statuses) == {503}, statuses
        redis_command(redis_url, "CONFIG", "SET", "maxmemory", "0")
        python, runner_env = runner_command(
            runner_dir, redis_url, ports["runner"], RUNNER_CONCURRENCY="16"
        )
        runner = stack.enter_context(
            started("runner", python, runner_dir, runner_env, ports["runner"])
        )
        wait_until(
            "the runner draining the backlog",
            lambda: (
                sample(get(f"{api.url}/metrics"), "wormhole_queue_waiting_jobs", f'queue="{QUEUE}"')
                == 0
            ),
            timeout=60,
        )
        wait_until(
            "ApiHighErrorRate and QueueBacklogHigh no longer firing",
            lambda: (
                not [
                    a
                    for a in firing(prom.url)
                    if a["labels"]["alertname"] in {"ApiHighErrorRate", "QueueBacklogHigh"}
                ]
            ),
            timeout=60,
        )
        wait_until(
            "Slack: ApiHighErrorRate resolved",
            lambda: slack_message(notified, "RESOLVED", "ApiHighErrorRate"),
        )
        wait_until(
            "Slack: QueueBacklogHigh resolved",
            lambda: slack_message(notified, "RESOLVED", "QueueBacklogHigh"),
        )
        resolved = wait_until(
            "PagerDuty: ApiHighErrorRate resolved",
            lambda: pagerduty_event(notified, "resolve", "ApiHighErrorRate"),
        )
        assert resolved["dedup_key"] == page["dedup_key"]
        print(f"resolve (load stopped, runner drains): {time.monotonic() - phase:.1f} s")

        phase = time.monotonic()
        expositions = {
            job: get(f"http://{targets[job]}/metrics")
            for job in (
                "api",
                "runner",
                "postgres-exporter",
                "redis-exporter",
                "node-exporter",
                "pushgateway",
                "alertmanager",
                "prometheus",
            )
        }
        assert manager.url.endswith(str(ports["alertmanager"])) and runner.port == ports["runner"]
        live = set[str]().union(*(metric_names_of(text) for text in expositions.values()))
        live |= {name for name in SCRAPE_SERIES if query(prom.url, name)}
        used = referenced_metrics()
        missing = {name: files for name, files in used.items() if name not in live}
        assert set(missing) == set(UNAVAILABLE_HERE), (
            "\n".join(
                f"{name}: named by {', '.join(sorted(files))}, exported by no live target"
                for name, files in sorted(missing.items())
                if name not in UNAVAILABLE_HERE
            )
            or f"listed as unavailable but exported: {sorted(set(UNAVAILABLE_HERE) - set(missing))}"
        )
        print(
            f"metrics ({len(used)} names checked against {len(live)} live): {time.monotonic() - phase:.1f} s"
        )
    print(f"total: {time.monotonic() - started_at:.1f} s")


@contextlib.contextmanager
def monitoring_role(server: TempPostgres) -> Generator[str]:
    """A database and a login role with pg_monitor (what postgres_exporter's documentation
    asks for), as the exporter's DATA_SOURCE_NAME; dropped afterwards."""
    token = secrets.token_hex(4)
    role, dbname, password = f"exporter_{token}", f"wormhole_{token}", secrets.token_hex(12)
    create_role_and_database(server, role, password, dbname)
    try:
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(role)))
        # lib/pq (the exporter's driver) defaults to sslmode=require; the cluster has no TLS.
        yield server.url(dbname, role, password) + "?sslmode=disable"
    finally:
        drop_role_and_database(server, role, dbname)


class ErrorLoad:
    """Triggers posted every 50 ms from a thread until stopped; their status codes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._post, daemon=True)

    def _post(self) -> None:
        while not self._stop.wait(0.05):
            self.statuses.append(post_json(self.url, JOB)[0])

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "the error load did not stop within 15 s"
        return self.statuses


@contextlib.contextmanager
def error_load(url: str) -> Generator[ErrorLoad]:
    load = ErrorLoad(url)
    load._thread.start()  # pyright: ignore[reportPrivateUsage]
    try:
        yield load
    finally:
        load.stop()


def fired(
    prometheus_url: str, wanted: list[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]] | None:
    """The firing alerts by (alertname, severity) once every `wanted` one fires."""
    alerts = {
        (a["labels"]["alertname"], a["labels"]["severity"]): a for a in firing(prometheus_url)
    }
    return alerts if all(key in alerts for key in wanted) else None


def assert_runbook(url: str, name: str) -> None:
    """`url` is the runbook `name` under RUNBOOK_BASE, and that file exists."""
    assert url == f"{RUNBOOK_BASE}{name}", url
    assert (RUNBOOKS / name).is_file(), f"{url}: no {name} in {RUNBOOKS}"


def slack_message(notified: Receiver, status: str, alertname: str) -> dict[str, Any] | None:
    """The first Slack message titled `[status] alertname (staging)`: the environment is
    Prometheus' external label, so the title proves it reached Alertmanager too."""
    title = f"[{status}] {alertname} (staging)"
    found = [m for m in notified.slack() if m["attachments"][0]["title"] == title]
    return found[0] if found else None


def pagerduty_event(notified: Receiver, action: str, alertname: str) -> dict[str, Any] | None:
    """The first PagerDuty Events v2 message `action` (trigger | resolve) about `alertname`."""
    found = [
        e
        for e in notified.pagerduty()
        if e["event_action"] == action and alertname in json.dumps(e["payload"])
    ]
    return found[0] if found else None


def _exprs(node: object) -> Generator[str]:
    """Every `expr` of a dashboard's JSON (panel targets), wherever it is nested."""
    if isinstance(node, dict):
        for key, value in cast("dict[str, object]", node).items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in cast("list[object]", node):
            yield from _exprs(item)


def referenced_metrics() -> dict[str, set[str]]:
    """Every metric name the alert rules and dashboards query, with the files naming it."""
    used: defaultdict[str, set[str]] = defaultdict(set)
    for path in RULES:
        doc = cast("dict[str, Any]", yaml.safe_load(path.read_text()))
        for group in doc["groups"]:
            for rule in group["rules"]:
                for name in metric_names(rule["expr"]):
                    used[name].add(f"rules/{path.name}")
    for path in DASHBOARDS:
        for expr in _exprs(json.loads(path.read_text())):
            for name in metric_names(expr):
                used[name].add(f"dashboards/{path.name}")
    return dict(used)
