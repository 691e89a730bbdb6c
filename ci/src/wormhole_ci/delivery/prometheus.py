"""Prometheus by promtool: the configuration, the rule files and their unit tests."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import yaml

from wormhole_ci.delivery.documents import InvalidFile, items, load_yaml
from wormhole_ci.delivery.rules import shown_path
from wormhole_ci.delivery.tools import indented, run


def config_problems(promtool: str, config: Path, rules: list[Path], root: Path) -> list[str]:
    """`promtool check config` on a copy of `config` whose rule_files are the real rule files.

    The file names the paths the rules have inside the Prometheus container
    (/etc/prometheus/rules/*.yml); pointed at the repository's copies instead, promtool
    checks the configuration together with exactly the rules that will be mounted.
    """
    shown = shown_path(config, root)
    try:
        doc = load_yaml(config, shown)
    except InvalidFile as exc:
        return [str(exc)]
    doc["rule_files"] = [str(path.resolve()) for path in rules]
    with tempfile.TemporaryDirectory(prefix="wormhole-ci-prometheus-") as tmp:
        copy = Path(tmp) / "prometheus.yml"
        copy.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        done = run([promtool, "check", "config", copy])
        if done.code == 0:
            return []
        back = [(str(copy), shown), *((str(p.resolve()), shown_path(p, root)) for p in rules)]
        return [
            f"{shown}: promtool check config failed; fix what it reports:"
            + indented(done.output, *back)
        ]


def rules_problems(promtool: str, rules: list[Path], root: Path) -> list[str]:
    """`promtool check rules` on each rule file (relative paths: messages name them so)."""
    problems: list[str] = []
    for path in rules:
        shown = shown_path(path, root)
        done = run([promtool, "check", "rules", shown], cwd=root)
        if done.code != 0:
            problems.append(
                f"{shown}: promtool check rules failed; fix the rule it names:"
                + indented(done.output)
            )
    return problems


def unit_test_problems(promtool: str, tests: list[Path], root: Path) -> list[str]:
    """`promtool test rules` on each unit-test file; its rule_files are relative to the test
    file (as promtool resolves them), and each must exist."""
    # One run per file, so a failure names its file; together they are most of the
    # validation's time, and independent: run them side by side.
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        found = pool.map(partial(_unit_test, promtool, root=root), tests)
        return [problem for problems in found for problem in problems]


def _unit_test(promtool: str, path: Path, *, root: Path) -> list[str]:
    shown = shown_path(path, root)
    try:
        listed = items(load_yaml(path, shown).get("rule_files"), f"{shown}: rule_files")
    except InvalidFile as exc:
        return [str(exc)]
    missing = [str(f) for f in listed if not (path.parent / str(f)).resolve().is_file()]
    if missing or not listed:
        return [
            f"{shown}: rule_files {', '.join(missing) or '(none)'} not found next to the "
            "test; list the rule files it tests, relative to the test file "
            "(e.g. ../rules/api.yml)"
        ]
    done = run([promtool, "test", "rules", shown], cwd=root)
    if done.code != 0:
        return [
            f"{shown}: promtool test rules failed; fix the rule or the test:"
            + indented(done.output)
        ]
    return []
