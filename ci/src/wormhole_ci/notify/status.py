"""Reusable GitHub status reporters (release, preview, check): a Deployment with its
statuses, and one pull-request comment kept up to date. They never raise: every failure is
one warning, so a GitHub outage never fails what it reports on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from wormhole_ci.notify.github import GitHub
from wormhole_ci.notify.http import NotifyError
from wormhole_ci.results import RunReport, Status

Say = Callable[[str], None]

COMMENT_MARKER = "<!-- wormhole-ci:pr-status -->"
"""Hidden in the comment's Markdown: how the next run finds the comment to PATCH."""


class DeploymentState(StrEnum):
    """The deployment status states GitHub documents (the ones we send)."""

    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"
    INACTIVE = "inactive"


@dataclass
class DeploymentReporter:
    """One GitHub Deployment: `start` creates it (in_progress), `finish` sets its outcome.
    `github` None: nothing is called (GitHub not configured)."""

    github: GitHub | None
    warn: Say
    log_url: str = ""
    deployment: int | None = None

    def start(
        self,
        *,
        ref: str,
        environment: str,
        description: str,
        environment_url: str = "",
        transient: bool = False,
    ) -> None:
        if self.github is None:
            return
        try:
            self.deployment = self.github.create_deployment(
                ref=ref, environment=environment, description=description, transient=transient
            )
        except NotifyError as exc:
            self.warn(f"warning: {exc}; the release goes on without a GitHub deployment")
            return
        self._status(DeploymentState.IN_PROGRESS, description, environment_url)

    def finish(self, state: DeploymentState, description: str, environment_url: str = "") -> None:
        self._status(state, description, environment_url)

    def _status(self, state: DeploymentState, description: str, environment_url: str) -> None:
        if self.github is None or self.deployment is None:
            return
        try:
            self.github.create_status(
                self.deployment,
                state=str(state),
                description=description,
                environment_url=environment_url,
                log_url=self.log_url,
            )
        except NotifyError as exc:
            self.warn(f"warning: {exc}")


def check_summary(report: RunReport) -> str:
    """The check lines a PR comment shows: one per task that did not pass, then the count."""
    lines = [
        f"{r.status}: {r.service} {r.task}" for r in report.results if r.status is not Status.PASSED
    ]
    passed = sum(r.status is Status.PASSED for r in report.results)
    reused = sum(r.cached for r in report.results)
    lines.append(
        f"{passed} of {len(report.results)} tasks passed ({reused} reused), "
        f"{report.wall_time:.1f} s"
    )
    return "\n".join(lines)


def render_pr_comment(sha: str, previews: Mapping[str, str], checks: str) -> str:
    """The comment's Markdown: the marker, the preview URL of each service, the check summary."""
    lines = [COMMENT_MARKER, f"### wormhole-ci: `{sha[:7]}`", ""]
    if previews:
        lines += ["| service | preview |", "|---|---|"]
        lines += [f"| {name} | {url} |" for name, url in sorted(previews.items())]
        lines.append("")
    lines += ["**Checks**", "", "```", checks.strip() or "(no check summary)", "```"]
    return "\n".join(lines) + "\n"


def update_pr_comment(
    github: GitHub | None,
    pr: int,
    *,
    sha: str,
    previews: Mapping[str, str],
    checks: str,
    warn: Say,
) -> int | None:
    """Create or update the PR's one wormhole-ci comment; its id, or None (not configured,
    or a warning said why)."""
    if github is None:
        return None
    try:
        return github.upsert_comment(pr, COMMENT_MARKER, render_pr_comment(sha, previews, checks))
    except NotifyError as exc:
        warn(f"warning: {exc}; the pull request's comment was not updated")
        return None
