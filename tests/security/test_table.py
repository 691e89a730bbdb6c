"""The scan's terminal table fits 120 columns, one line per row, even with long reasons."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import EXAMPLE
from wormhole_ci.manifest import load_manifest
from wormhole_ci.security.model import Status
from wormhole_ci.security.parsers.common import RawRun, services_by_path
from wormhole_ci.security.policy import FailOn, Verdict
from wormhole_ci.security.scanners import SCANNERS
from wormhole_ci.security.table import MORE, NARROW_CAPTION, one_line, scan_table
from wormhole_ci.security.tasks import Family, ScanTool, scan_plan
from wormhole_ci.security.wrapup import conclude

FIXTURES = Path(__file__).parent / "fixtures"
OBSERVED = FIXTURES / "observed"


def recorded_stderr(name: str) -> str:
    """The stderr section of an observed transcript."""
    text = (OBSERVED / f"{name}.txt").read_text()
    return text.split(" bytes) ---\n", 1)[1].split("\n--- stdout", 1)[0]


# What each scanner printed here, recorded: audits unavailable (no advisory data reachable).
RUNS = {
    ScanTool.SEMGREP: RawRun(0, (FIXTURES / "semgrep" / "clean.json").read_text(), "", "1.185.0"),
    ScanTool.TRIVY: RawRun(0, (FIXTURES / "trivy" / "clean.json").read_text(), "", "0.76.0"),
    ScanTool.PNPM_AUDIT: RawRun(1, "", recorded_stderr("pnpm-audit-web-405"), "12.4.2"),
    ScanTool.PIP_AUDIT: RawRun(
        0, (OBSERVED / "pip-audit-runner-dev-disable-pip.json").read_text(), "", "2.10.1"
    ),
}


def example_verdict() -> Verdict:
    manifest = load_manifest(EXAMPLE)
    tasks = scan_plan(manifest, frozenset({Family.SAST, Family.AUDIT}))
    service_of = services_by_path({s.name: s.path for s in manifest.services})
    outcomes = [SCANNERS[t.tool].parse(t, RUNS[t.tool], service_of) for t in tasks]
    return conclude(
        tasks,
        outcomes,
        manifest,
        FailOn.HIGH,
        allow_unavailable=False,
        today=dt.date(2026, 12, 1),
    )


def render(verdict: Verdict, width: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False, soft_wrap=True)
    console.print(scan_table(verdict, console.width))
    return out.getvalue().splitlines()


def test_the_examples_table_with_audits_unavailable_fits_120_columns() -> None:
    verdict = example_verdict()
    unavailable = [o for o in verdict.outcomes if o.status is Status.UNAVAILABLE]
    assert {o.tool for o in unavailable} == {"pnpm-audit", "pip-audit"}
    assert max(len(o.reason) for o in unavailable) > 500  # pip-audit names every dependency
    lines = render(verdict, 120)
    assert max(len(line) for line in lines) <= 120
    # title, top border, header, header rule, one line per outcome, bottom border
    assert len(lines) == 4 + len(verdict.outcomes) + 1
    rows = lines[4:-1]
    for outcome, line in zip(verdict.outcomes, rows, strict=True):
        assert outcome.tool in line
        assert outcome.target in line
    pip = next(line for line in rows if "pip-audit" in line)
    assert MORE in pip


@pytest.mark.parametrize("width", [80, 200])
def test_other_widths_keep_one_line_per_row(width: int) -> None:
    verdict = example_verdict()
    lines = render(verdict, width)
    narrow = width < 100  # MORE no longer fits on a row: the caption says it once
    assert len(lines) == 5 + len(verdict.outcomes) + narrow
    assert (lines[-1].strip() == NARROW_CAPTION) is narrow
    assert max(len(line) for line in lines) <= width
    # only the reason is cut: scanner, target and outcome stay whole (scripts grep them)
    assert sum("│ unavailable │" in line for line in lines) == 3
    assert any("│ pnpm-audit │" in line and "│ api " in line for line in lines)


def test_one_line_collapses_and_cuts() -> None:
    assert one_line("a\n  b", 10) == "a b"
    cut = one_line("x" * 100, 40)
    assert len(cut) == 40
    assert cut.endswith(MORE)
    assert one_line("x" * 100, 12) == "x" * 11 + "…"
