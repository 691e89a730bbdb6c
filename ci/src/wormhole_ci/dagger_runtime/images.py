"""Images on this engine: Dockerfile builds, their OCI identity, and the executor of the
publish guard (images/publish.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio
import dagger
from dagger import dag

from wormhole_ci.dagger_runtime.source import DaggerSource
from wormhole_ci.errors import ImageError
from wormhole_ci.images.identity import read_identity
from wormhole_ci.images.publish import Candidate, Published
from wormhole_ci.images.publish import publish as guarded_publish
from wormhole_ci.images.registry import Registry, RemoteImage
from wormhole_ci.images.spec import (
    Revision,
    build_args,
    check_platforms,
    check_registry,
    check_sha,
    check_version_tag,
    image_specs,
)
from wormhole_ci.images.spec import tags as image_tags


async def build_image(
    source: DaggerSource,
    service: str,
    *,
    tag: str,
    version_tag: str,
    platform: str,
    build_arg: Sequence[str],
) -> dagger.Container:
    """One service's image (`build`)."""
    (spec,), source_url = await source.planned(lambda m: (image_specs(m, [service]), m.repository))
    rev = Revision(check_sha(tag)) if tag else None
    platforms = check_platforms([platform]) if platform else ()
    return source.image(
        spec,
        image_args(rev, version_tag, source_url, build_arg),
        platforms[0] if platforms else None,
    )


async def build_images(
    source: DaggerSource,
    *,
    tag: str,
    version_tag: str,
    platforms: Sequence[str],
    build_arg: Sequence[str],
) -> dagger.Directory:
    """Every service's image as `<service>.tar`, all platforms in one archive (`build-all`)."""
    specs, source_url = await source.planned(lambda m: (image_specs(m), m.repository))
    rev = Revision(check_sha(tag)) if tag else None
    args = image_args(rev, version_tag, source_url, build_arg)
    out = dag.directory()
    for spec in specs:
        variants = source.variants(spec, args, check_platforms(platforms))
        out = out.with_file(
            f"{spec.service}.tar", variants[0].as_tarball(platform_variants=variants[1:])
        )
    return out


async def publish_images(
    source: DaggerSource,
    registry: str,
    rev: Revision,
    username: str,
    password: dagger.Secret | None,
    *,
    version_tag: str = "",
    platforms: Sequence[str] = (),
    build_arg: Sequence[str] = (),
    tags: Sequence[str] = (),
    services: Sequence[str] = (),
) -> list[Published]:
    """The guarded publish (images/publish.py) with this engine as the executor; `tags`
    replace the SHA/version tags (a preview pushes `pr-N-<sha7>` only); `services` narrows
    the images (default: every service with a Dockerfile)."""
    if bool(username) != (password is not None):
        raise ImageError("publish: pass both --username and --password, or neither")
    address = check_registry(registry)
    version = check_version_tag(version_tag) if version_tag else None
    specs, source_url = await source.planned(
        lambda m: (image_specs(m, tuple(services)), m.repository)
    )
    args = image_args(rev, version_tag, source_url, build_arg)
    host, _, prefix = address.partition("/")
    plaintext = await password.plaintext() if password else None
    chosen = check_platforms(platforms)
    with Registry(host, username or None, plaintext) as client:
        # unreachable registry or wrong credentials: fail before anything is built
        await anyio.to_thread.run_sync(client.ping)
        candidates = [
            Candidate(
                spec.service,
                host,
                f"{prefix}/{spec.repository}" if prefix else spec.repository,
                source.variants(spec, args, chosen),
            )
            for spec in specs
        ]
        return await guarded_publish(
            candidates,
            tuple(tags) or image_tags(rev, version),
            DaggerPublisher(client, host, username, password),
        )


class DaggerPublisher:
    """The Dagger side of the publish guard (images/publish.py): the engine pushes the
    containers (all platforms at once), the registry client reads, in a worker thread."""

    def __init__(
        self, client: Registry, host: str, username: str, password: dagger.Secret | None
    ) -> None:
        self._client = client
        self._host = host
        self._username = username
        self._password = password

    async def local_identity(self, variants: list[dagger.Container]) -> dict[str, str]:
        return await config_digests(variants)

    async def resolve(self, repository: str, tag: str) -> RemoteImage | None:
        return await anyio.to_thread.run_sync(self._client.resolve, repository, tag)

    async def push(self, variants: list[dagger.Container], reference: str) -> str:
        ctr = variants[0]
        if self._password is not None:
            ctr = ctr.with_registry_auth(self._host, self._username, self._password)
        pushed = await ctr.publish(reference, platform_variants=variants[1:])
        return pushed.rpartition("@")[2]  # `<reference>@sha256:…`


async def config_digests(variants: list[dagger.Container]) -> dict[str, str]:
    """The per-platform config digests of these containers, read from their OCI archive
    (exported into the module's own container): what `push` would push."""
    with tempfile.TemporaryDirectory(prefix="wormhole-ci-image-") as tmp:
        path = Path(tmp) / "image.tar"
        await variants[0].as_tarball(platform_variants=variants[1:]).export(str(path))
        return dict(read_identity(path).configs)


def image_args(
    rev: Revision | None, version_tag: str, source_url: str | None, extra: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    """The build arguments: the revision's (BUILD_SHA, labels) and the caller's NAME=VALUE."""
    version = check_version_tag(version_tag) if version_tag else None
    args = list(build_args(rev, version, source_url)) if rev else []
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ImageError(f"--build-arg {item!r}: expected NAME=VALUE")
        args.append((name, value))
    return tuple(args)
