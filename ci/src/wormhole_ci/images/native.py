"""`wormhole-ci build` and `publish` on a local engine: build, save, guard the tags, push."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wormhole_ci.errors import ImageError, ImmutableTagError
from wormhole_ci.images.engine import Engine, LocalImage
from wormhole_ci.images.identity import Verdict, compare
from wormhole_ci.images.spec import (
    ImageSpec,
    Revision,
    build_args,
    local_name,
    reference,
    tags,
)
from wormhole_ci.manifest import Manifest
from wormhole_ci.secretref import Secret

Say = Callable[[str], None]


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


@dataclass(frozen=True)
class Published:
    service: str
    reference: str
    """`registry/repo:tag@sha256:…` as the registry serves it."""
    digest: str
    action: str
    """`pushed` or `unchanged` (the tag already held this very image)."""


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
    image pushes nothing at all. `built` skips the build (a release builds and scans first).
    """
    registry, username, password = target.registry, target.username, target.password
    host, _, prefix = registry.partition("/")
    # imported here: `build` has no use for the registry client (httpx) and starts faster
    from wormhole_ci.images.registry import Registry  # noqa: PLC0415

    client = Registry(host, username, password.reveal() if password else None)
    client.ping()  # unreachable registry or wrong credentials: fail before any build
    say(f"registry {host}: reachable, credentials accepted")
    built = build_images(manifest, specs, engine, options, say)
    result = PublishResult(revision=options.revision.sha, images=built)
    plan: list[tuple[BuiltImage, ImageSpec, str, Verdict]] = []
    conflicts: list[str] = []
    for image, spec in zip(built, specs, strict=True):
        repository = f"{prefix}/{spec.repository}" if prefix else spec.repository
        for tag in tags(options.revision, options.version_tag):
            remote = client.resolve(repository, tag)
            verdict = compare({image.platform: image.config_digest}, remote)
            if verdict.conflict:
                conflicts.append(verdict.message)
            plan.append((image, spec, tag, verdict))
    if conflicts:
        raise ImmutableTagError("nothing was pushed:\n" + "\n".join(conflicts))
    for image, spec, tag, verdict in plan:
        ref = reference(registry, spec, tag)
        repository = ref.split("/", 1)[1].rsplit(":", 1)[0]
        if verdict.same:
            say(f"{spec.service}: {ref} already holds this image; not pushed")
            action = "unchanged"
        else:
            say(f"{spec.service}: pushing {ref}")
            engine.push(image.name, ref, username, password)
            action = "pushed"
        remote = client.resolve(repository, tag)
        after = compare({image.platform: image.config_digest}, remote)
        if remote is None or not after.same:
            raise ImageError(
                f"{ref}: after the push the registry serves "
                f"{'nothing' if remote is None else remote.digest}, not this image "
                "(another publisher raced us?); check the registry before deploying"
            )
        result.published.append(
            Published(spec.service, f"{ref}@{remote.digest}", remote.digest, action)
        )
        say(f"{spec.service}: {ref}@{remote.digest} ({action})")
    return result


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
