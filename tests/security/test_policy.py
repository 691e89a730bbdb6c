"""The policy: thresholds, unknown severities, waivers (active, scoped, expired, unused), unavailability."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.security.samples import EVAL, KEY, LODASH, ODD, PYYAML, SHELL, outcomes
from wormhole_ci.errors import ManifestError
from wormhole_ci.security.model import Outcome, Status
from wormhole_ci.security.policy import FailOn, evaluate
from wormhole_ci.waivers import IgnoreEntry, parse_ignores

TODAY = dt.date(2026, 11, 27)


def ids(findings: tuple[object, ...]) -> set[str]:
    return {f.rule_id for f in findings}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("fail_on", "blocking"),
    [
        (FailOn.CRITICAL, {LODASH.rule_id}),
        # unknown severities (trivy NEGLIGIBLE, pip-audit none) fail closed: counted as high
        (FailOn.HIGH, {LODASH.rule_id, SHELL.rule_id, KEY.rule_id, ODD.rule_id, PYYAML.rule_id}),
        (
            FailOn.MEDIUM,
            {LODASH.rule_id, SHELL.rule_id, KEY.rule_id, ODD.rule_id, PYYAML.rule_id, EVAL.rule_id},
        ),
        (FailOn.NONE, set()),
    ],
)
def test_threshold(fail_on: FailOn, blocking: set[str]) -> None:
    verdict = evaluate(outcomes(), (), fail_on, allow_unavailable=True, today=TODAY)
    assert ids(verdict.blocking) == blocking
    assert verdict.passed is (not blocking)


def test_unavailable_and_error_fail_unless_allowed_and_are_never_clean() -> None:
    clean = [
        Outcome.of("semgrep", "monorepo", []),
        Outcome.unavailable("pip-audit", "runner", "PyPI answered 404"),
    ]
    strict = evaluate(clean, (), FailOn.HIGH, allow_unavailable=False, today=TODAY)
    assert not strict.passed
    assert strict.reasons() == [
        "pip-audit on runner unavailable: PyPI answered 404 (not a clean result; pass --allow-unavailable to accept it)"
    ]
    allowed = evaluate(clean, (), FailOn.HIGH, allow_unavailable=True, today=TODAY)
    assert allowed.passed
    assert [o.status for o in allowed.not_scanned] == [Status.UNAVAILABLE]  # still reported


def test_notes_say_when_the_policy_assigned_a_severity() -> None:
    verdict = evaluate(outcomes(), (), FailOn.HIGH, allow_unavailable=True, today=TODAY)
    notes = {o.tool: o.notes for o in verdict.outcomes}
    assert (
        "pip-audit reports no severity: the policy counts its findings as high"
        in notes["pip-audit"]
    )
    assert "unknown severities are counted as high" in notes["trivy"]


def entry(**kw: object) -> IgnoreEntry:
    base: dict[str, object] = {
        "id": SHELL.rule_id,
        "reason": "reviewed",
        "expires": dt.date(2026, 12, 31),
        "service": "runner",
    }
    base.update(kw)
    return IgnoreEntry(**base)  # type: ignore[arg-type]


def test_active_scoped_waiver_applies_and_is_kept_as_waived() -> None:
    waiver = entry()
    verdict = evaluate(outcomes(), (waiver,), FailOn.HIGH, allow_unavailable=True, today=TODAY)
    assert SHELL.rule_id not in ids(verdict.blocking)
    waived = [f for o in verdict.outcomes for f in o.findings if f.waived_by]
    assert [(f.rule_id, f.waived_by) for f in waived] == [(SHELL.rule_id, waiver.label)]
    assert verdict.unused == ()


def test_scope_must_match() -> None:
    other_service = entry(service="api")
    by_path = entry(service="", path="runner/src/**")
    by_package = entry(id="GHSA-jf85-cpcp-j695", service="", package="lodash@4.17.11")
    by_alias = entry(id="CVE-2019-10744", service="", package="lodash")
    wrong_version = entry(id="GHSA-jf85-cpcp-j695", service="", package="lodash@4.17.12")
    verdict = evaluate(
        outcomes(),
        (other_service, by_path, by_package),
        FailOn.HIGH,
        allow_unavailable=True,
        today=TODAY,
    )
    assert SHELL.rule_id not in ids(verdict.blocking)  # waived by the path glob
    assert LODASH.rule_id not in ids(verdict.blocking)
    assert verdict.unused == (other_service,)
    alias = evaluate(outcomes(), (by_alias,), FailOn.HIGH, allow_unavailable=True, today=TODAY)
    assert LODASH.rule_id not in ids(alias.blocking)
    wrong = evaluate(outcomes(), (wrong_version,), FailOn.HIGH, allow_unavailable=True, today=TODAY)
    assert LODASH.rule_id in ids(wrong.blocking)


def test_expired_waiver_is_reported_and_not_applied() -> None:
    old = entry(expires=dt.date(2026, 11, 26))
    verdict = evaluate(outcomes(), (old,), FailOn.HIGH, allow_unavailable=True, today=TODAY)
    assert SHELL.rule_id in ids(verdict.blocking)
    assert verdict.expired == (old,)
    on_the_day = evaluate(
        outcomes(), (entry(expires=TODAY),), FailOn.HIGH, allow_unavailable=True, today=TODAY
    )
    assert SHELL.rule_id not in ids(on_the_day.blocking)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            [{"id": "x", "reason": "r", "expires": dt.date(2027, 1, 1)}],
            r"security\.ignore\[0\]: give a scope \(service, path or package\)",
        ),
        (
            [{"id": "x", "service": "api", "expires": dt.date(2027, 1, 1)}],
            r"security\.ignore\[0\]\.reason is required",
        ),
        (
            [{"id": "x", "service": "api", "reason": "r"}],
            r"security\.ignore\[0\]\.expires is required: a TOML date",
        ),
        (
            [{"id": "x", "service": "api", "reason": "r", "expires": "2027-01-01"}],
            r"expires is required: a TOML date like 2026-12-31 \(unquoted\)",
        ),
        (
            [{"service": "api", "reason": "r", "expires": dt.date(2027, 1, 1)}],
            r"security\.ignore\[0\]\.id is required",
        ),
        (
            [
                {
                    "id": "x",
                    "service": "api",
                    "reason": "r",
                    "expires": dt.date(2027, 1, 1),
                    "until": 1,
                }
            ],
            r"unknown key until",
        ),
    ],
)
def test_bad_waivers_name_the_entry_and_field(raw: object, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_ignores(raw, Path("wormhole-ci.toml"))


def test_waivers_from_the_manifest(tmp_path: Path) -> None:
    from tests.conftest import copy_example
    from wormhole_ci.manifest import load_manifest

    root = copy_example(tmp_path)
    manifest = root / "wormhole-ci.toml"
    manifest.write_text(
        manifest.read_text()
        + """
[security]
fail_on = "critical"

[[security.ignore]]
id = "GHSA-jf85-cpcp-j695"
package = "lodash"
reason = "not reachable: only used in a build script"
expires = 2027-01-31
"""
    )
    loaded = load_manifest(root)
    assert loaded.security.fail_on == "critical"
    assert loaded.security.ignore == (
        IgnoreEntry(
            "GHSA-jf85-cpcp-j695",
            "not reachable: only used in a build script",
            dt.date(2027, 1, 31),
            package="lodash",
        ),
    )
