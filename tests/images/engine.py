"""A Docker engine for the image tests (found or started) and local stand-ins for the base images."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path

from wormhole_ci.images.engine import DOCKER_CLIENT_VARIABLE
from wormhole_ci.toolchains import exclusive

ROOT = Path(__file__).resolve().parents[2]
BASE_DIR = Path(__file__).resolve().parent / "base"
# Outside the repository, so images, layer cache and the debootstrap rootfs survive between runs.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wormhole-ci-tests"

DEBIAN_BASE = "wormhole-ci-test/debian:bookworm-minbase"
NODE_BASE = "wormhole-ci-test/node:20.20.2-bookworm-slim"
PYTHON_BASE = "wormhole-ci-test/python:3.11.14-slim-bookworm"
# Bump when the rootfs recipe below changes: the tarball and every image on it are then remade.
ROOTFS_RECIPE = "minbase-slim-1"
ROOTFS_TARBALL = CACHE / f"debian-bookworm-{ROOTFS_RECIPE}.tar"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_NODE = Path("/usr/bin/node")
HOST_NODE_MODULES = Path("/usr/lib/node_modules")
RECIPE_LABEL = "org.wormhole-ci.test.recipe"

# Our own dockerd gets its own bridge, so it can run next to another daemon that owns docker0.
# Debian's docker.io client (20.10) has BuildKit built in; a newer client earlier on PATH may
# lack the buildx plugin, and the web image's Dockerfile needs BuildKit (RUN --mount).
DEBIAN_DOCKER_CLIENT = Path("/usr/bin/docker")
OWN_BRIDGE = "whci0"
OWN_BRIDGE_CIDR = "10.213.17.1/24"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
LEFTOVER_PID = CACHE / "dockerd.pid"
_ENGINE_START_TIMEOUT = 90.0
_ENGINE_STOP_TIMEOUT = 30.0


class EngineUnavailable(Exception):
    """No Docker engine can be had on this machine; the message says why and what would fix it."""


@dataclass(frozen=True)
class Engine:
    """A Docker daemon the `docker` client reaches at `host` (a DOCKER_HOST value)."""

    host: str

    def env(self) -> dict[str, str]:
        """The environment for `docker` and `wormhole-ci` against this engine: our own docker
        calls use the legacy builder (no buildx here), `wormhole-ci build` a BuildKit client."""
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}
        if DOCKER_CLIENT_VARIABLE not in env and DEBIAN_DOCKER_CLIENT.exists():
            env[DOCKER_CLIENT_VARIABLE] = str(DEBIAN_DOCKER_CLIENT)
        return env

    def docker(
        self, *args: str, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker ARGS` against this engine; with `check`, fail with its output."""
        done = subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env(),
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def image_exists(self, name: str) -> bool:
        return self.docker("image", "inspect", name, check=False).returncode == 0

    def image_label(self, name: str, label: str) -> str | None:
        done = self.docker(
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{label}"}}}}',
            name,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else None


def _answers(host: str) -> bool:
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
            env={**os.environ, "DOCKER_HOST": host},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def ensure_engine_packages() -> None:
    """dockerd, the docker client, debootstrap and buildah, installed by `make engine-deps` if
    missing."""
    needed = ("docker", "dockerd", "debootstrap", "buildah")
    if all(shutil.which(tool) for tool in needed):
        return
    missing = ", ".join(tool for tool in needed if not shutil.which(tool))
    if os.geteuid() != 0:
        raise EngineUnavailable(
            f"{missing} not installed and not running as root to install them "
            "(as root: make engine-deps, i.e. apt-get install docker.io docker-registry debootstrap buildah)"
        )
    if not shutil.which("apt-get"):
        raise EngineUnavailable(f"{missing} not installed and no apt-get to install them with")
    done = subprocess.run(
        ["make", "-C", str(ROOT), "engine-deps"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    still = [tool for tool in needed if not shutil.which(tool)]
    if done.returncode != 0 or still:
        raise EngineUnavailable(
            f"make engine-deps (exit {done.returncode}) left {', '.join(still) or 'nothing'} "
            f"missing:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )


@contextlib.contextmanager
def docker_engine() -> Generator[Engine]:
    """DOCKER_HOST or the default socket when it answers, else a dockerd of our own for the
    duration of the block (its data root under CACHE, so images and layer cache persist)."""
    ensure_engine_packages()
    for host in (os.environ.get("DOCKER_HOST", ""), DEFAULT_SOCKET):
        if host and _answers(host):
            yield Engine(host)
            return
    with _own_dockerd() as engine:
        yield engine


@contextlib.contextmanager
def _file_lock(path: Path, what: str, timeout: float) -> Generator[None]:
    """An exclusive flock on `path`, waited for up to `timeout` seconds."""

    def still_locked() -> Exception:
        return EngineUnavailable(
            f"{what}: {path} is still locked by another test session after {timeout:.0f}s"
        )

    with exclusive(path, timeout, still_locked, poll=1):
        yield


def _ensure_bridge() -> bool:
    """Create OWN_BRIDGE if it does not exist; True when it can be used."""
    if not shutil.which("ip"):
        return False
    exists = subprocess.run(["ip", "link", "show", OWN_BRIDGE], capture_output=True, check=False)
    if exists.returncode == 0:
        return True
    for argv in (
        ["ip", "link", "add", "name", OWN_BRIDGE, "type", "bridge"],
        ["ip", "addr", "add", OWN_BRIDGE_CIDR, "dev", OWN_BRIDGE],
        ["ip", "link", "set", OWN_BRIDGE, "up"],
    ):
        if subprocess.run(argv, capture_output=True, check=False).returncode != 0:
            return False
    return True


@contextlib.contextmanager
def _own_dockerd() -> Generator[Engine]:
    if os.geteuid() != 0:
        raise EngineUnavailable(
            "no Docker engine answers (DOCKER_HOST, /var/run/docker.sock) and starting dockerd "
            "needs root"
        )
    data_root = CACHE / "docker"
    # One daemon per data root: a second test session waits for the first one's engine to stop.
    with _file_lock(CACHE / "docker.lock", "dockerd data root", timeout=1800):
        _stop_leftover(data_root)
        run_dir = Path(tempfile.mkdtemp(prefix="whci-dockerd-"))
        host = f"unix://{run_dir / 'docker.sock'}"
        log_path = run_dir / "dockerd.log"
        argv = [
            "dockerd",
            "--host",
            host,
            "--data-root",
            str(data_root),
            "--exec-root",
            str(run_dir / "exec"),
            "--pidfile",
            str(run_dir / "docker.pid"),
        ]
        if _ensure_bridge():
            argv += ["--bridge", OWN_BRIDGE]
        with log_path.open("w") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        LEFTOVER_PID.write_text(str(process.pid))
        try:
            deadline = time.monotonic() + _ENGINE_START_TIMEOUT
            while not _answers(host):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise EngineUnavailable(
                        f"dockerd did not answer on {host} within {_ENGINE_START_TIMEOUT:.0f}s "
                        f"(exit {process.poll()}); log tail:\n{log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
            yield Engine(host)
        finally:
            _stop(process)
            LEFTOVER_PID.unlink(missing_ok=True)
            shutil.rmtree(run_dir, ignore_errors=True)


def _stop_leftover(data_root: Path) -> None:
    """Stop the dockerd of a session that died without its teardown (a killed pytest): we hold the
    data root's lock, so no live session owns it, and two daemons must never share a data root.
    Then release what a daemon killed outright leaves (_release_network_namespaces)."""
    try:
        _stop_leftover_daemon(data_root)
    finally:
        _release_network_namespaces()


def _release_network_namespaces() -> None:
    """Unmount the container network namespaces of earlier daemons' run dirs and remove the dirs.

    A dockerd killed with SIGKILL keeps its containers' namespaces bind-mounted under its
    exec-root: each still holds its veth on OWN_BRIDGE and its container IP, and answers a
    new container's connections to that same IP with a TCP reset (measured: published ports
    of healthy containers reset 2 runs in 5 until these were unmounted). Called under the
    data root's lock, so no live daemon of ours owns any of them."""
    base = Path(tempfile.gettempdir())
    mounts = Path("/proc/mounts").read_text().splitlines() if Path("/proc/mounts").exists() else []
    for line in mounts:
        fields = line.split()
        if (
            len(fields) > 1
            and fields[1].startswith(f"{base}/whci-dockerd-")
            and "/netns/" in fields[1]
        ):
            subprocess.run(["umount", fields[1]], capture_output=True, check=False)
    for run_dir in base.glob("whci-dockerd-*"):
        shutil.rmtree(run_dir, ignore_errors=True)


def _stop_leftover_daemon(data_root: Path) -> None:
    try:
        pid = int(LEFTOVER_PID.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if Path(cmdline[0].decode()).name != "dockerd" or str(data_root).encode() not in cmdline:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _ENGINE_STOP_TIMEOUT
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    if b"--exec-root" in cmdline:
        run_dir = Path(cmdline[cmdline.index(b"--exec-root") + 1].decode()).parent
        if run_dir.name.startswith("whci-dockerd-"):
            shutil.rmtree(run_dir, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # SIGTERM lets dockerd stop its containers and containerd cleanly.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=_ENGINE_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def ensure_base_images(engine: Engine) -> None:
    """The local stand-ins for node:20.20.2-bookworm-slim and python:3.11.14-slim-bookworm,
    made from a debootstrap rootfs (no image registry is reachable); skipped when up to date."""
    with _file_lock(CACHE / "base-images.lock", "base images", timeout=1800):
        if engine.image_label(DEBIAN_BASE, RECIPE_LABEL) != ROOTFS_RECIPE:
            _ensure_rootfs_tarball()
            engine.docker(
                "import",
                "--change", f"LABEL {RECIPE_LABEL}={ROOTFS_RECIPE}",
                str(ROOTFS_TARBALL),
                DEBIAN_BASE,
                timeout=600,
            )  # fmt: skip
        _build_base(engine, NODE_BASE, "node.Dockerfile", _node_context)
        _build_base(engine, PYTHON_BASE, "python.Dockerfile", lambda _: None)


@contextlib.contextmanager
def buildah_env(engine: Engine) -> Generator[dict[str, str]]:
    """An environment in which `wormhole-ci build --engine buildah` works daemonless: buildah's
    own storage under CACHE (its layer cache persists between runs; runtime state in /tmp), holding
    copies of the local base images taken from the Docker engine (`docker save` → docker-archive)."""
    root = CACHE / "buildah"
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "storage.conf"
    conf.write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{root / "storage"}"\n'
        f'runroot = "{Path(tempfile.gettempdir()) / "whci-buildah-run"}"\n'
    )
    env = {**engine.env(), "CONTAINERS_STORAGE_CONF": str(conf)}
    with _file_lock(CACHE / "buildah.lock", "buildah storage", timeout=1800):
        for base in (NODE_BASE, PYTHON_BASE):
            wanted = engine.image_label(base, RECIPE_LABEL)
            if _buildah_label(env, base, RECIPE_LABEL) == wanted:
                continue
            with tempfile.TemporaryDirectory(prefix="whci-base-") as scratch:
                archive = Path(scratch) / "base.tar"
                engine.docker("save", "-o", str(archive), base, timeout=600)
                _run_env(["buildah", "pull", "-q", f"docker-archive:{archive}"], env, timeout=600)
        yield env


def _buildah_label(env: Mapping[str, str], image: str, label: str) -> str | None:
    done = subprocess.run(
        ["buildah", "inspect", "--type", "image", image],
        capture_output=True, text=True, env=dict(env), timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    labels = json.loads(done.stdout)["OCIv1"]["config"].get("Labels") or {}
    value = labels.get(label)
    return value if isinstance(value, str) else None


def _run_env(argv: list[str], env: Mapping[str, str], *, timeout: float) -> None:
    done = subprocess.run(
        argv, capture_output=True, text=True, env=dict(env), timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")


def _ensure_rootfs_tarball() -> None:
    if ROOTFS_TARBALL.exists():
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        partial = Path(scratch) / "rootfs.tar"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            timeout=1200,
        )
        _slim(rootfs)
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], timeout=600)
        partial.replace(ROOTFS_TARBALL)


# What the official Debian "slim" images leave out, for packages installed now and later.
_DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
"""


def _slim(rootfs: Path) -> None:
    """Trim the rootfs like debian:bookworm-slim, so image sizes measured on it mean something."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker").write_text(_DPKG_EXCLUDES)
    for folder in ("man", "groff", "info", "lintian", "linda", "locale"):
        for entry in (rootfs / "usr/share" / folder).glob("*"):
            _remove(entry)
    for entry in (rootfs / "usr/share/doc").glob("*/*"):
        if entry.name != "copyright":
            _remove(entry)
    for pattern in ("var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"):
        for entry in rootfs.glob(pattern):
            _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _node_context(context: Path) -> None:
    """The host's Node 20 (a Debian-12 glibc build) with npm and corepack, laid out as in the
    official image."""
    shutil.copy2(HOST_NODE, context / "node")
    for package in ("npm", "corepack"):
        shutil.copytree(
            HOST_NODE_MODULES / package, context / "node_modules" / package, symlinks=True
        )


def _build_base(engine: Engine, name: str, dockerfile: str, fill: Callable[[Path], None]) -> None:
    recipe = (BASE_DIR / dockerfile).read_bytes()
    digest = hashlib.sha256(recipe + ROOTFS_RECIPE.encode()).hexdigest()[:16]
    if engine.image_label(name, RECIPE_LABEL) == digest:
        return
    with tempfile.TemporaryDirectory(prefix="whci-base-") as scratch:
        context = Path(scratch)
        shutil.copy2(BASE_DIR / dockerfile, context / "Dockerfile")
        # Containers here see the internet through a TLS-intercepting proxy.
        shutil.copy2(HOST_CA_BUNDLE, context / "ca-certificates.crt")
        fill(context)
        engine.docker(
            "build",
            "--build-arg",
            f"BASE={DEBIAN_BASE}",
            "--label",
            f"{RECIPE_LABEL}={digest}",
            "--tag",
            name,
            str(context),
            timeout=1200,
        )


def _run(argv: list[str], *, timeout: float) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
