"""The Grafana dashboards of a Wormhole environment, as code: API, Queue, Runner, Database
and Delivery, written to dashboards/<uid>.json (`make dashboards`; `--check` compares)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row, ThresholdsConfig
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
)

OUT = Path(__file__).resolve().parent / "dashboards"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
"""The provisioned Prometheus data source of the environment's Grafana (one per environment)."""

# Panel widths on Grafana's 24-column grid.
HALF, THIRD = 12, 8


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel and how its series are named."""

    expr: str
    legend: str = ""


def query(q: Query, ref: str) -> Dataquery:
    built = Dataquery().expr(q.expr).ref_id(ref).datasource(PROMETHEUS)
    return built.legend_format(q.legend) if q.legend else built


def thresholds(*steps: tuple[float, str]) -> ThresholdsConfig:
    """Green below the first step, then each (value, colour): the alerts' thresholds."""
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps(
            [Threshold(value=None, color="green")] + [Threshold(value=v, color=c) for v, c in steps]
        )
    )


def timeseries(
    title: str,
    unit: str,
    *queries: Query,
    width: int = HALF,
    description: str = "",
    limits: tuple[tuple[float, str], ...] = (),
) -> Timeseries:
    panel = Timeseries().title(title).unit(unit).min(0).span(width).height(8).datasource(PROMETHEUS)
    if description:
        panel = panel.description(description)
    if limits:
        # drawn as dashed lines: the alert thresholds on the graph
        panel = panel.thresholds(thresholds(*limits)).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED)
        )
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(query(q, ref))
    return panel


def stat(title: str, unit: str, q: Query, *, limits: tuple[tuple[float, str], ...] = ()) -> Stat:
    panel = Stat().title(title).unit(unit).span(THIRD).height(4).datasource(PROMETHEUS)
    if limits:
        panel = panel.thresholds(thresholds(*limits))
    return panel.with_target(query(q, "A"))


