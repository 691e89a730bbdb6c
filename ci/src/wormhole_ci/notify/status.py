"""Reusable GitHub status reporters (release, preview, check): a Deployment with its
statuses, and one pull-request comment kept up to date. They never raise: every failure is
one warning, so a GitHub outage never fails what it reports on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx

from wormhole_ci.notify.github import GitHub, GitHubTarget
from wormhole_ci.notify.http import NotifyError, Retry
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
    what: str = "the release"
    """What goes on without the deployment when GitHub fails (named in the warning)."""

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
            self.warn(f"warning: {exc}; {self.what} goes on without a GitHub deployment")
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


class Section(StrEnum):
    """The comment's parts, in the order they are shown; each is written by one command."""

    PREVIEWS = "previews"
    CHECKS = "checks"


def section_markers(section: Section) -> tuple[str, str]:
    """The hidden lines around a section: a writer replaces only what lies between its own."""
    return f"<!-- wormhole-ci:{section} -->", f"<!-- /wormhole-ci:{section} -->"


def section_of(body: str | None, section: Section) -> str | None:
    """The section as it stands in `body`, markers included (byte for byte), or None when the
    body lacks it or holds only half of it (an edited comment: the section is written anew)."""
    if body is None:
        return None
    start_marker, end_marker = section_markers(section)
    start = body.find(start_marker)
    if start < 0:
        return None
    end = body.find(end_marker, start + len(start_marker))
    if end < 0:
        return None
    return body[start : end + len(end_marker)]


def render_pr_comment(existing: str | None, sha: str, section: Section, content: str) -> str:
    """The comment's Markdown: the marker, a header naming `sha`, then every section: this
    one's `content`, the others kept as `existing` has them (absent ones are left out)."""
    start_marker, end_marker = section_markers(section)
    parts = {s: section_of(existing, s) for s in Section}
    parts[section] = f"{start_marker}\n{content.strip()}\n{end_marker}"
    header = f"### wormhole-ci: `{sha[:7]}`" if sha else "### wormhole-ci"
    kept = [text for text in parts.values() if text is not None]
    return "\n\n".join([f"{COMMENT_MARKER}\n{header}", *kept]) + "\n"


def checks_section(sha: str, command: str, report: RunReport) -> str:
    """The checks section's content: the command, its verdict and `check_summary`."""
    verdict = "passed" if report.ok else "failed"
    at = f" at `{sha[:7]}`" if sha else ""
    summary = check_summary(report) if report.results else "nothing to run: no service is affected"
    return f"**Checks**{at}: `{command}` {verdict}\n\n```\n{summary}\n```"


def update_pr_comment(
    github: GitHub | None,
    pr: int,
    *,
    sha: str,
    section: Section,
    content: str,
    warn: Say,
) -> int | None:
    """Write `section` of the PR's one wormhole-ci comment (created when absent), keeping the
    other sections; its id, or None (not configured, or a warning said why)."""
    if github is None:
        return None
    try:
        return github.upsert_comment(
            pr, COMMENT_MARKER, lambda body: render_pr_comment(body, sha, section, content)
        )
    except NotifyError as exc:
        warn(f"warning: {exc}; the pull request's comment was not updated")
        return None


COMMENT_RETRY = Retry()
"""Each comment request's budget (a check or a preview waits at most this per request)."""


def post_check_summary(
    target: GitHubTarget | None,
    pr: int,
    *,
    sha: str,
    command: str,
    report: RunReport,
    warn: Say,
    transport: httpx.BaseTransport | None = None,
) -> int | None:
    """The checks section of PR `pr`'s comment from `report`, for both runtimes; a GitHub
    failure is one warning (the check's verdict never depends on it)."""
    if target is None:
        return None
    github = GitHub(target, retry=COMMENT_RETRY, transport=transport)
    try:
        return update_pr_comment(
            github,
            pr,
            sha=sha,
            section=Section.CHECKS,
            content=checks_section(sha, command, report),
            warn=warn,
        )
    finally:
        github.close()
