"""`wormhole-ci build` and `publish` on a local engine: build, save, guard the tags, push."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, TypeVarTuple, Unpack

from wormhole_ci.errors import ImageError
from wormhole_ci.images.engine import Engine, LocalImage
from wormhole_ci.images.publish import Candidate, Published, publish
from wormhole_ci.images.spec import (
    ImageSpec,
    Revision,
    build_args,
    local_name,
    tags,
)
from wormhole_ci.manifest import Manifest
from wormhole_ci.secretref import Secret

if TYPE_CHECKING:
    from wormhole_ci.images.registry import Registry, RemoteImage

Say = Callable[[str], None]
T = TypeVar("T")
Args = TypeVarTuple("Args")


@dataclass(frozen=True)
class BuildOptions:
    revision: Revision
    version_tag: str | None = None
    extra_args: tuple[tuple[str, str], ...] = ()
    """--build-arg NAME=VALUE overrides (e.g. a local base image for NODE_IMAGE)."""
    log_dir: Path = Path(".wormhole-ci/logs")
    save_dir: Path | None = None
    """Where `docker save` tarballs go (for `scan --image`); None: not saved."""
    jobs: int = 2
    no_cache: bool = False
    """Rebuild every layer instead of reusing the engine's layer cache."""
    publish_tags: tuple[str, ...] = ()
    """Push these tags instead of the SHA (and version) tags: a preview pushes `pr-N-<sha7>`
    only, so it never claims a release's tag."""


@dataclass(frozen=True)
class Target:
    """Where `publish` pushes: `host[:port][/namespace]` and the credentials, if any."""

    registry: str
    username: str | None = None
    password: Secret | None = None


@dataclass(frozen=True)
class BuiltImage:
    service: str
    name: str
    config_digest: str
    platform: str
    size: int
    seconds: float
    tarball: str | None = None


@dataclass
class PublishResult:
    revision: str
    images: list[BuiltImage] = field(default_factory=list[BuiltImage])
    published: list[Published] = field(default_factory=list[Published])

    def to_json(self) -> str:
        return json.dumps(
            {
                "revision": self.revision,
                "images": [asdict(i) for i in self.images],
                "published": [asdict(p) for p in self.published],
            },
            indent=2,
        )


def build_images(
    manifest: Manifest,
    specs: Sequence[ImageSpec],
    engine: Engine,
    options: BuildOptions,
    say: Say,
) -> list[BuiltImage]:
    """Build every image (concurrently, up to `jobs`); the first failure is raised after
    the others finish, naming the service and its log."""
    args = (
        *build_args(options.revision, options.version_tag, manifest.repository),
        *options.extra_args,
    )

    def one(spec: ImageSpec) -> BuiltImage:
        name = local_name(spec, options.revision)
        context = manifest.root / spec.context
        log = options.log_dir / f"build-{spec.service}.log"
        say(f"{spec.service}: building {name} from {spec.context}/{spec.dockerfile}")
        started = time.monotonic()
        try:
            image = engine.build(
                context, context / spec.dockerfile, name, args, log, no_cache=options.no_cache
            )
        except ImageError as exc:
            raise ImageError(f"build of {spec.service} failed: {exc}") from None
        seconds = time.monotonic() - started
        tarball = None
        if options.save_dir is not None:
            out = options.save_dir / f"{spec.service}.tar"
            engine.save(name, out)
            tarball = str(out)
        say(
            f"{spec.service}: built {name} ({image.config_digest[:19]}, {_mb(image.size)}) "
            f"in {seconds:.1f} s"
        )
        return _built(spec, image, seconds, tarball)

    results: dict[str, BuiltImage] = {}
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        futures = {spec.service: pool.submit(one, spec) for spec in specs}
        for service, future in futures.items():
            try:
                results[service] = future.result()
            except ImageError as exc:
                errors.append(str(exc))
    if errors:
        raise ImageError("\n".join(errors))
    return [results[s.service] for s in specs]


def publish_images(
    manifest: Manifest,
    specs: Sequence[ImageSpec],
    engine: Engine,
    options: BuildOptions,
    *,
    target: Target,
    say: Say,
    built: list[BuiltImage] | None = None,
) -> PublishResult:
    """Check the credentials, build, refuse any tag that would move, then push the rest.

    Every tag of every image is checked before the first push, so a conflict on one
    image pushes nothing at all (the guard is `images.publish`, shared with Dagger).
    `built` skips the build (a release builds and scans first).
    """
    registry, username, password = target.registry, target.username, target.password
    host, _, prefix = registry.partition("/")
    # imported here: `build` has no use for the registry client (httpx) nor anyio and
    # starts faster without them
    import anyio  # noqa: PLC0415

    from wormhole_ci.images.registry import Registry  # noqa: PLC0415

    with Registry(host, username, password.reveal() if password else None) as client:
        client.ping()  # unreachable registry or wrong credentials: fail before any build
        say(f"registry {host}: reachable, credentials accepted")
        if built is None:
            built = build_images(manifest, specs, engine, options, say)
        candidates = [
            Candidate(
                spec.service,
                host,
                f"{prefix}/{spec.repository}" if prefix else spec.repository,
                image,
            )
            for image, spec in zip(built, specs, strict=True)
        ]
        executor = _EnginePublisher(engine, client, username, password)
        published = anyio.run(
            partial(
                publish,
                candidates,
                options.publish_tags or tags(options.revision, options.version_tag),
                executor,
                say=say,
            )
        )
    return PublishResult(revision=options.revision.sha, images=built, published=published)


class _EnginePublisher:
    """The native side of the guard: the local engine pushes, the registry client reads."""

    def __init__(
        self, engine: Engine, client: Registry, username: str | None, password: Secret | None
    ) -> None:
        self._engine = engine
        self._client = client
        self._username = username
        self._password = password

    async def local_identity(self, image: BuiltImage) -> dict[str, str]:
        return {image.platform: image.config_digest}

    async def resolve(self, repository: str, tag: str) -> RemoteImage | None:
        return await _in_thread(self._client.resolve, repository, tag)

    async def push(self, image: BuiltImage, reference: str) -> None:
        # None: the guard checks identity by the registry's answer, not the engine's output
        await _in_thread(self._engine.push, image.name, reference, self._username, self._password)


async def _in_thread(fn: Callable[[Unpack[Args]], T], *args: *Args) -> T:
    """`fn(*args)` in a worker thread: the registry client and the engines block."""
    import anyio.to_thread  # noqa: PLC0415 (see publish_images)

    return await anyio.to_thread.run_sync(fn, *args)


def _built(spec: ImageSpec, image: LocalImage, seconds: float, tarball: str | None) -> BuiltImage:
    return BuiltImage(
        service=spec.service,
        name=image.name,
        config_digest=image.config_digest,
        platform=image.platform,
        size=image.size,
        seconds=round(seconds, 2),
        tarball=tarball,
    )


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.0f} MB" if size else "size unknown"
