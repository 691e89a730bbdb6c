"""Parsers on reports in each tool's documented JSON format (fixtures/README.md says where each comes from)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from wormhole_ci.security.model import FileLocation, Outcome, PackageLocation, Severity, Status
from wormhole_ci.security.parsers import npm_audit, pip_audit, pnpm_audit, semgrep, trivy
from wormhole_ci.security.parsers.common import RawRun, services_by_path

FIXTURES = Path(__file__).parent / "fixtures"
SERVICE_OF = services_by_path({"api": "api", "web": "web", "runner": "runner", "hasura": "hasura"})


def fixture(tool: str, name: str) -> str:
    return (FIXTURES / tool / f"{name}.json").read_text()


def severities(outcome: Outcome) -> dict[str, int]:
    return dict(Counter(f.severity.label for f in outcome.findings))


@pytest.mark.parametrize(
    ("name", "exit_code", "status", "counts"),
    [
        ("empty", 0, Status.CLEAN, {}),
        ("clean", 0, Status.CLEAN, {}),
        (
            "many",
            0,
            Status.FINDINGS,
            {"high": 2, "medium": 2, "low": 2, "critical": 1, "unknown": 1},
        ),
        ("errors", 0, Status.ERROR, {"medium": 2, "low": 2, "high": 1, "critical": 1}),
        ("rule_error", 2, Status.ERROR, {}),
        ("semgrep_1.50", 1, Status.ERROR, {"medium": 2, "high": 2, "low": 2}),
    ],
)
def test_semgrep(name: str, exit_code: int, status: Status, counts: dict[str, int]) -> None:
    outcome = semgrep.parse(RawRun(exit_code, fixture("semgrep", name)), "monorepo", SERVICE_OF)
    assert (outcome.status, severities(outcome)) == (status, counts)
    if status is Status.ERROR:
        assert outcome.reason.startswith("1 semgrep errors, first: ")
        assert "\n" not in outcome.reason


def test_semgrep_unknown_severity_and_no_matched_source() -> None:
    outcome = semgrep.parse(RawRun(0, fixture("semgrep", "many")), "monorepo", SERVICE_OF)
    unknown = [f for f in outcome.findings if f.severity is Severity.UNKNOWN]
    assert [f.raw_severity for f in unknown] == ["EXPERIMENT"]
    for finding in outcome.findings:
        assert isinstance(finding.location, FileLocation)
        assert finding.location.line > 0
        assert "requires login" not in finding.message  # `extra.lines` is never copied


def test_semgrep_broken_output_is_an_error_not_clean() -> None:
    outcome = semgrep.parse(
        RawRun(2, "Traceback (most recent call last):\n  boom", "crash"), "monorepo", SERVICE_OF
    )
    assert outcome.status is Status.ERROR
    assert "semgrep did not print JSON" in outcome.reason


@pytest.mark.parametrize(
    ("name", "status", "counts"),
    [
        ("empty", Status.CLEAN, {}),
        ("clean", Status.CLEAN, {}),
        ("many", Status.FINDINGS, {"high": 5, "medium": 3, "low": 3, "critical": 2, "unknown": 2}),
        (
            "trivy_0.19",
            Status.FINDINGS,
            {"critical": 1, "high": 1, "medium": 1, "low": 1, "unknown": 1},
        ),
    ],
)
def test_trivy(name: str, status: Status, counts: dict[str, int]) -> None:
    outcome = trivy.parse(
        RawRun(0, fixture("trivy", name), tool_version="0.76.0"), "monorepo", SERVICE_OF
    )
    assert (outcome.status, severities(outcome)) == (status, counts)


def test_trivy_kinds_fixed_versions_and_no_secret_material() -> None:
    outcome = trivy.parse(RawRun(0, fixture("trivy", "many")), "monorepo", SERVICE_OF)
    packages = [f for f in outcome.findings if isinstance(f.location, PackageLocation)]
    files = [f for f in outcome.findings if isinstance(f.location, FileLocation)]
    assert packages and files
    assert any(
        len(f.location.fixed_versions) > 1
        for f in packages
        if isinstance(f.location, PackageLocation)
    )
    assert any(
        f.location.fixed_versions == () for f in packages if isinstance(f.location, PackageLocation)
    )
    secrets = [f for f in files if f.title.startswith("secret:")]
    assert {f.rule_id for f in secrets} >= {"private-key"}
    assert all(f.message == "" for f in secrets)  # Match/Code (context lines) never copied
    assert {f.raw_severity for f in outcome.findings if f.severity is Severity.UNKNOWN} == {
        "UNKNOWN",
        "NEGLIGIBLE",
    }


def test_trivy_without_vulnerability_data_is_unavailable() -> None:
    observed = FIXTURES / "observed" / "trivy-fs-vuln-no-db.txt"
    stderr = "FATAL\tFatal error\trun error: init error: DB error: failed to download vulnerability DB: OCI repository error"
    outcome = trivy.parse(RawRun(1, "", stderr), "api-image", SERVICE_OF)
    assert outcome.status is Status.UNAVAILABLE
    assert outcome.reason.startswith("no vulnerability data: ")
    # the stderr above is what trivy really printed here (recorded in fixtures/observed)
    assert "failed to download vulnerability DB" in observed.read_text()
    crash = trivy.parse(RawRun(2, "", "panic: runtime error"), "x", SERVICE_OF)
    assert crash.status is Status.ERROR


@pytest.mark.parametrize(
    ("name", "status", "counts"),
    [
        ("clean", Status.CLEAN, {}),
        (
            "many",
            Status.FINDINGS,
            {"high": 1, "critical": 1, "medium": 1, "low": 1, "info": 1, "unknown": 1},
        ),
        ("npm_v2", Status.FINDINGS, {"low": 1, "critical": 1, "high": 1}),
    ],
)
def test_pnpm_audit(name: str, status: Status, counts: dict[str, int]) -> None:
    outcome = pnpm_audit.parse(RawRun(1, fixture("pnpm-audit", name)), "api", "api/pnpm-lock.yaml")
    assert (outcome.status, severities(outcome)) == (status, counts)
    assert all(
        isinstance(f.location, PackageLocation) and f.location.manifest == "api/pnpm-lock.yaml"
        for f in outcome.findings
    )


def test_pnpm_audit_405_is_unavailable() -> None:
    stderr = (
        "Error: ERR_PNPM_AUDIT_BAD_RESPONSE\n\n  \u00d7 The audit endpoint (at https://registry.example/-/npm/v1/security/\n"
        "  \u2502 advisories/bulk) responded with 405:\n"
    )
    outcome = pnpm_audit.parse(RawRun(1, "", stderr), "api", "api/pnpm-lock.yaml")
    assert outcome.status is Status.UNAVAILABLE
    assert outcome.reason == (
        "the registry's audit endpoint refused or failed: Error: ERR_PNPM_AUDIT_BAD_RESPONSE The audit endpoint "
        "(at https://registry.example/-/npm/v1/security/ advisories/bulk) responded with 405:"
    )


def test_pnpm_9_bad_response_is_unavailable_with_the_registrys_answer() -> None:
    """pnpm 9 prints the refused request as JSON on stdout (recorded: observed/pnpm-audit-pnpm9-405)."""
    run = RawRun(1, fixture("pnpm-audit", "pnpm_9_bad_response"), "", "9.15.0")
    outcome = pnpm_audit.parse(run, "app", "app/pnpm-lock.yaml")
    assert (outcome.status, outcome.tool_version) == (Status.UNAVAILABLE, "9.15.0")
    assert outcome.reason == (
        "the registry's audit endpoint refused or failed: ERR_PNPM_AUDIT_BAD_RESPONSE: The audit "
        "endpoint (at https://<npm-registry>/-/npm/v1/security/audits) responded with 405:"
    )


def test_npm_audit_v2_findings() -> None:
    outcome = npm_audit.parse(
        RawRun(1, fixture("npm-audit", "many")), "api", "api/package-lock.json"
    )
    assert (outcome.status, severities(outcome)) == (
        Status.FINDINGS,
        {"low": 1, "critical": 1, "high": 1},  # `debug` is vulnerable only via `ms`
    )
    ms = next(f for f in outcome.findings if f.rule_id == "GHSA-mmmm-ssss-0001")
    assert (ms.tool, ms.service, ms.raw_severity) == ("npm-audit", "api", "critical")
    assert ms.location == PackageLocation("ms", "<=2.1.3", (), "api/package-lock.json")
    assert ms.help_uri == "https://github.com/advisories/GHSA-mmmm-ssss-0001"
    clean = '{"auditReportVersion": 2, "vulnerabilities": {}, "metadata": {}}'
    assert npm_audit.parse(RawRun(0, clean), "api", "x").status is Status.CLEAN


def test_npm_audit_registry_405_is_unavailable_never_clean() -> None:
    # real npm 11.19.1 output on tests/fixtures/monorepos/npm-prisma/api (exit 1)
    stderr = (
        "npm warn audit 405 Method Not Allowed - POST https://<npm-registry>/-/npm/v1/security/"
        "advisories/bulk\nnpm error audit endpoint returned an error\n"
    )
    run = RawRun(1, fixture("npm-audit", "registry_405"), stderr)
    outcome = npm_audit.parse(run, "api", "api/package-lock.json")
    assert outcome.status is Status.UNAVAILABLE
    assert outcome.reason == (
        "the registry's audit endpoint refused or failed: 405 Method Not Allowed - POST "
        "https://<npm-registry>/-/npm/v1/security/advisories/bulk"
    )


@pytest.mark.parametrize(
    ("stdout", "stderr", "status", "reason"),
    [
        (
            '{"error": {"code": "ENOTFOUND", "summary": "request to https://registry.example/ '
            'failed, reason: getaddrinfo ENOTFOUND registry.example", "detail": ""}}',
            "",
            Status.UNAVAILABLE,
            "the registry's audit endpoint refused or failed: request to https://registry.example/ "
            "failed, reason: getaddrinfo ENOTFOUND registry.example ENOTFOUND",
        ),
        (
            "",
            "npm error code ENOLOCK\nnpm error audit This command requires an existing lockfile.",
            Status.ERROR,
            "npm error code ENOLOCK npm error audit This command requires an existing lockfile.",
        ),
        (
            '{"advisories": {}, "metadata": {}}',
            "",
            Status.ERROR,
            "npm 6's audit report (advisories) is not read; use npm 7 or later",
        ),
        ("not json", "", Status.ERROR, "not json"),
    ],
)
def test_npm_audit_failures_are_never_clean(
    stdout: str, stderr: str, status: Status, reason: str
) -> None:
    outcome = npm_audit.parse(RawRun(1, stdout, stderr), "api", "api/package-lock.json")
    assert (outcome.status, outcome.reason) == (status, reason)


@pytest.mark.parametrize(
    ("name", "status", "findings"),
    [
        ("clean", Status.CLEAN, 0),
        ("many", Status.FINDINGS, 6),  # the editable project itself is not a dependency
        ("with_fixes", Status.FINDINGS, 6),
        ("not_found", Status.UNAVAILABLE, 0),
        ("pip_audit_1.x", Status.UNAVAILABLE, 3),
    ],
)
def test_pip_audit(name: str, status: Status, findings: int) -> None:
    outcome = pip_audit.parse(RawRun(0, fixture("pip-audit", name)), "runner", "runner/uv.lock")
    assert (outcome.status, len(outcome.findings)) == (status, findings)
    assert all(
        f.severity is Severity.UNKNOWN and f.raw_severity == "none" for f in outcome.findings
    )


def test_pip_audit_false_pass_is_named() -> None:
    outcome = pip_audit.parse(
        RawRun(0, fixture("pip-audit", "not_found"), "No known vulnerabilities found"),
        "runner",
        "runner/uv.lock",
    )
    assert outcome.status is Status.UNAVAILABLE
    assert outcome.reason.startswith("6 of 6 dependencies could not be audited (")
    assert "Dependency not found on PyPI and could not be audited" in outcome.reason
