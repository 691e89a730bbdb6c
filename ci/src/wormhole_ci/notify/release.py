"""A release's status reports: its GitHub Deployment and its chat/webhook announcement,
written once for both runtimes (the release machine calls `started` and `finished`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from wormhole_ci.manifest import Environment
from wormhole_ci.notify.github import GitHub, GitHubTarget
from wormhole_ci.notify.http import NotifyError, Retry
from wormhole_ci.notify.status import DeploymentReporter, DeploymentState
from wormhole_ci.notify.webhook import Message, Webhook
from wormhole_ci.release.record import ReleaseOutcome, ReleaseRecord
from wormhole_ci.secretref import Secret

Say = Callable[[str], None]

RELEASE_RETRY = Retry()
"""Each report's budget in a release: at most three requests wait (deployment, its final
status, the webhook), so a dead GitHub adds at most ~90 s to a release and never fails it."""


@dataclass
class ReleaseStatus:
    """What the release machine reports to; best-effort: it never raises."""

    env: Environment
    deployment: DeploymentReporter
    webhook: Webhook | None
    warn: Say

    def started(self, record: ReleaseRecord) -> None:
        self.deployment.start(
            ref=record.sha,
            environment=record.environment,
            description=f"wormhole-ci release {record.sha[:7]} to {record.environment}",
        )

    def finished(self, record: ReleaseRecord) -> None:
        url = environment_url(self.env) if record.outcome is ReleaseOutcome.RELEASED else ""
        self.deployment.finish(deployment_state(record), outcome_line(record), url)
        if self.webhook is not None:
            try:
                self.webhook.send(release_message(record, environment_url(self.env)))
            except NotifyError as exc:
                self.warn(f"warning: {exc}; the release outcome was not announced")

    def close(self) -> None:
        if self.deployment.github is not None:
            self.deployment.github.close()
        if self.webhook is not None:
            self.webhook.close()


def release_status(
    env: Environment,
    *,
    github: GitHubTarget | None,
    webhook_url: Secret | None,
    warn: Say,
    log_url: str = "",
    missing: str = "it is not set",
    retry: Retry | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ReleaseStatus | None:
    """The environment's reporters; None when neither GitHub nor a webhook is configured.
    A [notify] whose URL variable is absent is one warning (`missing` says why), not an error."""
    retry = retry or RELEASE_RETRY
    hook: Webhook | None = None
    if env.notify is not None:
        if webhook_url is None:
            warn(
                f"warning: environments.{env.name}.notify.url_secret names "
                f"${env.notify.url_secret} but {missing}: the release outcome is not announced"
            )
        else:
            hook = Webhook(env.notify.kind, webhook_url, retry=retry, transport=transport)
    if github is None and hook is None:
        return None
    client = GitHub(github, retry=retry, transport=transport) if github is not None else None
    return ReleaseStatus(env, DeploymentReporter(client, warn, log_url), hook, warn)


def environment_url(env: Environment) -> str:
    """Where people open the environment: the origin of its first service's health URL."""
    for target in env.targets:
        if target.health_url:
            parts = urlsplit(target.health_url)
            return f"{parts.scheme}://{parts.netloc}"
    return ""


def deployment_state(record: ReleaseRecord) -> DeploymentState:
    if record.outcome is ReleaseOutcome.RELEASED:
        return DeploymentState.SUCCESS
    if record.outcome is ReleaseOutcome.REFUSED:
        return DeploymentState.ERROR  # nothing was attempted: not a failed deployment
    return DeploymentState.FAILURE


def outcome_line(record: ReleaseRecord) -> str:
    """One line (GitHub keeps 140 characters of a status description)."""
    short = record.sha[:7]
    if record.outcome is ReleaseOutcome.RELEASED:
        return f"released {short} to {record.environment}"
    if record.outcome is ReleaseOutcome.REFUSED:
        return f"release {short} refused: another deployment is in progress"
    return f"release {short} stopped at {record.stopped_at or 'an unknown step'}"


def release_message(record: ReleaseRecord, url: str) -> Message:
    """The announcement: a chat line and the event a JSON webhook receives."""
    stopped = record.step(record.stopped_at) if record.stopped_at else None
    text = f"wormhole-ci: {outcome_line(record)}"
    if stopped is not None and stopped.detail:
        text += f": {stopped.detail.splitlines()[0][:300]}"
    if record.outcome is ReleaseOutcome.RELEASED and url:
        text += f" ({url})"
    event: dict[str, object] = {
        "event": "release",
        "environment": record.environment,
        "sha": record.sha,
        "outcome": str(record.outcome),
        "stopped_at": record.stopped_at,
        "environment_url": url,
        "steps": [{"name": s.name, "status": s.status} for s in record.steps],
    }
    return Message(text, event)
