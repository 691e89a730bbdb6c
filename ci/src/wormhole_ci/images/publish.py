"""The publish tag guard, written once for both runtimes (no Dagger runtime required).

For every image and every tag, the registry is asked what the tag names *before* anything
is pushed: a tag naming other content refuses the whole publish (nothing pushed), a tag
naming this very image is left alone, any other tag is pushed. After each push (and for
each tag left alone) the registry is asked again and must serve this image. The runtime
supplies only a `PublishExecutor`: how to read an image's identity, resolve a tag and push.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

from wormhole_ci.errors import ImageError, ImmutableTagError
from wormhole_ci.images.identity import Verdict, compare

if TYPE_CHECKING:
    # a type only: the guard never needs the registry client (httpx) itself
    from wormhole_ci.images.registry import RemoteImage

Image = TypeVar("Image")
"""The runtime's handle on a built image (a local engine name, Dagger containers, …)."""
Image_contra = TypeVar("Image_contra", contravariant=True)
Action = Literal["pushed", "unchanged"]
Say = Callable[[str], None]


class PublishExecutor(Protocol[Image_contra]):
    """What a runtime does for the guard; every decision is the guard's (arguments are
    positional, so an implementation names them as it likes)."""

    async def local_identity(self, image: Image_contra, /) -> Mapping[str, str]:
        """{platform (`os/arch[/variant]`): config digest} of what `push` would push."""
        ...

    async def resolve(self, repository: str, tag: str, /) -> RemoteImage | None:
        """What `repository:tag` names in the registry now; None when it does not exist."""
        ...

    async def push(self, image: Image_contra, reference: str, /) -> str | None:
        """Push `image` as `reference` (`host/repository:tag`); the manifest digest the
        engine reports, when it reports one (informational: identity is the configs)."""
        ...


@dataclass(frozen=True)
class Candidate(Generic[Image]):
    """One image to publish under every tag."""

    service: str
    host: str
    """`host[:port]` of the registry."""
    repository: str
    """The repository path in the registry, namespace included (`acme/wormhole-api`)."""
    image: Image

    def reference(self, tag: str) -> str:
        return f"{self.host}/{self.repository}:{tag}"


@dataclass(frozen=True)
class Published:
    service: str
    reference: str
    """`registry/repo:tag@sha256:…` as the registry serves it."""
    digest: str
    """The manifest (or index) digest the registry serves under the tag."""
    action: Action
    """`pushed`, or `unchanged` (the tag already held this very image)."""


@dataclass(frozen=True)
class _Planned(Generic[Image]):
    candidate: Candidate[Image]
    tag: str
    local: Mapping[str, str]
    verdict: Verdict


async def publish(
    candidates: Sequence[Candidate[Image]],
    tags: Sequence[str],
    executor: PublishExecutor[Image],
    *,
    say: Say | None = None,
) -> list[Published]:
    """Publish every candidate under every tag, or nothing when any tag would move.

    Raises `ImmutableTagError` listing every conflicting tag before the first push, and
    `ImageError` when, after a push, the registry serves something other than this image.
    """
    tell = say or _quiet
    plan: list[_Planned[Image]] = []
    for candidate in candidates:
        local = dict(await executor.local_identity(candidate.image))
        for tag in tags:
            remote = await executor.resolve(candidate.repository, tag)
            verdict = compare(local, remote, reference=candidate.reference(tag))
            plan.append(_Planned(candidate, tag, local, verdict))
    conflicts = [p.verdict.message for p in plan if p.verdict.conflict]
    if conflicts:
        raise ImmutableTagError("nothing was pushed:\n" + "\n".join(conflicts))
    published: list[Published] = []
    for step in plan:
        candidate, ref = step.candidate, step.candidate.reference(step.tag)
        pushed: str | None = None
        action: Action
        if step.verdict.same:
            tell(f"{candidate.service}: {ref} already holds this image; not pushed")
            action = "unchanged"
        else:
            tell(f"{candidate.service}: pushing {ref}")
            pushed = await executor.push(candidate.image, ref)
            action = "pushed"
        remote = await executor.resolve(candidate.repository, step.tag)
        served = verify_served(ref, step.local, remote, pushed=pushed)
        published.append(Published(candidate.service, f"{ref}@{served}", served, action))
        tell(f"{candidate.service}: {ref}@{served} ({action})")
    return published


def verify_served(
    reference: str,
    local: Mapping[str, str],
    remote: RemoteImage | None,
    *,
    pushed: str | None = None,
) -> str:
    """The digest the registry serves under `reference`, if it is this image (`local`:
    {platform: config digest}); otherwise an `ImageError` naming both sides."""
    if remote is not None and compare(local, remote).same:
        return remote.digest
    expected = ", ".join(f"{p} {d}" for p, d in sorted(local.items()))
    if remote is None:
        served = "nothing"
    else:
        configs = ", ".join(f"{p} {d}" for p, d in sorted(remote.configs.items()))
        served = f"{remote.digest} (configs: {configs or 'none'})"
    engine = f"; the engine reported pushing {pushed}" if pushed else ""
    raise ImageError(
        f"{reference}: after the push the registry serves {served}, not this image "
        f"(expected configs: {expected}){engine}. Another publisher raced us to the tag, "
        "or the registry rewrote it; check the registry before deploying"
    )


def _quiet(_line: str) -> None:
    return None
