"""A real registry for the tests (Debian's docker-registry) on loopback, plus raw-API image pushes."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import bcrypt
import httpx
import pytest
import yaml

from wormhole_ci.images.oci import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

REGISTRY_BIN = Path("/usr/bin/docker-registry")
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_START_DEADLINE = 30.0
_STOP_TIMEOUT = 10.0
TOKEN_SERVICE = "wormhole-ci-test-registry"
TOKEN_ISSUER = "wormhole-ci-test-issuer"


class RegistryUnavailable(Exception):
    """The registry binary is missing or would not start; the message says why."""


def free_port() -> int:
    """A TCP port nobody listens on right now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RegistryServer:
    """A running registry: `address` is what the client under test is given."""

    address: str
    username: str | None = None
    password: str | None = None
    log: Path | None = None
    """The registry's log, with one access-log line per HTTP request."""

    def requests_seen(self) -> int:
        """How many HTTP requests the registry has answered (from its access log)."""
        if self.log is None or not self.log.exists():
            return 0
        methods = ("GET", "HEAD", "PUT", "POST", "PATCH")
        lines = self.log.read_text(errors="replace").splitlines()
        return sum(any(f' "{m} /v2' in line for m in methods) for line in lines)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def client(self) -> httpx.Client:
        """An HTTP client for setting up fixtures (pushes), authenticated when the registry is."""
        auth = (self.username, self.password) if self.username and self.password else None
        return httpx.Client(base_url=self.url, auth=auth, timeout=10.0)


# -- the server ---------------------------------------------------------------------------


@contextmanager
def registry_or_skip(
    workdir: Path, *, users: Mapping[str, str] | None = None
) -> Generator[RegistryServer]:
    """`run_registry`, or the test skipped with the reason when docker-registry cannot run
    here (`make engine-deps` installs it)."""
    try:
        with run_registry(workdir, users=users) as server:
            yield server
    except RegistryUnavailable as err:
        pytest.skip(str(err))


