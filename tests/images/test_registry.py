"""The registry client against a real docker-registry on loopback (and a mock only for 5xx)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.images.registry_server import (
    Platform,
    RegistryServer,
    RegistryUnavailable,
    TokenServer,
    free_port,
    make_image,
    manifest_for,
    push_image,
    push_index,
    registry_or_skip,
    run_registry,
    run_token_server,
    sha256,
)
from wormhole_ci.errors import RegistryError
from wormhole_ci.images.oci import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from wormhole_ci.images.registry import Registry

PASSWORD = "correct-horse-battery-staple"
WRONG = "tr0ub4dor-and-3"
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry_or_skip(tmp_path_factory.mktemp("registry-open")) as server:
        yield server


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry_or_skip(
        tmp_path_factory.mktemp("registry-basic"), users={"alice": PASSWORD}
    ) as server:
        yield server


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RegistryServer, TokenServer]]:
    workdir = tmp_path_factory.mktemp("registry-token")
    users = {"alice": PASSWORD, "bob": PASSWORD}
    try:
        with (
            run_token_server(workdir / "token", users, {"alice": ["pull", "push"]}) as tokens,
            run_registry(workdir / "registry", token=tokens) as server,
        ):
            yield server, tokens
    except RegistryUnavailable as err:
        pytest.skip(str(err))


def served_digest(server: RegistryServer, repository: str, digest: str, media_type: str) -> str:
    """The digest of the bytes the registry serves for `digest` (fetched independently)."""
    with server.client() as client:
        response = client.get(
            f"/v2/{repository}/manifests/{digest}", headers={"Accept": media_type}
        )
    assert response.status_code == 200, response.text
    return sha256(response.content)


# -- resolve -------------------------------------------------------------------------------


def test_resolve_single_oci_manifest(open_registry: RegistryServer) -> None:
    image = make_image(AMD64, "single")
    with open_registry.client() as client:
        pushed = push_image(client, "wormhole/api", "abc1234", image)

    with Registry(open_registry.address) as registry:
        remote = registry.resolve("wormhole/api", "abc1234")

    assert remote is not None
    assert remote.reference == f"{open_registry.address}/wormhole/api:abc1234"
    assert remote.digest == pushed
    assert remote.digest == served_digest(open_registry, "wormhole/api", pushed, OCI_MANIFEST)
    assert remote.media_type == OCI_MANIFEST
    assert dict(remote.configs) == {"linux/amd64": image.config_digest}


def test_resolve_docker_manifest_reads_platform_from_config(
    open_registry: RegistryServer,
) -> None:
    image = make_image(ARM64, "docker-type")
    with open_registry.client() as client:
        pushed = push_image(client, "wormhole/web", "v1.2.0", image, docker=True)

    with Registry(open_registry.address) as registry:
        remote = registry.resolve("wormhole/web", "v1.2.0")

    assert remote is not None
    assert remote.digest == pushed
    assert remote.media_type == DOCKER_MANIFEST
    # arm64's v8 variant is normalised away, as containerd does.
    assert dict(remote.configs) == {"linux/arm64": image.config_digest}


def test_resolve_index_lists_each_platform_and_skips_attestations(
    open_registry: RegistryServer,
) -> None:
    amd, arm = make_image(AMD64, "multi"), make_image(ARM64, "multi")
    with open_registry.client() as client:
        pushed = push_index(client, "wormhole/runner", "def5678", [amd, arm], attestation=True)

    with Registry(open_registry.address) as registry:
        remote = registry.resolve("wormhole/runner", "def5678")

    assert remote is not None
    assert remote.digest == pushed
    assert remote.digest == served_digest(open_registry, "wormhole/runner", pushed, OCI_INDEX)
    assert remote.media_type == OCI_INDEX
    assert dict(remote.configs) == {
        "linux/amd64": amd.config_digest,
        "linux/arm64": arm.config_digest,
    }


def test_absent_tag_and_absent_repository_are_none(open_registry: RegistryServer) -> None:
    with open_registry.client() as client:
        push_image(client, "wormhole/present", "one", make_image(AMD64, "present"))

    with Registry(open_registry.address) as registry:
        assert registry.resolve("wormhole/present", "two") is None
        assert registry.resolve("wormhole/never-pushed", "one") is None
        registry.ping()


def test_invalid_names_are_refused_before_any_request() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request {request.url}")

    with Registry("127.0.0.1:1", transport=httpx.MockTransport(refuse)) as registry:
        with pytest.raises(RegistryError, match="invalid repository name 'Wormhole/API'"):
            registry.resolve("Wormhole/API", "abc")
        with pytest.raises(RegistryError, match=r"invalid repository name '\.\./etc'"):
            registry.resolve("../etc", "abc")
        with pytest.raises(RegistryError, match="invalid tag '-x'"):
            registry.resolve("wormhole/api", "-x")


# -- Basic auth ------------------------------------------------------------------------------


def test_basic_auth_credentials_accepted(basic_registry: RegistryServer) -> None:
    image = make_image(AMD64, "private")
    with basic_registry.client() as client:
        pushed = push_image(client, "private/api", "abc1234", image)

    with Registry(basic_registry.address, "alice", PASSWORD) as registry:
        registry.ping()
        remote = registry.resolve("private/api", "abc1234")
        assert registry.resolve("private/api", "nope") is None

    assert remote is not None
    assert remote.digest == pushed
    assert dict(remote.configs) == {"linux/amd64": image.config_digest}


def test_basic_auth_wrong_password_names_the_user_not_the_password(
    basic_registry: RegistryServer,
) -> None:
    with Registry(basic_registry.address, "alice", WRONG) as registry:
        with pytest.raises(RegistryError) as caught:
            registry.ping()
        with pytest.raises(RegistryError) as caught_resolve:
            registry.resolve("private/api", "abc1234")

    for err in (caught.value, caught_resolve.value):
        message = str(err)
        assert message == (
            f"registry {basic_registry.address} rejected the credentials for user alice: "
            "check --username and the password secret"
        )
        assert WRONG not in message
    assert WRONG not in repr(registry)


def test_basic_auth_without_credentials_says_to_pass_them(basic_registry: RegistryServer) -> None:
    with (
        Registry(basic_registry.address) as registry,
        pytest.raises(RegistryError, match="requires authentication: pass --username"),
    ):
        registry.ping()


# -- Bearer tokens -------------------------------------------------------------------------


def test_bearer_token_flow(token_registry: tuple[RegistryServer, TokenServer]) -> None:
    server, tokens = token_registry
    amd, arm = make_image(AMD64, "token"), make_image(ARM64, "token")
    # Set-up pushes with alice's token for push scope, fetched like any client would.
    token = tokens.issue("alice", "repository:team/app:pull,push")
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as client:
        pushed = push_index(client, "team/app", "abc1234", [amd, arm])

    with Registry(server.address, "alice", PASSWORD) as registry:
        registry.ping()
        remote = registry.resolve("team/app", "abc1234")
        assert registry.resolve("team/app", "missing") is None

    assert remote is not None
    assert remote.digest == pushed
    assert dict(remote.configs) == {
        "linux/amd64": amd.config_digest,
        "linux/arm64": arm.config_digest,
    }
    scopes = {r.get("scope") for r in tokens.requests}
    assert "repository:team/app:pull" in scopes
    assert all(r.get("service") == "wormhole-ci-test-registry" for r in tokens.requests)


def test_bearer_wrong_password(token_registry: tuple[RegistryServer, TokenServer]) -> None:
    server, _ = token_registry
    with (
        Registry(server.address, "alice", WRONG) as registry,
        pytest.raises(RegistryError) as caught,
    ):
        registry.resolve("team/app", "abc1234")
    assert "rejected the credentials for user alice" in str(caught.value)
    assert WRONG not in str(caught.value)


def test_bearer_anonymous_refused(token_registry: tuple[RegistryServer, TokenServer]) -> None:
    server, _ = token_registry
    with (
        Registry(server.address) as registry,
        pytest.raises(RegistryError, match="requires authentication"),
    ):
        registry.resolve("team/app", "abc1234")


def test_bearer_valid_user_without_permission(
    token_registry: tuple[RegistryServer, TokenServer],
) -> None:
    server, _ = token_registry
    with Registry(server.address, "bob", PASSWORD) as registry:
        registry.ping()  # bob's credentials are fine
        with pytest.raises(RegistryError) as caught:
            registry.resolve("team/app", "abc1234")
    message = str(caught.value)
    assert "denied user bob access to repository team/app" in message
    assert "rejected the credentials" not in message


# -- failures --------------------------------------------------------------------------------


def test_unreachable_port_fails_fast() -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with Registry(address, deadline=30) as registry, pytest.raises(RegistryError) as caught:
        registry.ping()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith(f"registry {address} is unreachable (")
    assert message.endswith("): check the address and that the registry is running")


def test_5xx_is_retried_then_fails_within_the_deadline() -> None:
    calls: list[str] = []

    def always_503(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE"}]})

    transport = httpx.MockTransport(always_503)
    started = time.monotonic()
    with (
        Registry("127.0.0.1:5000", transport=transport, deadline=1.0, backoff=0.05) as registry,
        pytest.raises(RegistryError) as caught,
    ):
        registry.resolve("wormhole/api", "abc1234")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert len(calls) >= 3
    assert "kept failing on GET /v2/wormhole/api/manifests/abc1234 (HTTP 503)" in str(caught.value)


def test_transient_5xx_then_success() -> None:
    image = make_image(AMD64, "flaky")
    answers = iter([502, 500])

    def flaky(request: httpx.Request) -> httpx.Response:
        status = next(answers, 200)
        if status != 200:
            return httpx.Response(status)
        if "/blobs/" in request.url.path:
            return httpx.Response(200, content=image.config)
        body, media_type = manifest_for(image)
        return httpx.Response(200, content=body, headers={"Content-Type": media_type})

    with Registry("127.0.0.1:5000", transport=httpx.MockTransport(flaky), backoff=0.01) as reg:
        remote = reg.resolve("wormhole/api", "abc1234")
    assert remote is not None
    assert dict(remote.configs) == {"linux/amd64": image.config_digest}


def test_403_is_a_permission_error() -> None:
    def forbidden(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "denied"}]})

    with Registry(
        "127.0.0.1:5000", "alice", PASSWORD, transport=httpx.MockTransport(forbidden)
    ) as registry:
        with pytest.raises(RegistryError) as on_resolve:
            registry.resolve("wormhole/api", "abc1234")
        with pytest.raises(RegistryError) as on_ping:
            registry.ping()
    assert str(on_resolve.value) == (
        "registry 127.0.0.1:5000 denied user alice access to repository wormhole/api: grant "
        "that user pull/push permission on the repository, or check the repository name"
    )
    assert "refused user alice (HTTP 403 on GET /v2/)" in str(on_ping.value)


# -- addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "base_url", "host"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("localhost:5000", "http://localhost:5000", "localhost:5000"),
        ("[::1]:5000", "http://[::1]:5000", "[::1]:5000"),
        ("registry.example.com", "https://registry.example.com", "registry.example.com"),
        ("10.0.0.5:5000", "https://10.0.0.5:5000", "10.0.0.5:5000"),
        ("http://10.0.0.5:5000/", "http://10.0.0.5:5000", "10.0.0.5:5000"),
        ("https://127.0.0.1:5443", "https://127.0.0.1:5443", "127.0.0.1:5443"),
    ],
)
def test_address_scheme(address: str, base_url: str, host: str) -> None:
    with Registry(address) as registry:
        assert (registry.base_url, registry.host) == (base_url, host)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("", "empty"),
        ("registry.example.com/team", "has a path"),
        ("alice:pw@registry.example.com", "credentials"),
        ("registry example", "spaces"),
    ],
)
def test_invalid_address(address: str, why: str) -> None:
    with pytest.raises(RegistryError, match=f"invalid registry address .*{why}"):
        Registry(address)


def test_password_without_username_is_refused() -> None:
    with pytest.raises(RegistryError, match="a username and a password go together") as caught:
        Registry("127.0.0.1:5000", None, PASSWORD)
    assert PASSWORD not in str(caught.value)