def dashboard(uid: str, title: str) -> Dashboard:
    return (
        Dashboard(f"Wormhole / {title}")
        .uid(f"wormhole-{uid}")
        .tags(["wormhole", "generated"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .readonly()
    )


RATE = "$__rate_interval"


def api() -> Dashboard:
    count = 'http_request_duration_seconds_count{job="api"}'
    errors = 'http_request_duration_seconds_count{job="api", status_code=~"5.."}'
    bucket = 'http_request_duration_seconds_bucket{job="api"}'
    return (
        dashboard("api", "API")
        .with_row(Row("Requests"))
        .with_panel(
            timeseries(
                "Request rate by route",
                "reqps",
                Query(f"sum by (route, method) (rate({count}[{RATE}]))", "{{method}} {{route}}"),
            )
        )
        .with_panel(
            timeseries(
                "5xx ratio",
                "percentunit",
                Query(f"sum(rate({errors}[{RATE}])) / sum(rate({count}[{RATE}]))", "5xx ratio"),
                description="ApiHighErrorRate: warning above 1%, critical above 5%.",
                limits=((0.01, "orange"), (0.05, "red")),
            )
        )
        .with_panel(
            timeseries(
                "5xx by route and status",
                "reqps",
                Query(
                    f"sum by (route, status_code) (rate({errors}[{RATE}]))",
                    "{{status_code}} {{route}}",
                ),
                width=24,
            )
        )
        .with_row(Row("Latency"))
        .with_panel(
            timeseries(
                "Latency p50 / p95 / p99",
                "s",
                *(
                    Query(
                        f"histogram_quantile({q}, sum by (le) (rate({bucket}[{RATE}])))",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ),
                description="ApiLatencyHigh: p95 warning above 1 s, critical above 2.5 s.",
                limits=((1, "orange"), (2.5, "red")),
            )
        )
        .with_panel(
            timeseries(
                "p95 by route",
                "s",
                Query(
                    f"histogram_quantile(0.95, sum by (route, le) (rate({bucket}[{RATE}])))",
                    "{{route}}",
                ),
            )
        )
        .with_row(Row("Process"))
        .with_panel(
            timeseries(
                "CPU",
                "percentunit",
                Query(f'rate(process_cpu_seconds_total{{job="api"}}[{RATE}])', "{{instance}}"),
            )
        )
        .with_panel(
            timeseries(
                "Resident memory",
                "bytes",
                Query('process_resident_memory_bytes{job="api"}', "{{instance}}"),
            )
        )
    )


def queue() -> Dashboard:
    return (
        dashboard("queue", "Queue")
        .with_row(Row("BullMQ queues"))
        .with_panel(
            timeseries(
                "Waiting jobs",
                "short",
                Query("max by (queue) (wormhole_queue_waiting_jobs)", "{{queue}}"),
                description="QueueBacklogHigh above 1000 for 10 minutes.",
                limits=((1000, "orange"),),
            )
        )
        .with_panel(
            timeseries(
                "Oldest waiting job",
                "s",
                Query("max by (queue) (wormhole_queue_oldest_waiting_seconds)", "{{queue}}"),
                description="QueueJobsDelayed above 60 s for 5 minutes.",
                limits=((60, "red"),),
            )
        )
        .with_panel(
            timeseries(
                "Failed jobs kept",
                "short",
                Query("max by (queue) (wormhole_queue_failed_jobs)", "{{queue}}"),
            )
        )
        .with_panel(
            timeseries(
                "New failed jobs (15 min)",
                "short",
                Query("max by (queue) (delta(wormhole_queue_failed_jobs[15m]))", "{{queue}}"),
                description="QueueFailedJobsRising above 10.",
                limits=((10, "orange"),),
            )
        )
        .with_row(Row("Consumption"))
        .with_panel(
            timeseries(
                "Jobs taken by the runner",
                "ops",
                Query(
                    f'sum(rate(wormhole_runner_runs_total{{outcome="started"}}[{RATE}]))', "started"
                ),
                width=24,
                description="The rate at which the workers take jobs off the queue.",
            )
        )
    )


def runner() -> Dashboard:
    runs = "wormhole_runner_runs_total"
    return (
        dashboard("runner", "Runner")
        .with_row(Row("Runs"))
        .with_panel(
            timeseries(
                "Runs per 5 minutes",
                "short",
                Query(f"sum by (outcome) (increase({runs}[5m]))", "{{outcome}}"),
            )
        )
        .with_panel(
            timeseries(
                "Failed share of finished runs",
                "percentunit",
                Query(
                    f'sum(rate({runs}{{outcome="failed"}}[15m])) / sum(rate({runs}{{outcome=~"succeeded|failed"}}[15m]))',
                    "failed",
                ),
                description="RunnerFailureRateHigh: warning above 10%, critical above 25%.",
                limits=((0.1, "orange"), (0.25, "red")),
            )
        )
        .with_row(Row("Latency"))
        .with_panel(
            timeseries(
                "Trigger to start",
                "s",
                *(
                    Query(
                        f"histogram_quantile({q}, sum by (le) (rate(wormhole_runner_trigger_delay_seconds_bucket[{RATE}])))",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95)
                ),
                description="The SLA: p95 under 5 s (RunnerTriggerDelayHigh).",
                limits=((5, "red"),),
            )
        )
        .with_panel(
            timeseries(
                "Run duration",
                "s",
                *(
                    Query(
                        f"histogram_quantile({q}, sum by (le) (rate(wormhole_runner_run_duration_seconds_bucket[{RATE}])))",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95)
                ),
            )
        )
        .with_row(Row("Process"))
        .with_panel(
            timeseries(
                "CPU",
                "percentunit",
                Query(f'rate(process_cpu_seconds_total{{job="runner"}}[{RATE}])', "{{instance}}"),
            )
        )
        .with_panel(
            timeseries(
                "Resident memory",
                "bytes",
                Query('process_resident_memory_bytes{job="runner"}', "{{instance}}"),
            )
        )
    )


def database() -> Dashboard:
    return (
        dashboard("database", "Database")
        .with_row(Row("PostgreSQL"))
        .with_panel(stat("PostgreSQL up", "none", Query("min(pg_up)"), limits=()))
        .with_panel(
            stat(
                "Connections used",
                "percentunit",
                Query("sum(pg_stat_activity_count) / max(pg_settings_max_connections)"),
                limits=((0.8, "orange"), (0.95, "red")),
            )
        )
        .with_panel(
            stat(
                "Database size",
                "bytes",
                Query('sum(pg_database_size_bytes{datname!~"template.*|postgres"})'),
            )
        )
        .with_panel(
            timeseries(
                "Connections by state",
                "short",
                Query("sum by (state) (pg_stat_activity_count)", "{{state}}"),
                Query("max(pg_settings_max_connections)", "max_connections"),
            )
        )
        .with_panel(
            timeseries(
                "Longest transaction",
                "s",
                Query(
                    "max by (datname, state) (pg_stat_activity_max_tx_duration)",
                    "{{datname}} {{state}}",
                ),
            )
        )
        .with_panel(
            timeseries(
                "Transactions",
                "ops",
                Query(
                    f"sum by (datname) (rate(pg_stat_database_xact_commit[{RATE}]))",
                    "commit {{datname}}",
                ),
                Query(
                    f"sum by (datname) (rate(pg_stat_database_xact_rollback[{RATE}]))",
                    "rollback {{datname}}",
                ),
            )
        )
        .with_panel(
            timeseries(
                "Cache hit ratio",
                "percentunit",
                Query(
                    f"sum by (datname) (rate(pg_stat_database_blks_hit[{RATE}])) / (sum by (datname) (rate(pg_stat_database_blks_hit[{RATE}])) + sum by (datname) (rate(pg_stat_database_blks_read[{RATE}])))",
                    "{{datname}}",
                ),
            )
        )
        .with_panel(
            timeseries(
                "Deadlocks",
                "short",
                Query("sum by (datname) (increase(pg_stat_database_deadlocks[5m]))", "{{datname}}"),
                width=24,
            )
        )
        .with_row(Row("Redis"))
        .with_panel(
            timeseries(
                "Memory used / maxmemory",
                "percentunit",
                Query("redis_memory_used_bytes / (redis_memory_max_bytes > 0)", "{{instance}}"),
                limits=((0.8, "orange"), (0.95, "red")),
            )
        )
        .with_panel(
            timeseries("Memory used", "bytes", Query("redis_memory_used_bytes", "{{instance}}"))
        )
        .with_panel(
            timeseries(
                "Connected clients", "short", Query("redis_connected_clients", "{{instance}}")
            )
        )
        .with_panel(
            timeseries(
                "Commands",
                "ops",
                Query(f"rate(redis_commands_processed_total[{RATE}])", "{{instance}}"),
            )
        )
        .with_row(Row("Host"))
        .with_panel(
            timeseries(
                "Filesystem free",
                "percentunit",
                Query(
                    'node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"} / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"}',
                    "{{mountpoint}}",
                ),
                width=24,
                description="DiskSpaceLow: warning under 15%, critical under 5%.",
            )
        )
    )


def delivery() -> Dashboard:
    ci = 'job="wormhole-ci"'
    return (
        dashboard("delivery", "Delivery")
        .with_row(Row("Pipeline (Pushgateway)"))
        .with_panel(
            timeseries(
                "Last run succeeded",
                "bool_yes_no",
                Query(f"wormhole_ci_last_run_success{{{ci}}}", "{{command}} {{environment}}"),
            )
        )
        .with_panel(
            timeseries(
                "Failures in the last 6 h",
                "short",
                Query(
                    f"max_over_time(wormhole_ci_failures_total{{{ci}}}[6h]) - min_over_time(wormhole_ci_failures_total{{{ci}}}[6h])",
                    "{{command}} {{environment}}",
                ),
                description="Two or more: DeployRepeatedlyFailing / MigrationRepeatedlyFailing.",
                limits=((2, "red"),),
            )
        )
        .with_panel(
            timeseries(
                "Duration of the last run",
                "s",
                Query(
                    f"wormhole_ci_last_run_duration_seconds{{{ci}}}", "{{command}} {{environment}}"
                ),
            )
        )
        .with_panel(
            timeseries(
                "Time since the last run",
                "s",
                Query(
                    f"time() - wormhole_ci_last_run_timestamp_seconds{{{ci}}}",
                    "{{command}} {{environment}}",
                ),
            )
        )
        .with_row(Row("Targets"))
        .with_panel(
            timeseries(
                "Targets up",
                "short",
                Query("up", "{{job}} {{instance}}"),
                width=24,
                description="TargetDown when 0: 2 minutes for api and runner, 5 for the rest.",
            )
        )
    )


DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "api": api,
    "queue": queue,
    "runner": runner,
    "database": database,
    "delivery": delivery,
}


def render() -> dict[str, str]:
    """Each dashboard file's name and its JSON text, exactly as committed."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {
        f"{name}.json": encoder.encode(build().build()) + "\n" for name, build in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale dashboards: {', '.join(stale)}; run `make dashboards`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
