"""Provisioning on a host that lacks the pinned tools: pnpm from npm, uv from PyPI."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wormhole_ci.errors import ProvisionError
from wormhole_ci.toolchains import (
    PNPM_VERSION,
    UV_VERSION,
    HostTools,
    Provisioner,
    host_fingerprint,
    provisioning,
)


def bare_path(tmp_path: Path, *programs: str) -> str:
    """A PATH holding only `programs` (symlinked from the real PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in programs:
        found = shutil.which(program)
        assert found, f"{program} is needed on this machine for this test"
        (bin_dir / program).symlink_to(found)
    return str(bin_dir)


@pytest.mark.slow
def test_pnpm_and_uv_are_provisioned_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs sharing the cache at once (two checks, parallel test workers): each tool is
    installed once, under its lock; the other run waits and uses it."""
    monkeypatch.setenv("PATH", bare_path(tmp_path, "node", "npm", "sh"))
    provisioners = [Provisioner(tmp_path / "cache") for _ in range(2)]

    def provision(provisioner: Provisioner) -> HostTools:
        return provisioner.provision(
            [("pnpm", PNPM_VERSION), ("uv", UV_VERSION)], {"pnpm": ["api"], "uv": ["runner"]}
        )

    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(provision, provisioners))
    tools = both[0]
    assert both[1].executables == tools.executables
    pnpm = tools.executables["pnpm"][0]
    uv = tools.executables["uv"][0]
    assert pnpm.startswith(str(tmp_path / "cache" / "tools"))
    assert uv.startswith(str(tmp_path / "cache" / "tools"))
    assert (
        subprocess.run(
            [pnpm, "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        == PNPM_VERSION
    )
    assert (
        subprocess.run(
            [uv, "--version"], capture_output=True, text=True, check=True
        ).stdout.split()[1]
        == UV_VERSION
    )
    assert sorted(provisioners[0].messages + provisioners[1].messages) == [
        f"provisioning pnpm {PNPM_VERSION} into {tmp_path / 'cache' / 'tools' / f'pnpm-{PNPM_VERSION}'}",
        f"provisioning uv {UV_VERSION} into {tmp_path / 'cache' / 'tools' / f'uv-{UV_VERSION}'}",
    ]
    # a second provisioning finds them without installing anything
    again = Provisioner(tmp_path / "cache")
    assert (
        again.provision([("pnpm", PNPM_VERSION), ("uv", UV_VERSION)], {}).executables
        == tools.executables
    )
    assert again.messages == []


def test_a_provisioning_held_too_long_is_an_error_naming_the_lock(tmp_path: Path) -> None:
    target = tmp_path / "tools" / "semgrep-abc"
    with provisioning(target, "semgrep"):
        started = time.monotonic()
        with pytest.raises(ProvisionError) as err, provisioning(target, "semgrep", timeout=0.3):
            pass
    assert time.monotonic() - started < 5
    assert str(err.value) == (
        f"semgrep: another wormhole-ci run has been installing it into {target} for over 0.3 s "
        f"({target.parent / 'semgrep-abc.lock'} is locked); wait for it, or stop it and retry"
    )
    with provisioning(target, "semgrep", timeout=0.3):  # released: taken at once
        pass


def test_old_node_is_refused_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    node = fake / "node"
    node.write_text("#!/bin/sh\necho v18.19.0\n")
    node.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake))
    with pytest.raises(
        ProvisionError,
        match=r"node is Node\.js 18\.19\.0: service\(s\) web need Node\.js 20 or newer; install it and retry",
    ):
        Provisioner(tmp_path / "cache").provision(
            [("pnpm", PNPM_VERSION)], {"pnpm": ["web", "web"]}
        )


def test_pnpm_without_npm_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", bare_path(tmp_path, "node"))
    with pytest.raises(
        ProvisionError,
        match=rf"pnpm {PNPM_VERSION} is needed by api and npm is not on PATH to install it; install pnpm {PNPM_VERSION} \(npm i -g -E pnpm@{PNPM_VERSION}\)",
    ):
        Provisioner(tmp_path / "cache").provision([("pnpm", PNPM_VERSION)], {"pnpm": ["api"]})


def test_host_fingerprint_names_node_and_python() -> None:
    fingerprint = host_fingerprint()
    assert " node v" in fingerprint
    assert " python 3." in fingerprint
    assert os.uname().machine in fingerprint
