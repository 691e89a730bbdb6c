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
import re
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
import yaml
from psycopg import sql

from tests.observability.conftest import OBSERVABILITY, RULES, RUNBOOK_BASE, RUNBOOKS, debian_tool
from tests.observability.gateway import run_pushgateway
from tests.observability.services import (
    Service,
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
    Daemon,
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
from wormhole_ci.delivery.promql import metric_names, read_inventory
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


@dataclass
class Live:
    """The running stack; the runner starts only when a test asks for it."""

    stack: contextlib.ExitStack
    workdir: Path
    redis_url: str
    runner_dir: Path
    runner_port: int
    api: Service
    prometheus: Daemon
    notified: Receiver
    targets: dict[str, str]
    runner: Service | None = None

    def start_runner(self) -> Service:
        if self.runner is None:
            argv, env = runner_command(
                self.runner_dir, self.redis_url, self.runner_port, RUNNER_CONCURRENCY="16"
            )
            self.runner = self.stack.enter_context(
                started("runner", argv, self.runner_dir, env, self.runner_port)
            )
        return self.runner

    def waiting_jobs(self) -> float | None:
        metrics = get(f"{self.api.url}/metrics")
        return sample(metrics, "wormhole_queue_waiting_jobs", f'queue="{QUEUE}"')


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pg_server: TempPostgres) -> Iterator[Live]:
    """Everything but the runner, started once for the module (every process stopped after)."""
    tools = {
        name: debian_tool(name, name)
        for name in (
            "prometheus",
            "prometheus-alertmanager",
            "prometheus-postgres-exporter",
            "prometheus-redis-exporter",
            "prometheus-node-exporter",
        )
    }
    redis_binary = redis_server_or_skip()
    workdir = tmp_path_factory.mktemp("live")
    started_at = time.monotonic()
    jobs = ("postgres-exporter", "redis-exporter", "node-exporter", "alertmanager", "prometheus")
    ports = {job: free_port() for job in (*jobs, "api", "runner")}
    targets = {job: f"127.0.0.1:{port}" for job, port in ports.items()}
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        # The builds take the longest: the rest of the stack starts meanwhile.
        build = pool.submit(build_both, workdir)
        redis_url = stack.enter_context(redis(redis_binary, workdir))
        dsn = stack.enter_context(monitoring_role(pg_server))
        exporters = {
            "postgres-exporter": (["--log.level=warn"], {"DATA_SOURCE_NAME": dsn}),
            "redis-exporter": ([f"--redis.addr={redis_url}"], {}),
            "node-exporter": (["--log.level=warn"], {}),
        }
        for job, (args, env) in exporters.items():
            argv = [str(tools[f"prometheus-{job}"]), *args, f"--web.listen-address={targets[job]}"]
            log = workdir / f"{job}.log"
            stack.enter_context(daemon(job, argv, f"http://{targets[job]}", "/metrics", log, env))
        gateway = stack.enter_context(run_pushgateway(workdir))
        targets["pushgateway"] = gateway.url.removeprefix("http://")
        # A successful deploy pushed, so the gateway exports the pipeline's metrics.
        deployed = RunSignal(Command.DEPLOY, "staging", "verified", True, "live000", seconds=1.0)
        assert Pushgateway(gateway.url).push([deployed], print)
        notified = stack.enter_context(receiver())
        am_config = live_alertmanager_config(notified.url, free_port(), workdir / "am")
        stack.enter_context(
            alertmanager(
                tools["prometheus-alertmanager"], am_config, workdir, ports["alertmanager"]
            )
        )
        api_dir, runner_dir = build.result()
        # The api before Prometheus: an api unscraped for 2 s is a TargetDown, which inhibits
        # the api's other alerts.
        node, api_env = api_command(api_dir, redis_url, ports["api"])
        api = stack.enter_context(started("api", node, api_dir, api_env, ports["api"]))
        rules = live_prometheus_config(RULES, targets, targets["alertmanager"], workdir / "prom")
        prom = stack.enter_context(
            prometheus(tools["prometheus"], rules, workdir, ports["prometheus"])
        )
        print(f"\nsetup (builds; redis, postgres, exporters, alertmanager, api, prometheus): "
              f"{time.monotonic() - started_at:.1f} s")  # fmt: skip
        yield Live(stack, workdir, redis_url, runner_dir, ports["runner"], api, prom, notified, targets)  # fmt: skip


