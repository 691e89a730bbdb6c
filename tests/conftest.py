"""Shared fixtures: the example monorepo, copies of it, and a throwaway PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from wormhole_ci.paths import GENERATED_DIRS
from wormhole_ci.pgtemp import TempPostgres, find_bindir, temp_postgres

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "wormhole"
SHARED = ROOT.parent / "shared"
# Build outputs and installed dependencies never travel with a copy of the example.
_IGNORE = shutil.ignore_patterns(*GENERATED_DIRS, ".env")


def copy_example(dest: Path) -> Path:
    """A clean copy of the example monorepo under `dest`."""
    target = dest / "wormhole"
    shutil.copytree(EXAMPLE, target, ignore=_IGNORE, symlinks=True)
    return target


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A fresh, clean copy of the example monorepo (no installed dependencies)."""
    return copy_example(tmp_path)


@pytest.fixture(scope="session")
def pg_bindir() -> Path:
    """The PostgreSQL server binaries; tests needing them are skipped, with the reason, without."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed")
    return bindir


@pytest.fixture
def postgres(pg_bindir: Path) -> Iterator[TempPostgres]:
    """A running throwaway PostgreSQL cluster (Unix socket only)."""
    with temp_postgres(pg_bindir) as server:
        yield server
