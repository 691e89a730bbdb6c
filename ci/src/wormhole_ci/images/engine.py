"""Native image engines: a Docker daemon (BuildKit when the client has it) or daemonless buildah."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
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
DOCKER_CLIENT_VARIABLE = "WORMHOLE_CI_DOCKER"
"""Names the docker client to use (default: `docker` on PATH), e.g. one that has BuildKit."""
# Clients before 23.0 carry BuildKit themselves (DOCKER_BUILDKIT=1); later ones need buildx.
_BUILTIN_BUILDKIT_BEFORE = 23
_RUN_MOUNT = re.compile(r"^\s*RUN\s+(?:--\S+\s+)*--mount=", re.IGNORECASE | re.MULTILINE)
_HUMAN_SIZE = re.compile(r"^\s*([\d.]+)\s*([kmgt]?b)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def needs_buildkit(dockerfile: Path) -> bool:
    """Whether the Dockerfile uses `RUN --mount` (cache/secret mounts), which the classic
    builder rejects."""
    try:
        return _RUN_MOUNT.search(dockerfile.read_text(encoding="utf-8")) is not None
    except OSError:
        return False


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
    """A Docker daemon through the docker CLI (DOCKER_HOST is honoured; WORMHOLE_CI_DOCKER
    picks the client)."""

    name = "docker"

    def __init__(self, version: str, buildkit: str | None, client: str = "docker") -> None:
        self.version = version
        self.buildkit = buildkit
        """How BuildKit is reached: "buildx", "builtin" (a pre-23 client), or None (classic)."""
        self.client = client

    @classmethod
    def detect(cls) -> DockerEngine | None:
        client = os.environ.get(DOCKER_CLIENT_VARIABLE) or shutil.which("docker")
        if client is None or shutil.which(client) is None:
            return None
        try:
            done = subprocess.run(
                [client, "version", "--format", "{{.Client.Version}} {{.Server.Version}}"],
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        versions = done.stdout.split()
        if done.returncode != 0 or len(versions) != 2:
            return None
        client_version, server_version = versions
        buildx = subprocess.run(
            [client, "buildx", "version"],
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
        buildkit: str | None = None
        if buildx.returncode == 0:
            buildkit = "buildx"
        elif _major(client_version) < _BUILTIN_BUILDKIT_BEFORE:
            buildkit = "builtin"
        return cls(server_version, buildkit=buildkit, client=client)

    def describe(self) -> str:
        builder = {
            "buildx": "BuildKit (buildx)",
            "builtin": "BuildKit (built into the client)",
        }.get(self.buildkit or "", "classic builder (no buildx)")
        return f"docker {self.version}, {builder}"

    def _docker(self, *args: str) -> list[str]:
        return [self.client, *args]

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
        if not self.buildkit and needs_buildkit(dockerfile):
            raise ImageError(
                f"{dockerfile} uses `RUN --mount`, which needs BuildKit, and this docker client "
                f"({self.client}) has no buildx: install the buildx plugin (docker-buildx), point "
                f"{DOCKER_CLIENT_VARIABLE} at a client that has BuildKit, use --engine buildah, "
                "or build in Dagger: `dagger call build --service=NAME`"
            )
        with tempfile.TemporaryDirectory(prefix="wormhole-ci-build-") as tmp:
            iidfile = Path(tmp) / "iid"
            argv = self._docker(
                "build", "--iidfile", str(iidfile), "-t", name, "-f", str(dockerfile)
            )
            for key, value in build_args:
                argv += ["--build-arg", f"{key}={value}"]
            if no_cache:
                argv.append("--no-cache")
            # A client >= 23 without buildx refuses BuildKit; the classic builder is then explicit.
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
            self._docker("image", "inspect", "--format", "{{json .}}", name),
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
            self._docker("save", "-o", str(out), name),
            timeout=PUSH_TIMEOUT,
            what=f"docker save {name}",
        )

    def push(self, name: str, reference: str, username: str | None, password: Secret | None) -> str:
        # A private client config per push: the credentials never reach ~/.docker or argv.
        with tempfile.TemporaryDirectory(prefix="wormhole-ci-auth-") as tmp:
            _auth_config(Path(tmp), reference, username, password)
            base = self._docker("--config", tmp)
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
        with tempfile.TemporaryDirectory(prefix="wormhole-ci-build-") as tmp:
            safe = Path(tmp) / "Dockerfile"
            safe.write_text(
                cache_safe_dockerfile(dockerfile.read_text(encoding="utf-8"), build_args),
                encoding="utf-8",
            )
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
                str(safe),
            ]
            for key, value in build_args:
                argv += ["--build-arg", f"{key}={value}"]
            if no_cache:
                argv.append("--no-cache")
            _run(
                [*argv, str(context)],
                timeout=BUILD_TIMEOUT,
                log=log,
                what=f"buildah build of {name}",
            )
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
        return LocalImage(
            name=name,
            config_digest=f"sha256:{image_id}",
            platform=platform,
            size=self._size(image_id),
        )

    @staticmethod
    def _size(image_id: str) -> int:
        """Bytes of the image's layers, as `buildah images` reports them (0 when unknown)."""
        out = _run(
            ["buildah", "images", "--json", image_id],
            timeout=PROBE_TIMEOUT,
            what=f"buildah images {image_id[:12]}",
        )
        for entry in json.loads(out or "[]"):
            # a human-readable decimal size, e.g. "154 MB"
            match = _HUMAN_SIZE.match(str((as_dict(entry) or {}).get("size", "")))
            if match:
                return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
        return 0

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


def _major(version: str) -> int:
    match = re.match(r"\d+", version)
    return int(match.group()) if match else 0


BUILD_ARGS_LABEL = "org.wormhole-ci.final-stage-args"
_FROM = re.compile(r"^\s*FROM\s", re.IGNORECASE)
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


def cache_safe_dockerfile(text: str, build_args: Sequence[tuple[str, str]]) -> str:
    """The Dockerfile with a cache key for buildah's metadata steps.

    buildah's layer cache matches a LABEL or ENV step by its text, so `ENV BUILD_SHA=${GIT_SHA}`
    after a new `--build-arg GIT_SHA=…` is served from the cache with the *previous* commit's
    value (containers/buildah#5501; RUN steps do include the arguments). A LABEL holding a
    digest of the values given to the final stage's ARGs, right after its first such ARG, makes
    every later step miss the cache exactly when one of those values changed.
    """
    lines = text.splitlines()
    final = max((i for i, line in enumerate(lines) if _FROM.match(line)), default=-1)
    if final < 0:
        return text
    given = dict(build_args)
    declared = [m.group(1) for line in lines[final:] if (m := _ARG.match(line))]
    used = sorted(name for name in set(declared) if name in given)
    if not used:
        return text
    digest = hashlib.sha256("\n".join(f"{n}={given[n]}" for n in used).encode()).hexdigest()[:16]
    first = next(
        i for i in range(final, len(lines)) if (m := _ARG.match(lines[i])) and m.group(1) in used
    )
    while first + 1 < len(lines) and lines[first].rstrip().endswith("\\"):
        first += 1  # after the ARG's continuation lines
    lines.insert(first + 1, f"LABEL {BUILD_ARGS_LABEL}={digest}")
    return "\n".join(lines) + "\n"


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
