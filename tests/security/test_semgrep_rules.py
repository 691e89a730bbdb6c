"""The rule set's own contract: ids, metadata, and a ruleid and an ok case for every rule
(semgrep's --test silently skips rules without annotations, so this is checked here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.security.tasks import rules_dir

TESTS = Path(__file__).parent / "semgrep"
CATEGORIES = {
    "code-execution",
    "shell-injection",
    "raw-sql",
    "tls-verification",
    "unsafe-yaml",
    "hardcoded-credentials",
    "jwt",
    "cors",
}


def rules() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for path in sorted(rules_dir().glob("*.yaml")):
        for rule in map(
            as_dict, as_list((as_dict(yaml.safe_load(path.read_text())) or {}).get("rules")) or []
        ):
            assert rule is not None
            out[str(rule["id"])] = {**rule, "_file": path.stem}
    return out


def test_every_category_has_rules_with_complete_metadata() -> None:
    found = rules()
    assert {str(r["_file"]) for r in found.values()} == CATEGORIES
    for rule_id, rule in found.items():
        assert rule_id.startswith(("wormhole.python.", "wormhole.js.")), rule_id
        assert rule["severity"] in ("ERROR", "WARNING", "INFO"), rule_id
        assert str(rule["message"]).strip(), rule_id
        metadata = as_dict(rule["metadata"]) or {}
        assert metadata.get("category") == "security", rule_id
        cwe = metadata.get("cwe", "")
        assert all(str(c).startswith("CWE-") for c in (as_list(cwe) or [cwe])), rule_id
        for key in ("confidence", "impact", "likelihood"):
            assert key in metadata, (rule_id, key)


def test_every_rule_has_a_ruleid_and_an_ok_case() -> None:
    text = "\n".join(p.read_text() for p in TESTS.iterdir() if p.is_file())
    annotated = re.findall(r"(?:#|//)\s*(ruleid|ok):\s*([\w.,\s-]+?)\s*$", text, flags=re.MULTILINE)
    marks: dict[str, set[str]] = {}
    for kind, ids in annotated:
        for rule_id in (i.strip() for i in ids.split(",")):
            marks.setdefault(rule_id, set()).add(kind)
    ids = rules()
    assert ids, "no semgrep rule found"
    for rule_id in ids:
        assert marks.get(rule_id) == {"ruleid", "ok"}, (
            f"{rule_id}: annotations {marks.get(rule_id)}"
        )
