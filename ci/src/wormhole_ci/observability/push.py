"""The pipeline's own signals: each release, migrate and deploy run's outcome, pushed to the
environment's Prometheus Pushgateway. Best-effort: a push that fails is one warning line and
never changes the command's outcome or exit code.

One group per command and environment (grouping key job="wormhole-ci", command, environment):
each push replaces the previous run's values, so the gateway holds the *last* run of each.
What it exposes (the gateway adds job, command, environment and instance="" to every series):

    wormhole_ci_last_run_timestamp_seconds{outcome, sha}  when the run ended (Unix time)
    wormhole_ci_last_run_success{outcome, sha}            1 if it succeeded, else 0
    wormhole_ci_last_run_duration_seconds{outcome, sha}   how long it ran
    wormhole_ci_failures_total                            failed runs so far (a counter)

The counter has only the group's labels, so it stays one series from run to run (a label that
changes every run, like sha, would start a new series each time and `increase()` would never
see it grow). Its value is read back from the gateway before each push and incremented on a
failure; it starts again at 0 when a gateway without persistence restarts, which `increase()`
treats as a counter reset.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import httpx
from prometheus_client import (
    CollectorRegistry,
    # typed with a bare Callable for its handler: the library's one partly untyped name here
    push_to_gateway,  # pyright: ignore[reportUnknownVariableType]
)
from prometheus_client.exposition import default_handler
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from wormhole_ci.deploy.rollout import VERIFIED
from wormhole_ci.manifest import Environment
from wormhole_ci.observability.metrics import JOB, PIPELINE_METRICS
from wormhole_ci.secretref import redact

Say = Callable[[str], None]
TIMEOUT = 5.0
"""Seconds for each call to the gateway: a slow gateway delays a run by a bounded time."""
# The names are the ones the alert rules query (observability/metrics.py), declared once.
_STAMP, _SUCCESS, _DURATION, _FAILURES = PIPELINE_METRICS
FAILURES = _FAILURES.name


class Command(StrEnum):
    """The commands whose runs are pushed (the `command` label)."""

    RELEASE = "release"
    MIGRATE = "migrate"
    DEPLOY = "deploy"


@dataclass(frozen=True)
class RunSignal:
    """How one run of a command ended: what is pushed for it."""

    command: Command
    environment: str
    outcome: str
    """The command's own outcome (release: released | stopped | refused; migrate: applied |
    up-to-date | blocked | failed; deploy: verified | rolled-back | …)."""
    success: bool
    sha: str
    """The short commit SHA (7 characters); "" when unknown."""
    seconds: float
    finished: float = field(default_factory=time.time)
    """When the run ended, Unix time."""

    @property
    def grouping_key(self) -> dict[str, str]:
        return {"command": str(self.command), "environment": self.environment}


MIGRATED = ("applied", "up-to-date")
"""The migrate outcomes that count as a successful run."""


def migrate_signal(environment: str, outcome: str, sha: str, seconds: float) -> RunSignal:
    """A migrate run (CLI or Dagger job): successful when something or nothing was pending."""
    return RunSignal(
        Command.MIGRATE, environment, outcome, outcome in MIGRATED, sha[:7], round(seconds, 2)
    )


def deploy_signal(environment: str, outcome: str, sha: str, seconds: float) -> RunSignal:
    """A deploy run (CLI or Dagger): successful only when every service verified."""
    return RunSignal(Command.DEPLOY, environment, outcome, outcome == VERIFIED, sha[:7], seconds)


class _RunCollector:
    """The four metric families of one run (a collector of a registry of its own)."""

    def __init__(self, signal: RunSignal, failures: float) -> None:
        self.signal, self.failures = signal, failures

    def collect(self) -> Iterator[Metric]:
        s = self.signal
        labels = ("outcome", "sha")
        values = (s.outcome, s.sha[:7])
        gauges = ((_STAMP, s.finished), (_SUCCESS, s.success), (_DURATION, s.seconds))
        for metric, value in gauges:
            family = GaugeMetricFamily(metric.name, metric.help, labels=labels)
            family.add_metric(values, float(value))
            yield family
        counter = CounterMetricFamily(FAILURES.removesuffix("_total"), _FAILURES.help)
        counter.add_metric((), self.failures)
        yield counter


@dataclass(frozen=True)
class Pushgateway:
    """One environment's Pushgateway: `push` sends runs' signals, quietly on success, with
    one warning line on failure."""

    url: str
    auth: str | None = field(default=None, repr=False)
    """`user:password` (HTTP basic) or a bearer token; never printed."""
    timeout: float = TIMEOUT

    def push(self, signals: Sequence[RunSignal], warn: Say) -> bool:
        """Push each run's group; False (after one warning naming the URL) if any failed.

        The failure counts are read first: when the gateway cannot be read nothing is pushed,
        since a push with a count from nowhere would reset the counter."""
        if not signals:
            return True
        try:
            counts = self.failure_counts()
            for signal in signals:
                previous = counts.get((str(signal.command), signal.environment), 0.0)
                registry = CollectorRegistry(auto_describe=True)
                failures = previous if signal.success else previous + 1
                registry.register(_RunCollector(signal, failures))
                push_to_gateway(
                    self.url,
                    job=JOB,
                    registry=registry,
                    grouping_key=signal.grouping_key,
                    timeout=self.timeout,
                    handler=self._handler,
                )
        except (OSError, ValueError, httpx.HTTPError) as exc:
            commands = ", ".join(sorted({str(s.command) for s in signals}))
            reason = redact(str(exc) or type(exc).__name__, self.auth)
            warn(
                f"warning: the {commands} metrics were not pushed to the Pushgateway at "
                f"{self.url} ({reason}); the run's outcome is unchanged"
            )
            return False
        return True

    def failure_counts(self) -> dict[tuple[str, str], float]:
        """(command, environment) → the failures counter the gateway holds for that group."""
        response = httpx.get(f"{self.url}/metrics", headers=self._headers(), timeout=self.timeout)
        response.raise_for_status()
        counts: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == FAILURES and labels.get("job") == JOB:
                    key = (labels.get("command", ""), labels.get("environment", ""))
                    counts[key] = sample.value
        return counts

    def _headers(self) -> list[tuple[str, str]]:
        if not self.auth:
            return []
        if ":" in self.auth:
            token = base64.b64encode(self.auth.encode()).decode()
            return [("Authorization", f"Basic {token}")]
        return [("Authorization", f"Bearer {self.auth}")]

    def _handler(
        self,
        url: str,
        method: str,
        timeout: float | None,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> Callable[[], None]:
        return default_handler(url, method, timeout, [*headers, *self._headers()], data)


def environment_pushgateway(
    env: Environment, environ: Mapping[str, str], warn: Say
) -> Pushgateway | None:
    """The native runtime's gateway: the credential from the variable the manifest names."""
    var = env.observability.pushgateway_auth if env.observability else None
    return pushgateway_with(env, environ.get(var) if var else None, warn, f"${var} is not set")


def pushgateway_with(
    env: Environment, auth: str | None, warn: Say, missing: str
) -> Pushgateway | None:
    """The environment's gateway with this credential; None when it has no [observability],
    or (said once, with `missing` saying why) when it names a credential that is absent."""
    target = env.observability
    if target is None:
        return None
    if target.pushgateway_auth and not auth:
        warn(
            f"warning: environments.{env.name}.observability.pushgateway_auth names "
            f"${target.pushgateway_auth} but {missing}: the run's metrics are not pushed to "
            f"{target.pushgateway_url}"
        )
        return None
    return Pushgateway(target.pushgateway_url, auth if target.pushgateway_auth else None)


def push_signals(gateway: Pushgateway | None, signals: Sequence[RunSignal], warn: Say) -> None:
    """Push when the environment has a gateway; a no-op otherwise."""
    if gateway is not None:
        gateway.push(signals, warn)
