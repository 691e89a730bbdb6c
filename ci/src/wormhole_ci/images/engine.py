"""Native image engines: a Docker daemon (BuildKit when buildx is there) or daemonless buildah."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wormhole_ci.errors import ImageError
from wormhole_ci.jsonish import as_dict
from wormhole_ci.secretref import Secret, redact

PROBE_TIMEOUT = 20.0
BUILD_TIMEOUT = 1800.0
PUSH_TIMEOUT = 900.0
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class LocalImage:
    """An image in the local engine, identified by its config digest (the image ID)."""

    name: str
    config_digest: str
    platform: str
    size: int


class Engine(Protocol):
    """What `build` and `publish` need from an image engine."""

    name: str

    def describe(self) -> str: ...

    def build(
        self,
        context: Path,
        dockerfile: Path,
        name: str,
        build_args: Sequence[tuple[str, str]],
        log: Path,
        *,
        no_cache: bool = False,
    ) -> LocalImage: ...

    def inspect(self, name: str) -> LocalImage: ...

    def save(self, name: str, out: Path) -> None: ...

    def push(self, name: str, reference: str, username: str | None, password: Secret | None) -> str:
        """Push `name` as `reference`; returns the engine's output (secrets redacted)."""
        ...


def _run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float,
    log: Path | None = None,
    what: str,
    secrets: Sequence[Secret | None] = (),
) -> str:
    """Run a tool; its output goes to `log` (if any) and comes back, secrets redacted."""
    try:
        done = subprocess.run(
            list(argv),
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ImageError(f"{what}: no result after {timeout:.0f} s; gave up") from None
    except FileNotFoundError:
        raise ImageError(f"{what}: {argv[0]} is not installed") from None
    output = redact(done.stdout, *secrets)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output, encoding="utf-8")
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-15:])
        where = f" (full log: {log})" if log else ""
        raise ImageError(f"{what} failed (exit {done.returncode}){where}:\n{tail}")
    return output


def _auth_config(
    directory: Path, reference: str, username: str | None, password: Secret | None
) -> Path:
    """A Docker-format auth file for the reference's registry, readable only by us."""
    host = reference.split("/", 1)[0]
    auths: dict[str, object] = {}
    if username and password:
        token = base64.b64encode(f"{username}:{password.reveal()}".encode()).decode()
        auths[host] = {"auth": token}
    path = directory / "config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"auths": auths}, handle)
    return path


