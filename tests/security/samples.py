"""Hand-built outcomes covering every status, location kind and severity (for policy and writers)."""

from __future__ import annotations

from wormhole_ci.security.model import FileLocation, Finding, Outcome, PackageLocation, Severity

SHELL = Finding(
    "semgrep",
    "wormhole.python.subprocess-shell-true",
    Severity.HIGH,
    "subprocess with shell=True",
    FileLocation("runner/src/runner/steps.py", 12, 12),
    "runner",
    "Use an argv list.",
    "https://cwe.mitre.org/data/definitions/78.html",
    "ERROR",
)
EVAL = Finding(
    "semgrep",
    "wormhole.js.eval",
    Severity.MEDIUM,
    "eval of dynamic code",
    FileLocation("api/src/server.ts", 40, 41),
    "api",
    "Do not eval.",
    "",
    "WARNING",
)
KEY = Finding(
    "trivy",
    "private-key",
    Severity.HIGH,
    "secret: Asymmetric Private Key",
    FileLocation("runner/deploy_key.pem", 1, 1),
    "runner",
    raw_severity="HIGH",
)
LODASH = Finding(
    "pnpm-audit",
    "GHSA-jf85-cpcp-j695",
    Severity.CRITICAL,
    "Prototype Pollution in lodash",
    PackageLocation("lodash", "4.17.11", (">=4.17.12",), "api/pnpm-lock.yaml"),
    "api",
    help_uri="https://github.com/advisories/GHSA-jf85-cpcp-j695",
    raw_severity="critical",
    aliases=("CVE-2019-10744",),
)
ODD = Finding(
    "trivy",
    "CVE-2024-0001",
    Severity.UNKNOWN,
    "odd severity",
    PackageLocation("zlib", "1.2.13", (), "web/pnpm-lock.yaml"),
    "web",
    raw_severity="NEGLIGIBLE",
)
PYYAML = Finding(
    "pip-audit",
    "PYSEC-2021-142",
    Severity.UNKNOWN,
    "Arbitrary code execution in full_load",
    PackageLocation("pyyaml", "5.3", ("5.4",), "runner/uv.lock"),
    "runner",
    raw_severity="none",
    aliases=("CVE-2020-14343",),
)


def outcomes() -> list[Outcome]:
    return [
        Outcome.of("semgrep", "monorepo", [SHELL, EVAL], "1.185.0"),
        Outcome.of("trivy", "monorepo", [KEY, ODD], "0.76.0"),
        Outcome.of("pnpm-audit", "api", [LODASH], "12.4.2"),
        Outcome.unavailable(
            "pnpm-audit", "web", "the registry's audit endpoint refused or failed: 405", "12.4.2"
        ),
        Outcome.of("pip-audit", "runner", [PYYAML], "2.10.1"),
        Outcome.error("semgrep", "extra", "3 semgrep errors, first: Syntax error", "1.185.0"),
    ]
