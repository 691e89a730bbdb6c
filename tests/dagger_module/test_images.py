"""Offline call chains of `build`, `build-all` and `publish`, against a real loopback registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dagger import dag

from tests.dagger_module.conftest import PASSWORD, USER, call
from tests.dagger_module.fake_engine import FakeEngine, Step, decode_id, readable
from tests.images.registry_server import (
    ImageParts,
    Platform,
    RegistryServer,
    make_image,
    push_image,
    push_index,
)
from tests.images.test_identity import oci_layout, write_tar
from wormhole_ci.errors import ImageError, ImmutableTagError, RegistryError
from wormhole_ci.main import WormholeCi

SHA = "4f3c2b1a0918273645546372819a0b1c2d3e4f50"


def builds_in(chain: tuple[Step, ...]) -> list[dict[str, Any]]:
    """The dockerBuild steps (context path + args) of a File/Container chain and its variants."""
    out: list[dict[str, Any]] = []
    context = ""
    for parent, name, args in chain:
        if (parent, name) == ("Directory", "directory"):
            context = args["path"]
        if name == "dockerBuild":
            out.append({"context": context, **args})
        if name == "asTarball":
            for variant in args.get("platformVariants") or []:
                out.extend(builds_in(decode_id(variant)[1]))
    return out


def content_of(build: dict[str, Any]) -> tuple[Platform, str]:
    """What a fake build 'produces': a deterministic image per context, args and platform."""
    platform = build.get("platform") or "linux/amd64"
    os_name, arch = platform.split("/")[:2]
    args = {a["name"]: a["value"] for a in build.get("buildArgs") or []}
    return Platform(os_name, arch), f"{build['context']}:{args.get('GIT_SHA', 'dev')}:{platform}"


def write_archive(chain: tuple[Step, ...], path: Path) -> None:
    images = [make_image(*content_of(b)) for b in builds_in(chain)]
    write_tar(path, oci_layout(images, nested=len(images) > 1))


def pushes_to(registry: RegistryServer) -> Callable[[tuple[Step, ...], dict[str, Any]], str]:
    """A `Container.publish` that really pushes what the chain (and its platform variants)
    builds, the same images `write_archive` writes, to the loopback registry."""

    def publisher(chain: tuple[Step, ...], args: dict[str, Any]) -> str:
        variants = args.get("platformVariants") or []
        builds = builds_in(chain) + [b for v in variants for b in builds_in(decode_id(v)[1])]
        images = [make_image(*content_of(b)) for b in builds]
        return push_to(registry, args["address"], images)

    return publisher


def push_to(registry: RegistryServer, address: str, images: list[ImageParts]) -> str:
    """Push one image (or an index of several platforms) as `host/repository:tag`."""
    repository, _, tag = address.split("/", 1)[1].rpartition(":")
    with registry.client() as client:
        if len(images) == 1:
            return push_image(client, repository, tag, images[0])
        return push_index(client, repository, tag, images)


def module(example: Path) -> WormholeCi:
    return WormholeCi(source=dag.host().directory(str(example)))


def publish_leaves(engine: FakeEngine) -> list[tuple[tuple[Step, ...], dict[str, Any]]]:
    return [(c, a) for c, (_, name, a) in engine.leaves if name == "publish"]


def test_build_one_service_is_its_dockerfile_with_the_revision_args(
    engine: FakeEngine, example: Path
) -> None:
    async def run() -> str:
        ctr = await module(example).build("api", tag=SHA, version_tag="v1.4.0")
        return await ctr.id()

    _, chain = decode_id(call(run))
    (build,) = builds_in(chain)
    assert build["context"] == "api"
    assert build["dockerfile"] == "Dockerfile"
    assert {a["name"]: a["value"] for a in build["buildArgs"]} == {
        "GIT_SHA": SHA,
        "VERSION": "v1.4.0",
    }
    # the context is the service's folder of the (filtered) monorepo source
    assert [(n, a.get("path")) for _, n, a in chain[:3]] == [
        ("host", None),
        ("directory", str(example)),
        ("directory", "api"),
    ]


def test_build_errors_name_the_service_and_the_fix(engine: FakeEngine, example: Path) -> None:
    with pytest.raises(ImageError, match=r"service 'hasura' has no Dockerfile"):
        call(lambda: module(example).build("hasura"))
    with pytest.raises(Exception, match=r"no service named 'nope'"):
        call(lambda: module(example).build("nope"))
    with pytest.raises(ImageError, match=r"supported platforms are linux/amd64, linux/arm64"):
        call(lambda: module(example).build("api", platform="linux/s390x"))


def test_build_all_archives_every_image_with_its_platform_variants(
    engine: FakeEngine, example: Path
) -> None:
    async def run() -> list[str]:
        out = await module(example).build_all(tag=SHA, platforms=["linux/amd64", "linux/arm64"])
        await out.id()
        return []

    call(run)
    ((chain, _),) = [
        (c, s) for c, s in engine.leaves if s[1] == "id" and c and c[-1][1] == "withFile"
    ]
    files = {a["path"]: readable(a["source"]) for _, n, a in chain if n == "withFile"}
    assert sorted(files) == ["api.tar", "runner.tar", "web.tar"]
    for service, steps in files.items():
        names = [n for n, _ in steps]
        assert names[-1] == "asTarball" and "dockerBuild" in names
        (variant,) = steps[-1][1]["platformVariants"]
        platforms = [a["platform"] for n, a in steps if n == "dockerBuild"]
        platforms += [a["platform"] for n, a in variant if n == "dockerBuild"]
        assert platforms == ["linux/amd64", "linux/arm64"], service


def invoke_publish(
    example: Path, registry: RegistryServer, *, tag: str = SHA, **kwargs: Any
) -> str:
    async def run() -> str:
        password = dag.set_secret("registry-password", kwargs.pop("password", PASSWORD))
        result: str = await module(example).publish(
            registry=registry.address,
            tag=tag,
            username=USER,
            password=password,
            **kwargs,
        )
        return result

    return call(run)


def test_publish_pushes_each_image_with_the_secret_and_returns_digests(
    engine: FakeEngine, example: Path, registry: RegistryServer
) -> None:
    engine.file_writer = write_archive
    engine.publisher = pushes_to(registry)
    out = invoke_publish(example, registry, version_tag="v2.0.0")
    lines = out.splitlines()
    assert len(lines) == 6  # three images, two tags each
    for service in ("api", "web", "runner"):
        for tag in (SHA[:7], "v2.0.0"):
            ref = f"{registry.address}/wormhole-{service}:{tag}"
            assert any(
                line.startswith(f"{ref}@sha256:") and line.endswith("(pushed)") for line in lines
            )
    pushes = publish_leaves(engine)
    assert len(pushes) == 6
    for chain, args in pushes:
        (auth,) = [a for _, n, a in chain if n == "withRegistryAuth"]
        assert auth["address"] == registry.address and auth["username"] == USER
        # the password travels only as the Secret made by setSecret, never as a plain value
        assert readable(auth["secret"]) == [
            ("setSecret", {"name": "registry-password", "plaintext": PASSWORD})
        ]
        assert args["address"].startswith(f"{registry.address}/wormhole-")
    for chain, _ in pushes:
        for _, name, args in chain:
            if name != "withRegistryAuth":
                assert PASSWORD not in json.dumps(args)


def test_publish_multi_platform_passes_the_variants(
    engine: FakeEngine, example: Path, registry: RegistryServer
) -> None:
    engine.file_writer = write_archive
    engine.publisher = pushes_to(registry)
    out = invoke_publish(example, registry, tag="55" * 20, platforms=["linux/amd64", "linux/arm64"])
    pushes = publish_leaves(engine)
    assert len(pushes) == 3  # one per image: the variants go along, not as pushes of their own
    assert len(out.splitlines()) == 3 and all(
        line.endswith("(pushed)") for line in out.splitlines()
    )
    for chain, args in pushes:
        (variant,) = args["platformVariants"]
        assert [a["platform"] for n, a in readable(variant) if n == "dockerBuild"] == [
            "linux/arm64"
        ]
        assert [a["platform"] for _, n, a in chain if n == "dockerBuild"] == ["linux/amd64"]


def test_publish_refuses_a_moved_tag_and_pushes_nothing(
    engine: FakeEngine, example: Path, registry: RegistryServer
) -> None:
    engine.file_writer = write_archive
    sha = "99" * 20
    with registry.client() as client:  # someone else's image already holds web's tag
        push_image(client, "wormhole-web", sha[:7], make_image(Platform("linux", "amd64"), "other"))

    async def run() -> str:
        password = dag.set_secret("registry-password", PASSWORD)
        result: str = await module(example).publish(
            registry=registry.address, tag=sha, username=USER, password=password
        )
        return result

    with pytest.raises(ImmutableTagError) as info:
        call(run)
    message = str(info.value)
    assert "nothing was pushed" in message and f"wormhole-web:{sha[:7]}" in message
    assert "tags are immutable" in message and PASSWORD not in message
    assert publish_leaves(engine) == []


def test_publish_refuses_what_the_registry_serves_after_the_push_if_not_this_image(
    engine: FakeEngine, example: Path, registry: RegistryServer
) -> None:
    """The post-push check, in the Dagger runtime. The model: the fake engine's `publish`
    really pushes this image to the loopback registry and answers with its digest, and then,
    before the guard reads the tag back, another image lands on the same tag (what a
    concurrent publisher or a registry rewriting tags does). The push "succeeded", yet the
    tag does not serve this image: publish must fail naming both sides, not report success."""
    engine.file_writer = write_archive
    sha = "66" * 20
    honest = pushes_to(registry)
    other = make_image(Platform("linux", "amd64"), "someone else's build")

    def racing(chain: tuple[Step, ...], args: dict[str, Any]) -> str:
        digest = honest(chain, args)
        push_to(registry, args["address"], [other])
        return digest

    engine.publisher = racing
    with pytest.raises(ImageError) as info:
        invoke_publish(example, registry, tag=sha)
    assert not isinstance(info.value, ImmutableTagError)  # the pre-push guard had let it through
    message = str(info.value)
    ((_, first),) = publish_leaves(engine)  # stopped at the first tag that failed the check
    service = first["address"].split("/")[1].split(":")[0].removeprefix("wormhole-")
    ours = make_image(
        *content_of({"context": service, "buildArgs": [{"name": "GIT_SHA", "value": sha}]})
    )
    assert message.startswith(f"{first['address']}: after the push the registry serves sha256:")
    assert f"linux/amd64 {ours.config_digest}" in message  # expected
    assert f"linux/amd64 {other.config_digest}" in message  # served
    assert "raced" in message and "rewrote" in message and "before deploying" in message
    assert PASSWORD not in message


def test_publish_of_the_same_image_again_is_a_no_op(
    engine: FakeEngine, example: Path, registry: RegistryServer
) -> None:
    engine.file_writer = write_archive
    sha = "77" * 20
    digests: dict[str, str] = {}
    with registry.client() as client:  # what a previous publish of this commit left
        for service in ("api", "web", "runner"):
            image = make_image(
                *content_of({"context": service, "buildArgs": [{"name": "GIT_SHA", "value": sha}]})
            )
            digests[service] = push_image(client, f"wormhole-{service}", sha[:7], image)

    async def run() -> str:
        password = dag.set_secret("registry-password", PASSWORD)
        result: str = await module(example).publish(
            registry=registry.address, tag=sha, username=USER, password=password
        )
        return result

    out = call(run)
    assert publish_leaves(engine) == []
    for service, digest in digests.items():
        assert f"{registry.address}/wormhole-{service}:{sha[:7]}@{digest} (unchanged" in out


def test_publish_with_wrong_credentials_fails_before_building(
    engine: FakeEngine, example: Path, registry: RegistryServer
) -> None:
    engine.file_writer = write_archive
    with pytest.raises(RegistryError) as info:
        invoke_publish(example, registry, password="not-the-password")
    assert f"rejected the credentials for user {USER}" in str(info.value)
    assert "not-the-password" not in str(info.value)
    assert publish_leaves(engine) == []
    assert not any(step[:2] == ("File", "export") for _, step in engine.leaves)  # nothing built


def test_publish_bad_input(engine: FakeEngine, example: Path, registry: RegistryServer) -> None:
    with pytest.raises(ImageError, match="expected a commit SHA"):
        call(lambda: module(example).publish(registry=registry.address, tag="main"))
    with pytest.raises(ImageError, match="pass both --username and --password"):
        call(lambda: module(example).publish(registry=registry.address, tag=SHA, username="x"))
    with pytest.raises(RegistryError, match="unreachable"):
        call(lambda: module(example).publish(registry="127.0.0.1:9", tag=SHA))
    assert publish_leaves(engine) == []
