"""`wormhole-ci build` and `publish` with daemonless buildah: the example's images, run and pushed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import committed_example, git
from tests.images.engine import NODE_BASE, PYTHON_BASE, Engine, buildah_env
from tests.images.registry_server import RegistryServer, registry_or_skip
from tests.images.service_images import SERVICES, running
from wormhole_ci.images.identity import read_identity
from wormhole_ci.images.registry import Registry

pytestmark = pytest.mark.slow
USER = "buildah-bot"
PASSWORD = "Bu1ldah-pa55word-never-printed"
BASES = ("--build-arg", f"NODE_IMAGE={NODE_BASE}", "--build-arg", f"PYTHON_IMAGE={PYTHON_BASE}")


@pytest.fixture(scope="module")
def env(engine: Engine) -> Iterator[dict[str, str]]:
    """buildah's storage with the local base images; no Docker daemon in sight of wormhole-ci."""
    with buildah_env(engine) as values:
        # the daemon is only for running the results: `--engine buildah` must not need it
        yield {k: v for k, v in values.items() if k != "DOCKER_HOST"} | {
            "REGISTRY_PASSWORD": PASSWORD
        }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return committed_example(tmp_path_factory.mktemp("buildah"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry_or_skip(tmp_path_factory.mktemp("registry"), users={USER: PASSWORD}) as server:
        yield server


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wormhole_ci", *args, "--engine", "buildah"],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
        check=False,
    )


def test_buildah_builds_images_that_run_healthy_and_report_their_sha(
    engine: Engine, env: dict[str, str], repo: Path, tmp_path: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    saved = tmp_path / "images"
    done = cli(
        env,
        "build",
        "--source",
        str(repo),
        "--service",
        "runner",
        "--service",
        "web",
        *BASES,
        "--save-dir",
        str(saved),
        "--log-dir",
        str(tmp_path / "logs"),
    )
    assert done.returncode == 0, done.stderr
    assert "with buildah 1." in done.stderr and "chroot isolation" in done.stderr
    built = {s: (n, d) for s, n, d in (line.split("\t") for line in done.stdout.splitlines())}
    assert set(built) == {"runner", "web"}
    for service, (name, config_digest) in built.items():
        assert name == f"wormhole-{service}:{head[:7]}"
        assert re.search(
            rf"{service}: built {re.escape(name)} \(sha256:\w+, [1-9]\d* MB\)", done.stderr
        )
        # the saved tarball holds the very image buildah built (same config digest)
        archive = saved / f"{service}.tar"
        assert read_identity(archive).configs == {"linux/amd64": config_digest}
        loaded = engine.docker("load", "-i", str(archive), timeout=600).stdout
        assert (
            config_digest.removeprefix("sha256:")
            in engine.docker("image", "inspect", "--format", "{{.Id}}", name).stdout
        ), loaded
        config = json.loads(
            engine.docker("image", "inspect", "--format", "{{json .Config}}", name).stdout
        )
        assert config["User"] == "10001:10001"
        assert config["Healthcheck"]["Test"][0] == "CMD"  # docker format keeps HEALTHCHECK
        assert config["Labels"]["org.opencontainers.image.revision"] == head
        with running(engine, name, SERVICES[service].port) as container:
            container.wait_healthy()
            assert engine.docker("exec", container.id, "id", "-u").stdout.strip() == "10001"
            assert container.get_json("/healthz") == {"status": "ok", "version": head}
        engine.docker("image", "rm", name, check=False)

    # web's Nuxt build cache lives in a `RUN --mount=type=cache`: buildah keeps it between
    # builds, so a server-only change restores the Vue bundles and rebuilds only Nitro
    health = repo / "web" / "server" / "utils" / "health.ts"
    # unique per run, so that this build is never served from an earlier run's layer cache
    health.write_text(health.read_text() + f"\n// server-side change {time.time_ns()}\n")
    try:
        again = cli(
            env, "build", "--source", str(repo), "--service", "web", *BASES,
            "--log-dir", str(tmp_path / "logs-again"),
        )  # fmt: skip
    finally:
        git(repo, "checkout", "--", ".")
    assert again.returncode == 0, again.stderr
    log = (tmp_path / "logs-again" / "build-web.log").read_text()
    assert "Restored Vue client and server builds from cache" in log, log[-3000:]


def test_buildah_rebuild_for_another_commit_carries_that_commit(
    env: dict[str, str], repo: Path, tmp_path: Path
) -> None:
    """buildah serves cached LABEL/ENV steps by their text (containers/buildah#5501): without
    the engine's cache key a second commit's image would report the first commit's SHA."""
    for sha in ("1" * 40, "2" * 40):
        done = cli(
            env, "build", "--source", str(repo), "--service", "runner", *BASES, "--tag", sha,
            "--log-dir", str(tmp_path / sha[:7]),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        name = f"wormhole-runner:{sha[:7]}"
        inspected = subprocess.run(
            ["buildah", "inspect", "--type", "image", name],
            capture_output=True, text=True, env=env, check=True, timeout=60,
        )  # fmt: skip
        config = json.loads(inspected.stdout)["OCIv1"]["config"]
        assert config["Labels"]["org.opencontainers.image.revision"] == sha
        assert f"BUILD_SHA={sha}" in config["Env"]
    # and the dependency layers still come from the cache
    assert "Using cache" in (tmp_path / ("2" * 7) / "build-runner.log").read_text()


def test_buildah_publish_is_immutable_and_idempotent(
    env: dict[str, str], repo: Path, registry: RegistryServer, tmp_path: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    publish = (
        "publish", "--source", str(repo), "--service", "runner", *BASES,
        "--registry", registry.address, "--username", USER, "--password", "env:REGISTRY_PASSWORD",
    )  # fmt: skip
    first = cli(env, *publish, "--output", str(tmp_path / "p.json"))
    assert first.returncode == 0, first.stderr
    for text in (first.stdout, first.stderr, (tmp_path / "p.json").read_text()):
        assert PASSWORD not in text
    (ref,) = first.stdout.split()
    name, digest = ref.split("@")
    assert name == f"{registry.address}/wormhole-runner:{head[:7]}"
    built = json.loads((tmp_path / "p.json").read_text())["images"][0]["config_digest"]
    with Registry(registry.address, USER, PASSWORD) as client:
        remote = client.resolve("wormhole-runner", head[:7])
    # what the registry serves is what buildah built
    assert remote is not None and remote.digest == digest
    assert remote.configs == {"linux/amd64": built}

    again = cli(env, *publish)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == [ref]
    assert "already holds this image; not pushed" in again.stderr

    source = repo / "runner" / "src" / "runner" / "health.py"
    source.write_text(source.read_text() + "\n# another image, same commit tag\n")
    try:
        refused = cli(env, *publish, "--tag", head, "--allow-dirty")
    finally:
        git(repo, "checkout", "--", ".")
    assert refused.returncode == 2, refused.stderr
    assert "nothing was pushed" in refused.stderr and "tags are immutable" in refused.stderr
    assert PASSWORD not in refused.stderr
    with Registry(registry.address, USER, PASSWORD) as client:
        still = client.resolve("wormhole-runner", head[:7])
    assert still is not None and still.digest == digest
