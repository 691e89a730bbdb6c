"""The pipeline's own metrics (pushed to a Pushgateway): names, labels and meaning.

The alert rules and dashboards under examples/wormhole/deploy/observability/ query exactly these names; a
test keeps them and examples/wormhole/deploy/observability/metrics.txt in step. Every series is pushed under
the Pushgateway job `wormhole-ci`, grouped by `command` and `environment`, so each
(command, environment) pair keeps its own last values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

JOB = "wormhole-ci"
"""The Pushgateway job every series is pushed under (the `job` label, kept by honor_labels)."""

COMMANDS = ("release", "migrate", "deploy")
"""The values of the `command` label: the pipeline commands that push their outcome."""

LABELS = ("command", "environment")
"""The labels of every series besides `job` (the Pushgateway grouping key)."""


@dataclass(frozen=True)
class PipelineMetric:
    """One series family pushed after each run of a command."""

    name: str
    type: Literal["gauge", "counter"]
    """The last run's values are gauges; the failure count is pushed as a counter (read back
    and incremented), so `increase()` treats a gateway restart as a reset."""
    help: str


PIPELINE_METRICS = (
    PipelineMetric(
        "wormhole_ci_last_run_timestamp_seconds", "gauge", "Unix time the last run ended."
    ),
    PipelineMetric(
        "wormhole_ci_last_run_success", "gauge", "1 if the last run succeeded, 0 if it failed."
    ),
    PipelineMetric(
        "wormhole_ci_last_run_duration_seconds", "gauge", "Wall-clock duration of the last run."
    ),
    PipelineMetric(
        "wormhole_ci_failures_total",
        "counter",
        # Pushed on every run (successes too, unchanged), so the series exists before the
        # first failure and "two failures within 6 h" is max - min over the window.
        "Failed runs so far: the value read back from the Pushgateway, plus one on failure.",
    ),
)