class DockerEngine:
    """A Docker daemon through the docker CLI (DOCKER_HOST is honoured)."""

    name = "docker"

    def __init__(self, version: str, buildkit: bool) -> None:
        self.version = version
        self.buildkit = buildkit

    @classmethod
    def detect(cls) -> DockerEngine | None:
        if shutil.which("docker") is None:
            return None
        try:
            done = subprocess.run(
                ["docker", "version", "--format", "{{.Server.Version}}"],
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0 or not done.stdout.strip():
            return None
        buildx = subprocess.run(
            ["docker", "buildx", "version"],
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
        return cls(done.stdout.strip(), buildkit=buildx.returncode == 0)

    def describe(self) -> str:
        builder = "BuildKit" if self.buildkit else "classic builder (no buildx)"
        return f"docker {self.version}, {builder}"

    def build(
        self,
        context: Path,
        dockerfile: Path,
        name: str,
        build_args: Sequence[tuple[str, str]],
        log: Path,
        *,
        no_cache: bool = False,
    ) -> LocalImage:
        with tempfile.TemporaryDirectory(prefix="wormhole-ci-build-") as tmp:
            iidfile = Path(tmp) / "iid"
            argv = ["docker", "build", "--iidfile", str(iidfile), "-t", name, "-f", str(dockerfile)]
            for key, value in build_args:
                argv += ["--build-arg", f"{key}={value}"]
            if no_cache:
                argv.append("--no-cache")
            # Without buildx the client refuses BuildKit; the classic builder is then explicit.
            env = {"DOCKER_BUILDKIT": "1" if self.buildkit else "0"}
            if self.buildkit:
                argv += ["--progress", "plain"]
            _run(
                [*argv, str(context)],
                env=env,
                timeout=BUILD_TIMEOUT,
                log=log,
                what=f"docker build of {name}",
            )
        return self.inspect(name)

    def inspect(self, name: str) -> LocalImage:
        out = _run(
            ["docker", "image", "inspect", "--format", "{{json .}}", name],
            timeout=PROBE_TIMEOUT,
            what=f"docker image inspect {name}",
        )
        info = as_dict(json.loads(out)) or {}
        platform = f"{info.get('Os', 'linux')}/{info.get('Architecture', 'amd64')}"
        if info.get("Variant"):
            platform += f"/{info['Variant']}"
        size = info.get("Size", 0)
        return LocalImage(
            name=name,
            config_digest=str(info.get("Id", "")),
            platform=platform,
            size=size if isinstance(size, int) else 0,
        )

    def save(self, name: str, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        _run(
            ["docker", "save", "-o", str(out), name],
            timeout=PUSH_TIMEOUT,
            what=f"docker save {name}",
        )

    def push(self, name: str, reference: str, username: str | None, password: Secret | None) -> str:
        # A private client config per push: the credentials never reach ~/.docker or argv.
        with tempfile.TemporaryDirectory(prefix="wormhole-ci-auth-") as tmp:
            _auth_config(Path(tmp), reference, username, password)
            base = ["docker", "--config", tmp]
            _run([*base, "tag", name, reference], timeout=PROBE_TIMEOUT, what="docker tag")
            try:
                return _run(
                    [*base, "push", reference],
                    timeout=PUSH_TIMEOUT,
                    what=f"docker push {reference}",
                    secrets=(password,),
                )
            finally:
                # the registry-qualified name is only a vehicle for the push
                subprocess.run(
                    [*base, "image", "rm", "--no-prune", reference],
                    capture_output=True,
                    timeout=PROBE_TIMEOUT,
                    check=False,
                )


class BuildahEngine:
    """Daemonless buildah (chroot isolation, layer cache in its own storage)."""

    name = "buildah"

    def __init__(self, version: str) -> None:
        self.version = version

    @classmethod
    def detect(cls) -> BuildahEngine | None:
        if shutil.which("buildah") is None:
            return None
        done = subprocess.run(
            ["buildah", "version", "--json"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            return None
        info = as_dict(json.loads(done.stdout or "{}")) or {}
        return cls(str(info.get("version", "?")))

    def describe(self) -> str:
        return f"buildah {self.version}, chroot isolation"

    def build(
        self,
        context: Path,
        dockerfile: Path,
        name: str,
        build_args: Sequence[tuple[str, str]],
        log: Path,
        *,
        no_cache: bool = False,
    ) -> LocalImage:
        argv = [
            "buildah",
            "build",
            "--isolation",
            "chroot",
            "--layers",
            "--format",
            "docker",  # HEALTHCHECK is a Docker-format field; OCI configs drop it
            "-t",
            name,
            "-f",
            str(dockerfile),
        ]
        for key, value in build_args:
            argv += ["--build-arg", f"{key}={value}"]
        if no_cache:
            argv.append("--no-cache")
        _run([*argv, str(context)], timeout=BUILD_TIMEOUT, log=log, what=f"buildah build of {name}")
        return self.inspect(name)

    def inspect(self, name: str) -> LocalImage:
        out = _run(
            ["buildah", "inspect", "--type", "image", name],
            timeout=PROBE_TIMEOUT,
            what=f"buildah inspect {name}",
        )
        info = as_dict(json.loads(out)) or {}
        oci = as_dict(info.get("OCIv1")) or {}
        platform = f"{oci.get('os', 'linux')}/{oci.get('architecture', 'amd64')}"
        # buildah's image ID is the hex digest of the image config
        image_id = str(info.get("FromImageID") or "")
        return LocalImage(name=name, config_digest=f"sha256:{image_id}", platform=platform, size=0)

    def save(self, name: str, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        _run(
            ["buildah", "push", name, f"docker-archive:{out}:{name}"],
            timeout=PUSH_TIMEOUT,
            what=f"buildah push {name} to {out}",
        )

    def push(self, name: str, reference: str, username: str | None, password: Secret | None) -> str:
        host = reference.split("/", 1)[0]
        with tempfile.TemporaryDirectory(prefix="wormhole-ci-auth-") as tmp:
            auth = _auth_config(Path(tmp), reference, username, password)
            argv = ["buildah", "push", "--authfile", str(auth)]
            if host.split(":")[0] in _LOOPBACK or host.startswith("[::1]"):
                argv.append("--tls-verify=false")  # a loopback registry speaks plain HTTP
            return _run(
                [*argv, name, f"docker://{reference}"],
                timeout=PUSH_TIMEOUT,
                what=f"buildah push {reference}",
                secrets=(password,),
            )


def detect_engine(preference: str = "auto") -> Engine:
    """The engine to use: `docker`, `buildah`, or the first that works (`auto`)."""
    started = time.monotonic()
    order = ("docker", "buildah") if preference == "auto" else (preference,)
    for name in order:
        engine: Engine | None = (
            DockerEngine.detect() if name == "docker" else BuildahEngine.detect()
        )
        if engine is not None:
            return engine
    waited = time.monotonic() - started
    wanted = "a Docker daemon or buildah" if preference == "auto" else preference
    raise ImageError(
        f"no image engine: {wanted} is needed to build natively (checked in {waited:.1f} s). "
        "Start a Docker daemon (or set DOCKER_HOST), or install buildah "
        "(apt-get install buildah), or build in Dagger: `dagger call build --service=NAME`"
    )