@contextmanager
def run_registry(
    workdir: Path,
    *,
    users: Mapping[str, str] | None = None,
    token: TokenServer | None = None,
) -> Generator[RegistryServer]:
    """docker-registry on 127.0.0.1:<free port>, storage in `workdir`; stopped on exit.

    `users` turns on htpasswd (Basic) auth; `token` turns on Bearer token auth against
    that token server. The first user, if any, is the one `RegistryServer.client()` uses.
    """
    if not REGISTRY_BIN.exists():
        raise RegistryUnavailable(
            f"{REGISTRY_BIN} is missing: apt-get install docker-registry (`make test` does)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    auth: dict[str, object] = {}
    if users:
        htpasswd = workdir / "htpasswd"
        # bcrypt is the only hash docker-registry accepts; cost 5 keeps the tests fast.
        htpasswd.write_text(
            "".join(
                f"{name}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(5)).decode()}\n"
                for name, pw in users.items()
            )
        )
        auth = {"htpasswd": {"realm": "wormhole-ci-test", "path": str(htpasswd)}}
    elif token is not None:
        auth = {
            "token": {
                "realm": token.realm,
                "service": TOKEN_SERVICE,
                "issuer": TOKEN_ISSUER,
                "rootcertbundle": str(token.certificate),
            }
        }
    first = next(iter(users.items())) if users else (None, None)
    # The port is free when probed but could be taken before the registry binds it:
    # a registry that exits at once is retried on another port.
    failure = ""
    for _ in range(3):
        port = free_port()
        config = {
            "version": 0.1,
            # the access log lets tests count requests (e.g. none during a dry run)
            "log": {"level": "error", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(workdir / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": "wormhole-ci-test"},
            **({"auth": auth} if auth else {}),
        }
        config_path = workdir / "config.yml"
        config_path.write_text(yaml.safe_dump(config))
        log_path = workdir / "registry.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(REGISTRY_BIN), "serve", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
            )
        try:
            if _wait_ready(process, f"http://127.0.0.1:{port}"):
                yield RegistryServer(f"127.0.0.1:{port}", first[0], first[1], log_path)
                return
            failure = log_path.read_text(errors="replace")[-2000:]
        finally:
            _stop(process)
    raise RegistryUnavailable(f"docker-registry did not start:\n{failure}")


def _wait_ready(process: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + _START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            # Any answer (200, or 401 with auth on) means the API is being served.
            httpx.get(f"{url}/v2/", timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return True
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=_STOP_TIMEOUT)


# -- a Bearer token service ----------------------------------------------------------------


@dataclass
class TokenServer:
    """A Docker-style token service: Basic credentials in, an RS256 JWT the registry trusts out.

    `grants` maps a user to the actions it gets on every repository (no entry: none, so
    the registry answers `insufficient_scope`); anonymous requests are refused with 401.
    """

    realm: str
    certificate: Path
    key: Path
    der: bytes
    """The certificate in DER: the token's `x5c` header, which the registry checks against
    its rootcertbundle."""
    users: dict[str, str]
    grants: dict[str, list[str]]
    requests: list[dict[str, str]] = field(default_factory=list[dict[str, str]])

    def issue(self, user: str, scope: str) -> str:
        access: list[dict[str, object]] = []
        parts = scope.split(":")
        if len(parts) == 3 and parts[0] == "repository":
            granted = [a for a in parts[2].split(",") if a in self.grants.get(user, [])]
            access.append({"type": "repository", "name": parts[1], "actions": granted})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.der).decode()]}
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": user,
            "aud": TOKEN_SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": f"{user}-{now}-{len(self.requests)}",
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@contextmanager
def run_token_server(
    workdir: Path, users: dict[str, str], grants: dict[str, list[str]]
) -> Generator[TokenServer]:
    """A token service on 127.0.0.1 with a fresh self-signed RSA key (openssl CLI)."""
    if shutil.which("openssl") is None:
        raise RegistryUnavailable("openssl is not installed: it signs the test tokens")
    workdir.mkdir(parents=True, exist_ok=True)
    key, cert = workdir / "token.key", workdir / "token.crt"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=wormhole-ci-test-token", "-keyout", str(key), "-out", str(cert),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )  # fmt: skip
    der = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-outform", "DER"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    state: dict[str, TokenServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server = state["server"]
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            server.requests.append(query)
            user = _basic_user(self.headers.get("Authorization", ""), server.users)
            if user is None:
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"details":"incorrect username or password"}')
                return
            body = json.dumps({"token": server.issue(user, query.get("scope", ""))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # keep pytest's output clean

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = int(httpd.server_address[1])
    server = TokenServer(f"http://127.0.0.1:{port}/token", cert, key, der, users, grants)
    state["server"] = server
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _basic_user(header: str, users: Mapping[str, str]) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return name if users.get(name) == password else None


# -- pushing images over the raw API ----------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def key(self) -> str:
        parts = [self.os, self.architecture, *([self.variant] if self.variant else [])]
        return "/".join(parts)

    def as_json(self) -> dict[str, str]:
        out = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class ImageParts:
    """One platform's image: config, one layer uncompressed and gzipped, and their digests."""

    platform: Platform
    config: bytes
    layer_tar: bytes
    layer_gz: bytes

    @property
    def config_digest(self) -> str:
        return sha256(self.config)


def make_image(platform: Platform, content: str) -> ImageParts:
    """A tiny but well-formed image whose single layer holds /hello.txt = `content`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = content.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    layer_tar = buffer.getvalue()
    layer_gz = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {
            **platform.as_json(),
            "created": "1970-01-01T00:00:00Z",
            "config": {"Cmd": ["/hello"], "Labels": {"content": content}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "test"}],
        },
        sort_keys=True,
    ).encode()
    return ImageParts(platform, config, layer_tar, layer_gz)


def manifest_for(image: ImageParts, *, docker: bool = False) -> tuple[bytes, str]:
    """The image manifest (pushed form: gzipped layer) and its media type."""
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "digest": image.config_digest,
            "size": len(image.config),
        },
        "layers": [
            {
                "mediaType": DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP,
                "digest": sha256(image.layer_gz),
                "size": len(image.layer_gz),
            }
        ],
    }
    return json.dumps(document, indent=3).encode(), media_type


def push_blob(client: httpx.Client, repository: str, data: bytes) -> str:
    """Upload a blob (POST then PUT, the spec's monolithic upload); its digest."""
    digest = sha256(data)
    started = client.post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    # The upload URL carries the registry's state in its query: add the digest to it.
    location = httpx.URL(started.headers["Location"]).copy_merge_params({"digest": digest})
    done = client.put(
        location,
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return digest


def push_manifest(
    client: httpx.Client, repository: str, reference: str, body: bytes, media_type: str
) -> str:
    response = client.put(
        f"/v2/{repository}/manifests/{reference}",
        content=body,
        headers={"Content-Type": media_type},
    )
    assert response.status_code == 201, response.text
    return sha256(body)


def push_image(
    client: httpx.Client, repository: str, tag: str, image: ImageParts, *, docker: bool = False
) -> str:
    """Push a single-platform image under `tag`; the manifest digest."""
    push_blob(client, repository, image.config)
    push_blob(client, repository, image.layer_gz)
    body, media_type = manifest_for(image, docker=docker)
    return push_manifest(client, repository, tag, body, media_type)


def push_index(
    client: httpx.Client,
    repository: str,
    tag: str,
    images: list[ImageParts],
    *,
    attestation: bool = False,
) -> str:
    """Push a multi-platform OCI index under `tag` (children by digest); the index digest.

    With `attestation`, a BuildKit-style `unknown/unknown` attestation manifest is listed too.
    """
    entries: list[dict[str, object]] = []
    for image in images:
        push_blob(client, repository, image.config)
        push_blob(client, repository, image.layer_gz)
        body, media_type = manifest_for(image)
        digest = push_manifest(client, repository, sha256(body), body, media_type)
        entries.append(
            {
                "mediaType": media_type,
                "digest": digest,
                "size": len(body),
                "platform": image.platform.as_json(),
            }
        )
    if attestation:
        statement = make_image(Platform("unknown", "unknown"), "in-toto statement")
        push_blob(client, repository, statement.config)
        push_blob(client, repository, statement.layer_gz)
        body, media_type = manifest_for(statement)
        digest = push_manifest(client, repository, sha256(body), body, media_type)
        entries.append(
            {
                "mediaType": media_type,
                "digest": digest,
                "size": len(body),
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": str(entries[0]["digest"]),
                },
            }
        )
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=3
    ).encode()
    return push_manifest(client, repository, tag, index, OCI_INDEX)
