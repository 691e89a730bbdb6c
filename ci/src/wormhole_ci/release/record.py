"""The release record (release.json): what a release did, written after every step."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from wormhole_ci.deploy.rollout import ServiceDeploy
from wormhole_ci.errors import WormholeCiError
from wormhole_ci.images.publish import Published
from wormhole_ci.results import RunReport, summary
from wormhole_ci.security.policy import Verdict

STEPS = ("check", "build", "scan", "publish", "migrate", "hasura", "deploy")


class ReleaseOutcome(StrEnum):
    """How a release ended (`status` file of the Dagger result says the same)."""

    RUNNING = "running"
    RELEASED = "released"
    STOPPED = "stopped"
    """A gate was red: `stopped_at` names it."""
    REFUSED = "refused"
    """Nothing started: another deployment of these applications is in progress."""


@dataclass
class StepRecord:
    name: str
    status: str = "pending"
    """pending | passed | failed | skipped"""
    seconds: float = 0.0
    detail: str = ""


@dataclass
class ImageRecord:
    """One service's image: as built, then as published."""

    service: str
    name: str
    config_digest: str
    """The image config digest per platform, joined with commas (identity across pushes)."""
    reference: str = ""
    digest: str = ""
    action: str = ""
    """pushed | unchanged (empty until published)"""


@dataclass
class ScanRecord:
    passed: bool
    fail_on: str
    blocking: int
    outcomes: dict[str, str]
    """`tool:target` → clean | findings | unavailable | error"""
    versions: dict[str, str]
    """scanner → the version it reported"""
    allow_unavailable: bool
    reports: list[str]
    """Report files, relative to the release's work directory."""


@dataclass
class ReleaseRecord:
    """What a release did: written after every step, so a stopped release says where."""

    sha: str
    environment: str
    started: str
    outcome: ReleaseOutcome = ReleaseOutcome.RUNNING
    stopped_at: str | None = None
    refused: str | None = None
    """Why nothing started (outcome `refused`)."""
    steps: list[StepRecord] = field(default_factory=lambda: [StepRecord(s) for s in STEPS])
    images: list[ImageRecord] = field(default_factory=list[ImageRecord])
    scan: ScanRecord | None = None
    migrations: dict[str, object] = field(default_factory=dict[str, object])
    """The migrate job's own result (migrate.json) as it wrote it."""
    hasura: dict[str, object] = field(default_factory=dict[str, object])
    """The metadata apply: URL, resource versions, changes, inconsistent objects, restored."""
    deployments: list[ServiceDeploy] = field(default_factory=list[ServiceDeploy])

    def step(self, name: str) -> StepRecord:
        return next(s for s in self.steps if s.name == name)

    def image(self, service: str) -> ImageRecord | None:
        return next((i for i in self.images if i.service == service), None)

    def add_published(self, published: Sequence[Published]) -> str:
        """Each built image's reference, registry digest and action; the publish detail."""
        for each in published:
            image = self.image(each.service)
            if image is not None:
                image.reference, image.digest, image.action = (
                    each.reference,
                    each.digest,
                    each.action,
                )
        return ", ".join(p.reference for p in published)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scan_record(verdict: Verdict, allow_unavailable: bool, reports: list[str]) -> ScanRecord:
    """The scan gate's part of the record, the same from either runtime's verdict."""
    return ScanRecord(
        passed=verdict.passed,
        fail_on=str(verdict.fail_on),
        blocking=len(verdict.blocking),
        outcomes={f"{o.tool}:{o.target}": str(o.status) for o in verdict.outcomes},
        versions={o.tool: o.tool_version for o in verdict.outcomes if o.tool_version},
        allow_unavailable=allow_unavailable,
        reports=reports,
    )


def check_detail(report: RunReport) -> str:
    """The check gate's one line; raises the red gate with the failure summary."""
    if not report.ok:
        raise WormholeCiError(summary(report, "check"))
    return f"{len(report.results)} tasks passed"


def scan_detail(verdict: Verdict) -> str:
    """The scan gate's one line; raises the red gate when the policy fails."""
    if not verdict.passed:
        raise WormholeCiError("scan failed: " + "; ".join(verdict.reasons()))
    return f"passed ({len(verdict.outcomes)} scans, fail on {verdict.fail_on})"