def test_api_errors_and_a_queue_backlog_fire_page_and_resolve(live: Live) -> None:
    assert live.runner is None, "the backlog needs the runner stopped: run this test first"
    phase = time.monotonic()
    trigger = f"{live.api.url}/workflows/wf-live/runs"
    with ThreadPoolExecutor(8) as posting:
        answers = list(posting.map(post_json, [trigger] * BACKLOG, [JOB] * BACKLOG))
    assert [status for status, _ in answers] == [202] * BACKLOG
    assert live.waiting_jobs() == BACKLOG
    # Redis at its memory limit refuses writes (BullMQ needs noeviction): triggers get 503.
    redis_command(live.redis_url, "CONFIG", "SET", "maxmemory-policy", "noeviction")
    redis_command(live.redis_url, "CONFIG", "SET", "maxmemory", "1")
    with error_load(trigger) as load:
        print(f"\nload ({BACKLOG} jobs, redis full): {time.monotonic() - phase:.1f} s")
        phase = time.monotonic()
        page = assert_fired(live)
        print(f"fire (prometheus, alertmanager, slack, pagerduty): {time.monotonic() - phase:.1f} s")  # fmt: skip
        statuses = load.stop()
    assert statuses and set(statuses) == {503}, statuses

    phase = time.monotonic()
    redis_command(live.redis_url, "CONFIG", "SET", "maxmemory", "0")
    live.start_runner()
    wait_until("the runner draining the backlog", lambda: live.waiting_jobs() == 0, timeout=60)
    assert_resolved(live, page)
    print(f"resolve (load stopped, runner drains): {time.monotonic() - phase:.1f} s")


def assert_fired(live: Live) -> dict[str, Any]:
    """ApiHighErrorRate (critical) and QueueBacklogHigh fire in Prometheus with their
    labels, reach Slack and (the critical one) PagerDuty with their runbook; the page."""
    wanted = [("ApiHighErrorRate", "critical"), ("QueueBacklogHigh", "warning")]
    alerts = wait_until(
        "ApiHighErrorRate (critical) and QueueBacklogHigh (warning) firing in Prometheus",
        lambda: fired(live.prometheus.url, wanted),
        timeout=60,
    )
    api_alert, queue_alert = alerts[wanted[0]], alerts[wanted[1]]
    assert (api_alert["labels"]["team"], api_alert["labels"]["service"]) == ("backend", "api")
    assert (queue_alert["labels"]["team"], queue_alert["labels"]["queue"]) == ("workflows", QUEUE)
    assert_runbook(api_alert["annotations"]["runbook_url"], "high-error-rate.md")
    assert_runbook(queue_alert["annotations"]["runbook_url"], "queue-backing-up.md")

    notified = live.notified
    expected = [
        ("ApiHighErrorRate", "#wormhole-backend-alerts", "high-error-rate.md"),
        ("QueueBacklogHigh", "#wormhole-workflows-alerts", "queue-backing-up.md"),
    ]
    for alertname, channel, runbook in expected:
        message = wait_until(
            f"Slack: {alertname} firing", partial(slack_message, notified, "FIRING", alertname)
        )
        assert message["channel"] == channel
        [button] = message["attachments"][0]["actions"]
        assert_runbook(button["url"], runbook)
    page = wait_until(
        "PagerDuty: ApiHighErrorRate triggered",
        partial(pagerduty_event, notified, "trigger", "ApiHighErrorRate"),
    )
    assert page["routing_key"] == "routing-key-for-the-test"
    assert page["payload"]["severity"] == "critical"
    assert [link["href"] for link in page["links"]] == [api_alert["annotations"]["runbook_url"]]
    return page


