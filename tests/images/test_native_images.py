"""`wormhole-ci build` and `publish` for real: a Docker engine, the example, a loopback registry."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import committed_example, git
from tests.images.engine import DEBIAN_DOCKER_CLIENT, NODE_BASE, PYTHON_BASE, Engine
from tests.images.registry_server import RegistryServer, registry_or_skip
from wormhole_ci.errors import ImageError
from wormhole_ci.images.engine import DOCKER_CLIENT_VARIABLE, DockerEngine
from wormhole_ci.images.identity import read_identity
from wormhole_ci.images.registry import Registry

pytestmark = pytest.mark.slow
USER = "release-bot"
PASSWORD = "Reg1stry-pa55word-never-printed"
BASES = ("--build-arg", f"NODE_IMAGE={NODE_BASE}", "--build-arg", f"PYTHON_IMAGE={PYTHON_BASE}")


def cli(engine: Engine, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wormhole_ci", *args],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**engine.env(), "REGISTRY_PASSWORD": PASSWORD, **env},
        check=False,
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed copy of the example monorepo (its own git repository)."""
    return committed_example(tmp_path_factory.mktemp("native-images"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry_or_skip(tmp_path_factory.mktemp("registry"), users={USER: PASSWORD}) as server:
        yield server


def publish(
    engine: Engine, repo: Path, registry: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cli(
        engine,
        "publish",
        "--source",
        str(repo),
        "--registry",
        registry,
        "--username",
        USER,
        "--password",
        "env:REGISTRY_PASSWORD",
        *BASES,
        *extra,
    )


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


def test_build_tags_by_commit_and_saves_tarballs(
    engine: Engine, repo: Path, tmp_path: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    done = cli(
        engine,
        "build",
        "--source",
        str(repo),
        *BASES,
        "--save-dir",
        str(tmp_path),
        "--output",
        str(tmp_path / "build.json"),
    )
    assert done.returncode == 0, done.stderr
    lines = [line.split("\t") for line in done.stdout.splitlines()]
    assert [(s, n) for s, n, _ in lines] == [
        (s, f"wormhole-{s}:{head[:7]}") for s in ("api", "web", "runner")
    ]
    for service, name, config_digest in lines:
        labels = engine.docker(
            "image",
            "inspect",
            "--format",
            '{{index .Config.Labels "org.opencontainers.image.revision"}}',
            name,
        ).stdout.strip()
        assert labels == head
        # the saved tarball is the same image: its config digest is the engine's image ID
        identity = read_identity(tmp_path / f"{service}.tar")
        assert identity.configs == {"linux/amd64": config_digest}
    assert "built wormhole-api" in done.stderr and "BuildKit" in done.stderr


def test_publish_then_republish_then_refuse_a_moved_tag(
    engine: Engine, repo: Path, registry: RegistryServer, tmp_path: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    first = publish(
        engine,
        repo,
        registry.address,
        "--service",
        "runner",
        "--version-tag",
        "v0.1.0",
        "--output",
        str(tmp_path / "p.json"),
    )
    assert first.returncode == 0, first.stderr
    assert_no_secret(first.stdout, first.stderr, (tmp_path / "p.json").read_text())
    refs = first.stdout.split()
    assert [r.split("@")[0] for r in refs] == [
        f"{registry.address}/wormhole-runner:{head[:7]}",
        f"{registry.address}/wormhole-runner:v0.1.0",
    ]
    served = engine.docker(
        "image", "inspect", "--format", "{{.Id}}", f"wormhole-runner:{head[:7]}"
    ).stdout.strip()
    with Registry(registry.address, USER, PASSWORD) as client:
        for ref in refs:
            name, digest = ref.split("@")
            remote = client.resolve("wormhole-runner", name.rsplit(":", 1)[1])
            # what the registry serves is what was built: same digest, same image config
            assert remote is not None and remote.digest == digest
            assert remote.configs == {"linux/amd64": served}

    again = publish(
        engine, repo, registry.address, "--service", "runner", "--version-tag", "v0.1.0"
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == refs  # same digests: nothing moved
    assert "already holds this image; not pushed" in again.stderr and "pushing" not in again.stderr

    # different content under the same commit tag: refused, and nothing pushed
    (repo / "runner" / "src" / "runner" / "health.py").write_text(
        (repo / "runner" / "src" / "runner" / "health.py").read_text() + "\n# changed\n"
    )
    try:
        refused = publish(
            engine, repo, registry.address, "--service", "runner", "--tag", head, "--allow-dirty"
        )
    finally:
        git(repo, "checkout", "--", ".")
    assert refused.returncode == 2, refused.stderr
    assert "nothing was pushed" in refused.stderr and "tags are immutable" in refused.stderr
    assert f"wormhole-runner:{head[:7]}" in refused.stderr
    assert_no_secret(refused.stdout, refused.stderr)
    with Registry(registry.address, USER, PASSWORD) as client:
        remote = client.resolve("wormhole-runner", head[:7])
        assert remote is not None and remote.digest == refs[0].split("@")[1]


def test_publish_bad_input_pushes_nothing(
    engine: Engine, repo: Path, registry: RegistryServer
) -> None:
    cases = {
        "unreachable": (
            publish(engine, repo, "127.0.0.1:9", "--service", "api"),
            "registry 127.0.0.1:9 is unreachable",
        ),
        "wrong password": (
            cli(
                engine,
                "publish",
                "--source",
                str(repo),
                "--registry",
                registry.address,
                "--username",
                USER,
                "--password",
                "env:WRONG_PW",
                WRONG_PW="not-it-at-all",
            ),
            f"rejected the credentials for user {USER}",
        ),
        "literal password": (
            cli(
                engine,
                "publish",
                "--source",
                str(repo),
                "--registry",
                registry.address,
                "--username",
                USER,
                "--password",
                PASSWORD,
            ),
            "expected a secret reference env:NAME or file:PATH",
        ),
        "unknown service": (
            publish(engine, repo, registry.address, "--service", "nope"),
            "no service named 'nope' (known services: api, web, runner, hasura, delivery)",
        ),
        "no Dockerfile": (
            publish(engine, repo, registry.address, "--service", "hasura"),
            "service 'hasura' has no Dockerfile",
        ),
        "foreign platform": (
            publish(
                engine, repo, registry.address, "--service", "api", "--platform", "linux/arm64"
            ),
            "a native build makes only linux/amd64 images",
        ),
    }
    for case, (done, message) in cases.items():
        assert done.returncode == 2, (case, done.stderr)
        assert message in done.stderr, (case, done.stderr)
        assert_no_secret(done.stdout, done.stderr)
        assert "not-it-at-all" not in done.stderr
    with registry.client() as client:
        catalog = client.get("/v2/_catalog").json()["repositories"]
    assert "wormhole-api" not in catalog and "wormhole-web" not in catalog


def test_dirty_tree_is_refused_before_building(
    engine: Engine, repo: Path, registry: RegistryServer
) -> None:
    (repo / "api" / "untracked.txt").write_text("x\n")
    try:
        done = publish(engine, repo, registry.address, "--service", "api")
    finally:
        (repo / "api" / "untracked.txt").unlink()
    assert done.returncode == 2
    assert "has uncommitted changes" in done.stderr and "--allow-dirty" in done.stderr
    assert "building" not in done.stderr


def test_no_engine_is_a_clear_error(engine: Engine, repo: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "docker"):  # docker present, but its daemon is not; no buildah
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    done = cli(
        engine,
        "build",
        "--source",
        str(repo),
        DOCKER_HOST=f"unix://{tmp_path}/none.sock",
        PATH=str(bin_dir),
    )
    assert done.returncode == 2
    assert "no image engine" in done.stderr and "dagger call build" in done.stderr


def test_buildkit_is_found_in_a_pre_23_client(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian's docker.io client (20.10) carries BuildKit itself; no buildx plugin needed."""
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    monkeypatch.setenv(DOCKER_CLIENT_VARIABLE, str(DEBIAN_DOCKER_CLIENT))
    found = DockerEngine.detect()
    assert found is not None and found.client == str(DEBIAN_DOCKER_CLIENT)
    assert found.buildkit in {"builtin", "buildx"}
    assert "BuildKit" in found.describe()


def test_classic_builder_builds_plain_dockerfiles_and_refuses_run_mount(
    engine: Engine, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client without BuildKit (>= 23 and no buildx) still builds runner with the classic
    builder; web's Dockerfile needs `RUN --mount` and is refused before anything runs."""
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    classic = DockerEngine("20.10", buildkit=None, client=str(DEBIAN_DOCKER_CLIENT))
    runner = repo / "runner"
    image = classic.build(
        runner, runner / "Dockerfile", "whci-classic/runner:test",
        [("PYTHON_IMAGE", PYTHON_BASE)], tmp_path / "runner.log",
    )  # fmt: skip
    assert image.config_digest.startswith("sha256:")
    assert "Step 1/" in (tmp_path / "runner.log").read_text()  # the legacy builder's log
    engine.docker("image", "rm", "whci-classic/runner:test", check=False)

    web = repo / "web"
    with pytest.raises(ImageError, match=r"uses `RUN --mount`, which needs BuildKit") as refused:
        classic.build(
            web, web / "Dockerfile", "whci-classic/web:test",
            [("NODE_IMAGE", NODE_BASE)], tmp_path / "web.log",
        )  # fmt: skip
    for fix in ("docker-buildx", DOCKER_CLIENT_VARIABLE, "--engine buildah", "dagger call build"):
        assert fix in str(refused.value)
    assert not (tmp_path / "web.log").exists() and not engine.image_exists("whci-classic/web:test")
