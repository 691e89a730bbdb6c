"""A PR preview's GitHub reports, written once for both runtimes (the preview flow calls them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx

from wormhole_ci.notify import status as notify_status
from wormhole_ci.notify.github import GitHub, GitHubTarget
from wormhole_ci.notify.http import NotifyError
from wormhole_ci.notify.status import DeploymentReporter, DeploymentState, Section

if TYPE_CHECKING:
    from wormhole_ci.preview.flow import PreviewRecord

Say = Callable[[str], None]


def github_environment(environment: str, pr: int) -> str:
    """The GitHub environment of PR `pr`'s preview: `<environment>-pr-<N>`, one per PR, so a
    PR's deployments (and closing them) never touch another PR's or the environment's own."""
    return f"{environment}-pr-{pr}"


def preview_page(health_url: str) -> str:
    """Where people open a service's preview: its health URL without the last path segment
    (`…/api/healthz` → `…/api/`)."""
    parts = urlsplit(health_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rsplit("/", 1)[0] + "/", "", ""))


def preview_environment_url(record: PreviewRecord) -> str:
    """The deployment's `environment_url`: the origin of the first previewed service's URL
    (the same rule as a release's environment_url)."""
    for service in record.services:
        parts = urlsplit(service.url)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return ""


def previews_section(record: PreviewRecord, log_url: str = "") -> str:
    """The previews section's content for the record as it stands (open or close)."""
    short = record.sha[:7]
    log = f" ([log]({log_url}))" if log_url else ""
    if record.action == "close":
        if record.outcome == "closed":
            return (
                f"**Previews**: closed at `{short}`: the previews were deleted and the database "
                f"`{record.database}` dropped{log}"
            )
        return (
            f"**Previews**: closing failed at `{short}`; the database `{record.database}` is "
            f"kept until every preview is deleted: re-run the close{log}"
        )
    state = {"running": "deploying", "verified": "ready"}.get(record.outcome, record.outcome)
    lines = [
        f"**Previews** of `{short}` (images `{record.tag}`): {state}{log}",
        "",
        "| service | preview | status |",
        "|---|---|---|",
    ]
    lines += [f"| {s.service} | {preview_page(s.url)} | {s.status} |" for s in record.services]
    return "\n".join(lines)


@dataclass
class PreviewStatus:
    """The preview's GitHub Deployment (transient, one environment per PR) and the previews
    section of the PR's comment. Never raises: GitHub's first failure is the one warning and
    the run's remaining GitHub calls are skipped, so an outage costs one retry deadline."""

    github: GitHub
    environment: str
    """The GitHub environment (`github_environment`)."""
    warn: Say
    log_url: str = ""
    off: bool = False
    """GitHub failed once in this run: nothing more is sent."""
    deployment: DeploymentReporter = field(init=False)

    def __post_init__(self) -> None:
        self.deployment = DeploymentReporter(
            self.github, self._warn, self.log_url, what="the preview"
        )

    def _warn(self, line: str) -> None:
        self.off = True
        self.warn(f"{line}; no further GitHub calls in this run")

    def opening(self, record: PreviewRecord) -> None:
        if self.off:
            return
        self.deployment.start(
            ref=record.sha,
            environment=self.environment,
            description=f"wormhole-ci preview {record.tag} of PR #{record.pr}",
            transient=True,
        )
        self._comment(record)

    def finished(self, record: PreviewRecord) -> None:
        """The open's outcome: success with the preview's URL, or failure."""
        if self.off:
            return
        if record.outcome == "verified":
            url = preview_environment_url(record)
            self.deployment.finish(DeploymentState.SUCCESS, f"preview {record.tag} verified", url)
        else:
            self.deployment.finish(DeploymentState.FAILURE, f"preview {record.tag} failed")
        self._comment(record)

    def closed(self, record: PreviewRecord) -> None:
        """A close: every deployment of the PR's environment inactive (once the previews are
        gone), and the comment says so."""
        if self.off:
            return
        if record.outcome == "closed":
            try:
                for ident in self.github.list_deployments(self.environment):
                    self.github.create_status(
                        ident,
                        state=str(DeploymentState.INACTIVE),
                        description=f"preview of PR #{record.pr} closed",
                        log_url=self.log_url,
                    )
            except NotifyError as exc:
                self._warn(f"warning: {exc}")
                return
        self._comment(record)

    def _comment(self, record: PreviewRecord) -> None:
        if self.off:
            return
        notify_status.update_pr_comment(
            self.github,
            record.pr,
            sha=record.sha,
            section=Section.PREVIEWS,
            content=previews_section(record, self.log_url),
            warn=self._warn,
        )

    def close(self) -> None:
        self.github.close()


def preview_status(
    target: GitHubTarget | None,
    *,
    environment: str,
    pr: int,
    warn: Say,
    log_url: str = "",
    transport: httpx.BaseTransport | None = None,
) -> PreviewStatus | None:
    """The preview's reporter; None when GitHub is not configured (nothing is called)."""
    if target is None:
        return None
    client = GitHub(target, retry=notify_status.COMMENT_RETRY, transport=transport)
    return PreviewStatus(client, github_environment(environment, pr), warn, log_url)