def assert_resolved(live: Live, page: dict[str, Any]) -> None:
    """Both alerts stop firing; Slack gets them resolved, PagerDuty the page's resolve."""
    names = {"ApiHighErrorRate", "QueueBacklogHigh"}
    wait_until(
        "ApiHighErrorRate and QueueBacklogHigh no longer firing",
        lambda: not [a for a in firing(live.prometheus.url) if a["labels"]["alertname"] in names],
        timeout=60,
    )
    for alertname in sorted(names):
        wait_until(
            f"Slack: {alertname} resolved",
            partial(slack_message, live.notified, "RESOLVED", alertname),
        )
    resolved = wait_until(
        "PagerDuty: ApiHighErrorRate resolved",
        partial(pagerduty_event, live.notified, "resolve", "ApiHighErrorRate"),
    )
    assert resolved["dedup_key"] == page["dedup_key"]
    # Only criticals page: the two faults' own, and what they cause on the way (Redis at
    # maxmemory; the runner, stopped while the backlog grew, unscraped). Never a warning.
    paged = {
        name
        for event in live.notified.pagerduty()
        if event["event_action"] == "trigger"
        for name in alertnames(event)
    }
    assert paged == {"ApiHighErrorRate", "RedisMemoryHigh", "TargetDown"}, paged


def test_every_metric_the_rules_and_dashboards_name_is_exported_live(live: Live) -> None:
    phase = time.monotonic()
    runner = live.start_runner()
    # One finished run, so the runner's labelled series exist even when run alone.
    status, _ = post_json(f"{live.api.url}/workflows/wf-live/runs", JOB)
    assert status == 202
    succeeded = 'outcome="succeeded"'
    wait_until(
        "a run finished on the runner",
        lambda: sample(get(f"{runner.url}/metrics"), "wormhole_runner_runs_total", succeeded),
    )
    expositions = {job: get(f"http://{address}/metrics") for job, address in live.targets.items()}
    live_names = set[str]().union(*(metric_names_of(text) for text in expositions.values()))
    # Prometheus scrapes every target: what it makes per target (up) is live too.
    wait_until(
        "every target up in Prometheus",
        lambda: len(query(live.prometheus.url, "up == 1")) == len(live.targets),
    )
    live_names |= {name for name in SCRAPE_SERIES if query(live.prometheus.url, name)}
    used = referenced_metrics()
    missing = {name: files for name, files in used.items() if name not in live_names}
    assert set(missing) == set(UNAVAILABLE_HERE), (
        "\n".join(
            f"{name}: named by {', '.join(sorted(files))}, exported by no live target"
            for name, files in sorted(missing.items())
            if name not in UNAVAILABLE_HERE
        )
        or f"listed as unavailable but exported: {sorted(set(UNAVAILABLE_HERE) - set(missing))}"
    )
    # metrics.txt names the scrape job of each: that job's own /metrics has it
    misplaced = [
        f"{entry.name} (metrics.txt: {entry.source})"
        for entry in read_inventory(OBSERVABILITY / "metrics.txt")
        if entry.source != "scrape" and entry.name not in UNAVAILABLE_HERE
        if entry.name not in metric_names_of(expositions[entry.source])
    ]
    assert not misplaced, f"not exported by the job metrics.txt names: {misplaced}"
    print(f"\nmetrics ({len(used)} names, {len(live_names)} live): {time.monotonic() - phase:.1f} s")  # fmt: skip


@contextlib.contextmanager
def monitoring_role(server: TempPostgres) -> Generator[str]:
    """A database and a login role with pg_monitor (what postgres_exporter's documentation
    asks for), as the exporter's DATA_SOURCE_NAME; dropped afterwards."""
    token = secrets.token_hex(4)
    role, dbname, password = f"exporter_{token}", f"wormhole_{token}", secrets.token_hex(12)
    create_role_and_database(server, role, password, dbname)
    try:
        with psycopg.connect(server.conninfo(), autocommit=True, connect_timeout=10) as conn:
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

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "the error load did not stop within 15 s"
        return self.statuses


@contextlib.contextmanager
def error_load(url: str) -> Generator[ErrorLoad]:
    """Triggers posted until the block ends (or `stop()`)."""
    load = ErrorLoad(url)
    load.start()
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
        if e["event_action"] == action and alertname in alertnames(e)
    ]
    return found[0] if found else None


def alertnames(event: dict[str, Any]) -> set[str]:
    """The alerts a PagerDuty event is about (Alertmanager lists their labels in its details)."""
    return set(re.findall(r"alertname = (\w+)", json.dumps(event["payload"]["custom_details"])))


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
