"""The operations files under test, and the Debian tools that check them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE

OBSERVABILITY = EXAMPLE / "deploy" / "observability"
RULES = sorted((OBSERVABILITY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((OBSERVABILITY / "prometheus" / "tests").glob("*_test.yml"))
RUNBOOKS = EXAMPLE / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/wormhole/wormhole/blob/main/docs/runbooks/"
"""Where every alert's runbook_url points (deploy/observability/README.md)."""


def debian_tool(name: str, package: str) -> Path:
    """The path of `name` (from the Debian package `package`, which `make test` installs).
    Without it the test is skipped, saying so, except under CI (`CI=true`), where it fails:
    CI must not pass by skipping what it is there to prove (as tests/conftest.py's
    shared_reference)."""
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not installed (Debian package {package}; `make engine-deps` as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true needs it", pytrace=False)
        pytest.skip(f"{reason}; tests that need it are skipped here (they fail when CI=true)")
    return Path(found)


@pytest.fixture(scope="session")
def promtool() -> Path:
    return debian_tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> Path:
    return debian_tool("amtool", "prometheus-alertmanager")
