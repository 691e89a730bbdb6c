"""The end of every scan, for both runtimes: which outcomes count, the policy, the reports (no Dagger runtime required).

The native runner and the Dagger layer each produce one Outcome per plan task; from
there on they share this module, so a scan is judged and reported the same way
whichever runtime ran the scanners.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from wormhole_ci.errors import WormholeCiError
from wormhole_ci.manifest import Manifest
from wormhole_ci.security.model import Outcome, Status
from wormhole_ci.security.policy import FailOn, Verdict, evaluate
from wormhole_ci.security.tasks import Family, ScanTask
from wormhole_ci.security.writers.jsonreport import write_json
from wormhole_ci.security.writers.markdown import write_markdown
from wormhole_ci.security.writers.sarif import write_sarif


def fail_on_level(requested: str | None, manifest: Manifest) -> FailOn:
    """The threshold asked for, else the manifest's `security.fail_on`."""
    value = requested or manifest.security.fail_on
    try:
        return FailOn(value)
    except ValueError:
        raise WormholeCiError(
            f"--fail-on {value!r}: use one of {', '.join(f.value for f in FailOn)}"
        ) from None


def reported(tasks: Sequence[ScanTask], outcomes: Sequence[Outcome]) -> list[Outcome]:
    """The outcomes that are scans, in plan order (`outcomes[i]` is `tasks[i]`'s)."""
    if len(tasks) != len(outcomes):
        raise ValueError(f"{len(outcomes)} outcomes for {len(tasks)} scan tasks")
    # An SBOM is an artifact, not a scan: only a failure to write one is an outcome.
    return [
        o
        for t, o in zip(tasks, outcomes, strict=True)
        if t.family is not Family.SBOM or o.status is not Status.CLEAN
    ]


def conclude(
    tasks: Sequence[ScanTask],
    outcomes: Sequence[Outcome],
    manifest: Manifest,
    fail_on: FailOn,
    *,
    allow_unavailable: bool,
    today: dt.date,
) -> Verdict:
    """The policy, with the manifest's waivers, over the reported outcomes of a scan."""
    return evaluate(
        reported(tasks, outcomes),
        manifest.security.ignore,
        fail_on,
        allow_unavailable=allow_unavailable,
        today=today,
    )


def render_reports(verdict: Verdict) -> dict[str, str]:
    """Report file name → content (SARIF, Markdown, JSON); both runtimes write these."""
    return {
        "scan.sarif": write_sarif(verdict),
        "scan.md": write_markdown(verdict),
        "scan.json": write_json(verdict),
    }


def failure(verdict: Verdict) -> str:
    """One line saying why the scan failed (callers raise or print it)."""
    return "scan failed: " + "; ".join(verdict.reasons())
