"""The runner's Prometheus metrics, served as ``GET /metrics`` by :mod:`runner.health`.

Names and labels are the ones the alert rules and dashboards query (issue 15):

``wormhole_runner_runs_total{outcome}``
    runs ``started``, ``succeeded`` and ``failed`` (counter).
``wormhole_runner_run_duration_seconds``
    from the start of a run to its end (histogram).
``wormhole_runner_trigger_delay_seconds``
    from the moment the run was triggered (the BullMQ job's timestamp, set by the api when it
    enqueued the run) to the moment this runner started it (histogram). Its buckets bracket
    the 5 s trigger-to-start SLA, so ``histogram_quantile(0.95, ...) > 5`` is exact at 5 s.

Plus the ``process_*`` and ``python_*`` metrics of ``prometheus_client``'s default collectors.
Each :class:`RunnerMetrics` has its own registry, so tests never share counters.
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

Outcome = Literal["started", "succeeded", "failed"]
OUTCOMES: Final = ("started", "succeeded", "failed")
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

TRIGGER_DELAY_BUCKETS: Final = (0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 6, 7.5, 10, 15, 30, 60)
"""Seconds; dense around the 5 s trigger-to-start SLA, with 5.0 itself a bucket bound."""
RUN_DURATION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""Seconds; a run's steps can wait up to 300 s each (``delay``), so the tail goes to 10 min."""


class RunnerMetrics:
    """The runner's counters and histograms, on a registry of their own."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry()
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self.runs = Counter(
            "wormhole_runner_runs",
            "Workflow runs by outcome: started, succeeded, failed.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            # every series exists from the start, so rate() sees the first failure
            self.runs.labels(outcome=outcome)
        self.run_duration = Histogram(
            "wormhole_runner_run_duration_seconds",
            "Duration of workflow runs, from start to end.",
            buckets=RUN_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.trigger_delay = Histogram(
            "wormhole_runner_trigger_delay_seconds",
            "Delay from a run's trigger (job timestamp) to its start on a runner.",
            buckets=TRIGGER_DELAY_BUCKETS,
            registry=self.registry,
        )

    def run_started(self, trigger_delay: float | None) -> None:
        """Count a started run; ``trigger_delay`` is ``None`` when the job had no timestamp."""
        self.runs.labels(outcome="started").inc()
        if trigger_delay is not None:
            # a runner clock slightly behind the api's gives a small negative delay
            self.trigger_delay.observe(max(0.0, trigger_delay))

    def run_finished(self, outcome: Literal["succeeded", "failed"], duration: float) -> None:
        self.runs.labels(outcome=outcome).inc()
        self.run_duration.observe(duration)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
