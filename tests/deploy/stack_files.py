"""Reading the deployment files the way their consumers do, for tests/deploy/test_stack.py: Compose
interpolation and variables, env-example files, literal secrets, and the environment variables
each example service's source reads. Pure functions; no tool is run here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from wormhole_ci.delivery.stack import (
    MAGIC,
    EnvEntry,
    UnsetVariableError,
    env_entries,
    environment,
    interpolate,
    variables,
)

# Compose interpolation, env examples and a service's environment are read as validate-delivery
# reads them (wormhole_ci.delivery.stack): re-exported here for the tests.
__all__ = [
    "MAGIC",
    "EnvEntry",
    "UnsetVariableError",
    "env_entries",
    "environment",
    "interpolate",
    "literal_secrets",
    "load_yaml",
    "node_reads",
    "python_reads",
    "variables",
]


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data  # pyright: ignore[reportUnknownVariableType]


# ---------------------------------------------------------------- literal secrets

_SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|_PASS\b|SECRET|TOKEN|API_KEY|ROUTING_KEY|_AUTH\b|WEBHOOK)"
)
_ASSIGNMENT = re.compile(
    r"^\s*(?:#\s*)?-?\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*[:=]\s*(?P<value>.*?)\s*$"
)
_URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:(?P<password>[^@\s/]+)@")
_TOKEN_SHAPES = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----|hooks\.slack\.com/services/[A-Za-z0-9/]+"
    r"|sk_live_[A-Za-z0-9]{10,}|glpat-[A-Za-z0-9_-]{10,}"
)
_REFERENCE = re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*")


def literal_secrets(text: str) -> list[str]:
    """Lines of a Compose or env file that hold a secret's value instead of a reference: a
    secret-named key with a literal value, a URL with a literal password, a known token shape."""
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        assignment = _ASSIGNMENT.match(line)
        if assignment and _SECRET_NAME.search(assignment["name"].upper()):
            value = assignment["value"].strip("'\"")
            if value and not _REFERENCE.match(value):
                found.append(f"line {number}: {assignment['name']} has a literal value")
        for url in _URL_CREDENTIALS.finditer(line):
            if not _REFERENCE.match(url["password"]):
                found.append(f"line {number}: a URL carries a literal password")
        if _TOKEN_SHAPES.search(line):
            found.append(f"line {number}: looks like a token or key")
    return found


# ---------------------------------------------------------------- what the sources read

_TS_READS = (
    re.compile(r"\benv\??\.([A-Z][A-Z0-9_]*)\b"),  # process.env.X, env.X, env?.X
    re.compile(r"\benv\[\s*[\"'`]([A-Z][A-Z0-9_]*)[\"'`]\s*\]"),
)
_PRISMA_READ = re.compile(r"\benv\(\s*\"([A-Z][A-Z0-9_]*)\"\s*\)")
_PY_READS = (
    re.compile(r"\bos\.environ\[\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
    re.compile(r"\b(?:os\.getenv|(?:environ|env|source)\.get)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
    # helpers that take the environment mapping first: _get(env, "NAME"), _int(source, "NAME", …)
    re.compile(r"\b(?:environ|env|source)\s*,\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
)
_SKIP_DIRS = frozenset({"node_modules", ".nuxt", ".output", "dist", ".venv", "test", "tests"})


def source_files(root: Path, suffixes: Iterable[str]) -> list[Path]:
    """The service's own source under `root`: no tests, no dependencies, no build output."""
    wanted = tuple(suffixes)
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.name.endswith(wanted)
        and not _SKIP_DIRS.intersection(path.relative_to(root).parts[:-1])
        and not re.search(r"\.(test|spec)\.[cm]?[jt]s$", path.name)
    )


def node_reads(root: Path) -> dict[str, set[str]]:
    """Variable → files, for the environment variables a Node/Nuxt service's source reads."""
    reads: dict[str, set[str]] = {}
    for path in source_files(root, (".ts", ".js", ".mjs", ".cjs", ".vue")):
        text = path.read_text()
        for pattern in _TS_READS:
            for name in pattern.findall(text):
                reads.setdefault(name, set()).add(str(path.relative_to(root)))
    for path in source_files(root, (".prisma",)):  # url = env("DATABASE_URL")
        for name in _PRISMA_READ.findall(path.read_text()):
            reads.setdefault(name, set()).add(str(path.relative_to(root)))
    nuxt_config = root / "nuxt.config.ts"
    if nuxt_config.is_file():
        for name in nuxt_runtime_config_variables(nuxt_config.read_text()):
            reads.setdefault(name, set()).add("nuxt.config.ts (runtimeConfig)")
    return reads


def python_reads(root: Path) -> dict[str, set[str]]:
    """Variable → files, for the environment variables a Python service's source reads."""
    reads: dict[str, set[str]] = {}
    for path in source_files(root, (".py",)):
        text = path.read_text()
        for pattern in _PY_READS:
            for name in pattern.findall(text):
                reads.setdefault(name, set()).add(str(path.relative_to(root)))
    return reads


_NUXT_TOKEN = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|(\w+)\s*:\s*(\{)?|\{|\}")


def nuxt_runtime_config_variables(config: str) -> set[str]:
    """The NUXT_* variables that override `runtimeConfig` at run time (Nuxt maps
    runtimeConfig.public.apiBase to NUXT_PUBLIC_API_BASE, runtimeConfig.secret to NUXT_SECRET)."""
    start = re.search(r"\bruntimeConfig\s*:\s*\{", config)
    if not start:
        return set()
    path: list[str | None] = []
    names: set[str] = set()
    for token in _NUXT_TOKEN.finditer(config, start.end()):
        text = token.group(0)
        if token[1]:  # key: or key: {
            if token[2]:
                path.append(token[1])
            else:
                keys = [k for k in path if k] + [token[1]]
                names.add("NUXT_" + "_".join(_snake(k) for k in keys))
        elif text == "{":
            path.append(None)
        elif text == "}":
            if not path:
                break  # the end of runtimeConfig
            path.pop()
    return names


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).upper()
