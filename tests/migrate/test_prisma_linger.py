"""`run_prisma` ends a CLI that printed its success line but lingers, and nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wormhole_ci.errors import MigrateError
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.migrate.prisma import DEPLOY_DONE, LINGER_GRACE, run_prisma

URL = DatabaseUrl.parse("postgresql://wormhole:pw-not-shown-42@127.0.0.1:5432/wormhole")


def fake_cli(tmp_path: Path, body: str) -> tuple[str, ...]:
    """A real process standing in for the Prisma CLI: `body` is its Python source."""
    script = tmp_path / "cli.py"
    script.write_text(
        "import os, sys, time\n"
        "print('Datasource: ' + os.environ['DATABASE_URL'], flush=True)\n" + body
    )
    return (sys.executable, str(script))


def test_a_cli_lingering_after_its_success_line_is_ended_and_counts_as_done(
    tmp_path: Path,
) -> None:
    cli = fake_cli(tmp_path, f"print({DEPLOY_DONE[0]!r}, flush=True)\ntime.sleep(60)\n")
    run = run_prisma(cli, ("migrate", "deploy"), tmp_path, URL, 30, done=DEPLOY_DONE)
    assert run.ended_after_done and run.exit_code == 0
    assert LINGER_GRACE <= run.seconds < LINGER_GRACE + 8
    assert DEPLOY_DONE[0] in run.output
    assert "pw-not-shown-42" not in run.output


def test_a_cli_exiting_on_its_own_keeps_its_exit_code(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, f"print({DEPLOY_DONE[1]!r}, flush=True)\nsys.exit(3)\n")
    run = run_prisma(cli, ("migrate", "deploy"), tmp_path, URL, 30, done=DEPLOY_DONE)
    assert (run.exit_code, run.ended_after_done) == (3, False)


def test_without_its_success_line_a_cli_runs_to_the_deadline(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "print('Applying migration 1', flush=True)\ntime.sleep(60)\n")
    with pytest.raises(MigrateError, match=r"did not finish within 3 s") as info:
        run_prisma(cli, ("migrate", "deploy"), tmp_path, URL, 3, done=DEPLOY_DONE)
    assert "Applying migration 1" in str(info.value)
    assert "pw-not-shown-42" not in str(info.value)
