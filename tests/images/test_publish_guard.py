"""The publish tag guard (images/publish.py) over a fake executor: decisions, order, verification."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import pytest

from wormhole_ci.errors import ImageError, ImmutableTagError
from wormhole_ci.images.oci import OCI_INDEX, OCI_MANIFEST
from wormhole_ci.images.publish import Candidate, Published, publish
from wormhole_ci.images.registry import RemoteImage

HOST = "registry.test:5000"
SHA7, VERSION = "4f3c2b1", "v1.2.0"
API = {"linux/amd64": "sha256:" + "a" * 64}
WEB = {"linux/amd64": "sha256:" + "b" * 64}
OTHER = {"linux/amd64": "sha256:" + "e" * 64}
MULTI = {"linux/amd64": "sha256:" + "c" * 64, "linux/arm64": "sha256:" + "d" * 64}


def remote(repository: str, tag: str, configs: Mapping[str, str]) -> RemoteImage:
    """What a registry serves for `configs`; the manifest digest is derived from them."""
    seed = f"{repository}:{tag}:{sorted(configs.items())}".encode()
    return RemoteImage(
        f"{HOST}/{repository}:{tag}",
        "sha256:" + hashlib.sha256(seed).hexdigest(),
        OCI_INDEX if len(configs) > 1 else OCI_MANIFEST,
        dict(configs),
    )


@dataclass
class FakeExecutor:
    """A registry as a dict; images are their {platform: config} maps; every call logged."""

    tags: dict[tuple[str, str], RemoteImage] = field(
        default_factory=dict[tuple[str, str], RemoteImage]
    )
    calls: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    after_push: Callable[[str, str], None] | None = None
    """Runs after each push with (repository, tag): a racing publisher, a rewriting registry."""
    after_resolve: Callable[[str, str], None] | None = None
    """Runs after each resolve has read the tag, with (repository, tag)."""

    def hold(self, repository: str, tag: str, configs: Mapping[str, str]) -> RemoteImage:
        self.tags[repository, tag] = image = remote(repository, tag, configs)
        return image

    async def local_identity(self, image: Mapping[str, str]) -> Mapping[str, str]:
        return image

    async def resolve(self, repository: str, tag: str) -> RemoteImage | None:
        self.calls.append(("resolve", f"{repository}:{tag}"))
        image = self.tags.get((repository, tag))
        if self.after_resolve is not None:
            self.after_resolve(repository, tag)
        return image

    async def push(self, image: Mapping[str, str], reference: str) -> str:
        self.calls.append(("push", reference))
        repository, _, tag = reference.removeprefix(f"{HOST}/").rpartition(":")
        digest = self.hold(repository, tag, image).digest
        if self.after_push is not None:
            self.after_push(repository, tag)
        return digest

    def pushes(self) -> list[str]:
        return [what for call, what in self.calls if call == "push"]


def candidate(service: str, configs: Mapping[str, str]) -> Candidate[Mapping[str, str]]:
    return Candidate(service, HOST, f"acme/wormhole-{service}", configs)


def run(
    executor: FakeExecutor,
    candidates: Sequence[Candidate[Mapping[str, str]]],
    tags: Sequence[str] = (SHA7,),
    said: list[str] | None = None,
) -> list[Published]:
    async def main() -> list[Published]:
        return await publish(candidates, tags, executor, say=None if said is None else said.append)

    return anyio.run(main)


def test_absent_tags_are_pushed_and_reported_as_the_registry_serves_them() -> None:
    executor = FakeExecutor()
    said: list[str] = []
    out = run(executor, [candidate("api", API)], said=said)
    served = executor.tags["acme/wormhole-api", SHA7]
    ref = f"{HOST}/acme/wormhole-api:{SHA7}"
    assert out == [Published("api", f"{ref}@{served.digest}", served.digest, "pushed")]
    repo_tag = f"acme/wormhole-api:{SHA7}"
    # read, push, read back
    assert executor.calls == [("resolve", repo_tag), ("push", ref), ("resolve", repo_tag)]
    assert said == [f"api: pushing {ref}", f"api: {ref}@{served.digest} (pushed)"]


def test_a_tag_holding_this_very_image_is_left_alone() -> None:
    executor = FakeExecutor()
    held = executor.hold("acme/wormhole-api", SHA7, API)
    said: list[str] = []
    (out,) = run(executor, [candidate("api", API)], said=said)
    assert executor.pushes() == []
    assert (out.action, out.digest) == ("unchanged", held.digest)
    assert out.reference == f"{HOST}/acme/wormhole-api:{SHA7}@{held.digest}"
    assert said[0] == f"api: {HOST}/acme/wormhole-api:{SHA7} already holds this image; not pushed"


def test_a_registry_image_with_more_platforms_is_still_this_image() -> None:
    executor = FakeExecutor()
    executor.hold("acme/wormhole-api", SHA7, MULTI)
    (out,) = run(executor, [candidate("api", {"linux/amd64": MULTI["linux/amd64"]})])
    assert out.action == "unchanged" and executor.pushes() == []


def test_any_conflict_refuses_everything_before_the_first_push() -> None:
    executor = FakeExecutor()
    executor.hold("acme/wormhole-web", SHA7, OTHER)
    executor.hold("acme/wormhole-web", VERSION, OTHER)
    # api comes first and its tags are free: still nothing may be pushed
    with pytest.raises(ImmutableTagError) as info:
        run(executor, [candidate("api", API), candidate("web", WEB)], tags=(SHA7, VERSION))
    assert executor.pushes() == []
    assert [c for c, _ in executor.calls] == ["resolve"] * 4  # every tag read, none pushed
    message = str(info.value)
    assert message.startswith("nothing was pushed:\n")
    lines = message.splitlines()[1:]
    assert len(lines) == 2  # every conflicting tag, one line each
    for tag, line in zip((SHA7, VERSION), lines, strict=True):
        assert line.startswith(f"{HOST}/acme/wormhole-web:{tag} already exists with different")
        assert f"local config {WEB['linux/amd64']}, registry config {OTHER['linux/amd64']}" in line
        assert "tags are immutable" in line


def test_a_missing_platform_is_a_conflict() -> None:
    executor = FakeExecutor()
    executor.hold("acme/wormhole-api", SHA7, {"linux/amd64": MULTI["linux/amd64"]})
    with pytest.raises(ImmutableTagError, match="linux/arm64: local config"):
        run(executor, [candidate("api", MULTI)])
    assert executor.pushes() == []


def test_multi_tag_pushes_only_the_tags_that_need_it() -> None:
    executor = FakeExecutor()
    executor.hold("acme/wormhole-api", SHA7, API)  # a previous publish of this commit
    out = run(executor, [candidate("api", API), candidate("web", MULTI)], tags=(SHA7, VERSION))
    assert [(p.service, p.reference.split("@")[0], p.action) for p in out] == [
        ("api", f"{HOST}/acme/wormhole-api:{SHA7}", "unchanged"),
        ("api", f"{HOST}/acme/wormhole-api:{VERSION}", "pushed"),
        ("web", f"{HOST}/acme/wormhole-web:{SHA7}", "pushed"),
        ("web", f"{HOST}/acme/wormhole-web:{VERSION}", "pushed"),
    ]
    assert executor.pushes() == [p.reference.split("@")[0] for p in out[1:]]
    # the guard read all four tags before the first push (then read the unchanged one back)
    first_push = next(i for i, (c, _) in enumerate(executor.calls) if c == "push")
    assert executor.calls[:first_push] == [
        ("resolve", f"acme/wormhole-{s}:{t}") for s in ("api", "web") for t in (SHA7, VERSION)
    ] + [("resolve", f"acme/wormhole-api:{SHA7}")]
    served = {f"{HOST}/{r}:{t}": image.digest for (r, t), image in executor.tags.items()}
    for p in out:
        ref = p.reference.split("@")[0]
        assert p.reference == f"{ref}@{served[ref]}" and p.digest == served[ref]


def test_a_push_the_registry_then_serves_as_other_content_is_refused() -> None:
    executor = FakeExecutor()
    rival: dict[str, RemoteImage] = {}

    def race(repository: str, tag: str) -> None:
        rival["image"] = executor.hold(repository, tag, OTHER)

    executor.after_push = race
    with pytest.raises(ImageError) as info:
        run(executor, [candidate("api", API), candidate("web", WEB)], tags=(SHA7, VERSION))
    assert not isinstance(info.value, ImmutableTagError)
    ref = f"{HOST}/acme/wormhole-api:{SHA7}"
    assert executor.pushes() == [ref]  # stopped at the first tag that failed the check
    message = str(info.value)
    pushed = remote("acme/wormhole-api", SHA7, API).digest
    assert message == (
        f"{ref}: after the push the registry serves {rival['image'].digest} (configs: "
        f"linux/amd64 {OTHER['linux/amd64']}), not this image (expected configs: linux/amd64 "
        f"{API['linux/amd64']}); the engine reported pushing {pushed}. Another publisher "
        "raced us to the tag, or the registry rewrote it; check the registry before deploying"
    )


def test_a_push_the_registry_does_not_serve_at_all_is_refused() -> None:
    executor = FakeExecutor()

    def vanish(repository: str, tag: str) -> None:
        del executor.tags[repository, tag]

    executor.after_push = vanish
    with pytest.raises(
        ImageError, match=r"api:4f3c2b1: after the push the registry serves nothing"
    ):
        run(executor, [candidate("api", API)])


def test_a_tag_left_alone_is_read_back_too() -> None:
    """Between the guard's read and the read-back, an unchanged tag can move as well."""
    executor = FakeExecutor()
    executor.hold("acme/wormhole-api", SHA7, API)
    executor.hold("acme/wormhole-web", SHA7, WEB)

    def move_once(repository: str, tag: str) -> None:
        if repository == "acme/wormhole-api":
            executor.hold(repository, tag, OTHER)  # moved right after the guard read it
            executor.after_resolve = None

    executor.after_resolve = move_once
    with pytest.raises(ImageError, match=r"api:4f3c2b1: after the push the registry serves sha"):
        run(executor, [candidate("api", API), candidate("web", WEB)])
    assert executor.pushes() == []
