"""What gets built: one image per service with a Dockerfile, its immutable tags and build args."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wormhole_ci.errors import ImageError
from wormhole_ci.manifest import MANIFEST_NAME, Manifest

DEFAULT_DOCKERFILE = "Dockerfile"
_SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
# Docker's tag grammar; a version tag may not look like a commit, so it never shadows one.
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REGISTRY_RE = re.compile(
    r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[a-z0-9._/-]+)?$|^\[::1\](:[0-9]{1,5})?$"
)
PLATFORMS = ("linux/amd64", "linux/arm64")


@dataclass(frozen=True)
class ImageSpec:
    """One service's image: where its build context and Dockerfile are, and its name."""

    service: str
    context: str
    """The build context, relative to the monorepo root (the service's directory)."""
    dockerfile: str
    """Relative to the context."""
    repository: str
    """`<project>-<service>`: the repository name under the registry prefix."""


@dataclass(frozen=True)
class Revision:
    """The commit an image is built from."""

    sha: str
    committed: str | None = None
    """ISO 8601 commit time: the `created` label, so a rebuild of one commit is identical
    (None: unknown, the Dockerfile's default applies)."""
    dirty: bool = False

    @property
    def short(self) -> str:
        return self.sha[:7]


def image_specs(manifest: Manifest, services: Sequence[str] = ()) -> tuple[ImageSpec, ...]:
    """The images of `services` (default: every service that has a Dockerfile)."""
    # an unknown name raises a ManifestError listing the known services
    chosen = [manifest.service(n) for n in services] if services else list(manifest.services)
    specs: list[ImageSpec] = []
    for service in chosen:
        dockerfile = service.dockerfile or DEFAULT_DOCKERFILE
        path = manifest.root / service.path / dockerfile
        if not path.is_file():
            if not services and service.dockerfile is None:
                continue  # a service without an image (e.g. Hasura metadata)
            raise ImageError(
                f"service {service.name!r} has no Dockerfile: {path} does not exist; add one, "
                f"or set services.{service.name}.dockerfile in {MANIFEST_NAME} to its path"
            )
        specs.append(
            ImageSpec(
                service=service.name,
                context=service.path,
                dockerfile=Path(dockerfile).as_posix(),
                repository=f"{manifest.project}-{service.name}",
            )
        )
    if not specs:
        raise ImageError(
            f"no service in {manifest.root / MANIFEST_NAME} has a Dockerfile; "
            "add <service>/Dockerfile to the services that are deployed"
        )
    return tuple(specs)


def check_sha(sha: str, option: str = "--tag") -> str:
    """A commit SHA as given to `option`: 7 to 40 lower-case hex digits."""
    value = sha.strip().lower()
    if not _SHA_RE.match(value):
        raise ImageError(f"{option} {sha!r}: expected a commit SHA (7 to 40 hex digits)")
    return value


def check_version_tag(tag: str) -> str:
    """A release tag such as v1.4.0: a valid Docker tag that cannot be mistaken for a SHA."""
    if not _TAG_RE.match(tag) or _SHA_RE.match(tag):
        raise ImageError(
            f"--version-tag {tag!r}: use a Docker tag such as v1.4.0 (letters, digits, '.', '_', "
            "'-'; at most 128) that is not itself a commit SHA"
        )
    return tag


def check_registry(registry: str) -> str:
    """`host[:port][/prefix]`: where the images go; no credentials, no trailing slash."""
    value = registry.strip().rstrip("/")
    if "@" in value or not _REGISTRY_RE.match(value):
        raise ImageError(
            f"--registry {registry!r}: expected host[:port][/namespace] such as "
            "ghcr.io/acme or 127.0.0.1:5000 (credentials go in --username/--password)"
        )
    return value.removeprefix("https://").removeprefix("http://")


def check_platforms(platforms: Sequence[str]) -> tuple[str, ...]:
    for platform in platforms:
        if platform not in PLATFORMS:
            raise ImageError(
                f"--platform {platform!r}: supported platforms are {', '.join(PLATFORMS)}"
            )
    return tuple(dict.fromkeys(platforms))


def tags(revision: Revision, version_tag: str | None) -> tuple[str, ...]:
    """The image's tags: the short SHA, plus the release tag when one is given."""
    return (revision.short, *((version_tag,) if version_tag else ()))


def reference(registry: str, spec: ImageSpec, tag: str) -> str:
    return f"{registry}/{spec.repository}:{tag}"


def local_name(spec: ImageSpec, revision: Revision) -> str:
    """The name a native build gets in the local engine."""
    return f"{spec.repository}:{revision.short}"


def build_args(
    revision: Revision, version_tag: str | None, source_url: str | None
) -> tuple[tuple[str, str], ...]:
    """The build arguments every Dockerfile of the monorepo takes (labels and BUILD_SHA)."""
    args = [("GIT_SHA", revision.sha), ("VERSION", version_tag or revision.short)]
    if revision.committed:
        args.append(("BUILD_CREATED", revision.committed))
    if source_url:
        args.append(("SOURCE_URL", source_url))
    return tuple(args)
