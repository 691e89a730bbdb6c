"""The JSON report: the verdict and every outcome and finding, for machines."""

from __future__ import annotations

import json

from wormhole_ci import __version__
from wormhole_ci.security.model import FileLocation, Finding, Outcome, PackageLocation
from wormhole_ci.security.policy import Verdict, effective_severity


def report(verdict: Verdict) -> dict[str, object]:
    """The report as plain data."""
    return {
        "wormhole_ci": __version__,
        "passed": verdict.passed,
        "fail_on": str(verdict.fail_on),
        "allow_unavailable": verdict.allow_unavailable,
        "reasons": verdict.reasons(),
        "outcomes": [_outcome(o) for o in verdict.outcomes],
        "expired_waivers": [e.label for e in verdict.expired],
        "unused_waivers": [e.label for e in verdict.unused],
    }


def write_json(verdict: Verdict) -> str:
    """Serialized with sorted keys (stable)."""
    return json.dumps(report(verdict), indent=2, sort_keys=True) + "\n"


def _outcome(o: Outcome) -> dict[str, object]:
    return {
        "tool": o.tool,
        "tool_version": o.tool_version,
        "target": o.target,
        "status": str(o.status),
        "reason": o.reason,
        "notes": list(o.notes),
        "findings": [_finding(f) for f in o.findings],
    }


def _finding(f: Finding) -> dict[str, object]:
    out: dict[str, object] = {
        "tool": f.tool,
        "id": f.rule_id,
        "severity": f.severity.label,
        "effective_severity": effective_severity(f).label,
        "raw_severity": f.raw_severity,
        "title": f.title,
        "service": f.service,
        "fingerprint": f.fingerprint,
        "waived_by": f.waived_by,
        "aliases": list(f.aliases),
        "help_uri": f.help_uri,
    }
    match f.location:
        case FileLocation(path=path, line=line):
            out["location"] = {"path": path, "line": line}
        case PackageLocation(name=name, version=version, fixed_versions=fixed, manifest=manifest):
            out["location"] = {
                "package": name,
                "version": version,
                "fixed_versions": list(fixed),
                "manifest": manifest,
            }
    return out
