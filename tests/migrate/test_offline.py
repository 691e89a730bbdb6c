"""`migrate` without the npm registry (issue 13, item 6), for real, in a network namespace.

The second `migrate` runs under `unshare -n`: a namespace with only its own loopback, so
neither the registry nor anything else outside is reachable. PostgreSQL (the session's
server, started outside) is reached through a relay from the namespace's 127.0.0.1 to its
unix socket (netns_relay.py): the whole job — setup, lock, lint, deploy, verify — runs
inside, not only the install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PgDatabase, copy_example
from tests.migrate.test_migrate_job import add_migration, applied, assert_no_secret, migrate, rows
from wormhole_ci.check.taskcache import inputs_digest
from wormhole_ci.manifest import load_manifest
from wormhole_ci.migrate import native
from wormhole_ci.pgtemp import TempPostgres
from wormhole_ci.plan import build_plan
from wormhole_ci.toolchains import PNPM_VERSION, default_cache_dir

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
RELAY = Path(__file__).with_name("netns_relay.py")
TAG = "4f3c2b1" + "0" * 33
NEW = "20990101000000_offline_probe"
NEW2 = "20990102000000_offline_probe_2"


def unshare_or_skip() -> str:
    """`unshare`, when this process may create network namespaces (root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace (unshare -n)")
    unshare = shutil.which("unshare")
    if unshare is None:
        if os.environ.get("CI") == "true":
            pytest.fail("unshare (util-linux) is missing; CI=true needs it", pytrace=False)
        pytest.skip("unshare (util-linux) is not installed; skipped here (fails when CI=true)")
    return unshare


def offline_migrate(
    server: TempPostgres, repo: Path, db: PgDatabase, *extra: str, path: str | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    command = [
        *(unshare_or_skip(), "-n", "--"),
        *(sys.executable, str(RELAY), str(server.socket_dir), str(server.port), "--"),
        *(sys.executable, "-m", "wormhole_ci", "migrate", "--source", str(repo), "--tag", TAG),
        *("--database-url", "env:DATABASE_URL", "--no-backup", *extra),
    ]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = db.raw
    if path is not None:
        env["PATH"] = path
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    elapsed = time.monotonic() - started
    print(f"offline migrate{' (cold)' if path else ''}: exit {done.returncode}, {elapsed:.1f} s")
    assert_no_secret(db, done.stdout, done.stderr)
    return done, elapsed


def test_new_migration_applies_without_the_registry(
    tmp_path: Path, pg_server: TempPostgres, database_url: PgDatabase
) -> None:
    unshare_or_skip()
    repo = copy_example(tmp_path)
    started = time.monotonic()
    first = migrate(repo, database_url, "--no-backup")  # online: warms the store if needed
    print(f"online migrate: exit {first.returncode}, {time.monotonic() - started:.1f} s")
    assert first.returncode == 0, first.stderr
    add_migration(repo, NEW, "CREATE TABLE offline_probe (id integer PRIMARY KEY);\n")

    # Only a migration added: the install (keyed on the dependency files) is reused.
    done, elapsed = offline_migrate(pg_server, repo, database_url)

    assert done.returncode == 0, done.stderr
    assert f"applied {NEW}" in done.stdout + done.stderr
    assert "[api] install passed (cached" in done.stdout + done.stderr
    assert elapsed < 120, f"took {elapsed:.0f} s"

    # A fresh checkout on the runner: the install must really run, from the store alone.
    add_migration(repo, NEW2, "CREATE TABLE offline_probe_2 (id integer PRIMARY KEY);\n")
    shutil.rmtree(repo / "api" / "node_modules")

    done, elapsed = offline_migrate(pg_server, repo, database_url)

    assert done.returncode == 0, done.stderr
    assert "install started: pnpm install --frozen-lockfile --offline" in done.stdout + done.stderr
    assert f"applied {NEW2}" in done.stdout + done.stderr
    assert applied(database_url.url)[-2:] == [(NEW, 1), (NEW2, 1)]
    assert "from the registry" not in done.stderr  # the offline install was enough
    assert elapsed < 120, f"took {elapsed:.0f} s"


def test_cold_store_offline_fails_fast_naming_the_fix(
    tmp_path: Path, pg_server: TempPostgres, database_url: PgDatabase
) -> None:
    unshare_or_skip()
    pnpm = default_cache_dir() / "tools" / f"pnpm-{PNPM_VERSION}" / "node_modules" / ".bin"
    if not (pnpm / "pnpm").exists():  # pnpm itself on PATH: this test is about the store
        first = migrate(copy_example(tmp_path / "warm"), database_url, "--no-backup")
        assert first.returncode == 0, first.stderr
    repo = copy_example(tmp_path)
    cold = tmp_path / "cold-cache"

    done, elapsed = offline_migrate(
        pg_server,
        repo,
        database_url,
        "--cache-dir",
        str(cold),
        path=os.pathsep.join([str(pnpm), os.environ.get("PATH", "")]),
    )

    assert done.returncode != 0
    assert elapsed < 60, f"took {elapsed:.0f} s"
    assert "nothing was migrated" in done.stderr
    assert "ERR_PNPM_NO_OFFLINE_META" in done.stderr or "pnpm reports missing: @" in done.stderr
    assert "Fix: run `wormhole-ci migrate`" in done.stderr and "pnpm fetch" in done.stderr
    assert str(cold / "pnpm-store") in done.stderr
    assert done.stderr.count("Fix:") == 1
    assert rows(database_url.url, "SELECT to_regclass('_prisma_migrations')") == [(None,)]


def test_offline_miss_names_the_package_through_pnpm_line_wrapping() -> None:
    log = (
        "Error: ERR_PNPM_META_FETCH_FAIL\n\n  \u00d7 installing dependencies\n"
        "  ╰─▶ ERR_PNPM_NO_OFFLINE_META: Failed to resolve @rolldown/binding-linux-\n"
        "      x64-gnu in package mirror /c/v11/metadata-full/\n"
        "      https%3A+registry.npmjs.org/@rolldown/binding-linux-x64-gnu.jsonl\n"
    )
    assert native.offline_miss_names(log) == ["@rolldown/binding-linux-x64-gnu"]
    assert native.offline_miss_names("ERR_PNPM_META_FETCH_FAIL: network") is None


def test_a_new_migration_does_not_change_the_install_key(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    install = next(
        t
        for t in native.setup_plan(build_plan(load_manifest(repo), ["api"]), online=False).tasks
        if t.name == "install"
    )
    assert install.argv[-1] == "--offline"
    before = inputs_digest(repo, install.inputs)
    add_migration(repo, NEW, "SELECT 1;\n")
    (repo / "api" / "src" / "new_file.ts").write_text("export const x = 1;\n")
    assert inputs_digest(repo, install.inputs) == before
    (repo / "api" / "package.json").write_text(
        (repo / "api" / "package.json").read_text().replace('"0.1.0"', '"0.1.1"')
    )
    assert inputs_digest(repo, install.inputs) != before
