"""Image identity: per-platform config digests of a local tarball, and the tag-immutability verdict.

An image's identity is its *config* digest, per platform, never its manifest digest. The
config lists the layers' uncompressed diff_ids (plus the entrypoint, env, labels, …), so it
names the content exactly; the manifest names the layers *as compressed*, and that changes
with the compressor, its level and the engine (`docker save` writes uncompressed layers,
a push gzips them, Dagger may use zstd). Comparing manifests would call the same image
rebuilt from the same commit "different" and refuse a harmless re-publish; comparing
configs does not, yet any change of content or metadata still shows.
"""

from __future__ import annotations

import enum
import json
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wormhole_ci.errors import ImageError, ImmutableTagError
from wormhole_ci.images.oci import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    digest_matches,
    is_attestation,
    is_digest,
    platform_key,
    platform_of,
    sha256_digest,
)
from wormhole_ci.jsonish import as_dict, as_list

if TYPE_CHECKING:
    # a type only: building never needs the registry client (httpx)
    from wormhole_ci.images.registry import RemoteImage

_MAX_DOCUMENT = 16 * 1024 * 1024  # manifests and configs are kilobytes; refuse to slurp a layer
_MAX_NESTING = 2
_FIX = "tags are immutable; build from a new commit or pass a new --version tag"

# Reads one file of the archive by its path inside it; None when absent.
_Reader = Callable[[str], bytes | None]


@dataclass(frozen=True)
class ImageIdentity:
    """What a local image tarball holds."""

    configs: dict[str, str]
    """Platform (`os/arch[/variant]`) -> config digest."""
    manifest_digest: str | None
    """The manifest (or index) digest the archive records for the image, when it records
    exactly one; informational only, since a push recompresses the layers and so changes it."""
    layout: str
    """`oci-layout` or `docker-save`."""


class Outcome(enum.Enum):
    ABSENT = "absent"
    """The tag does not exist: push."""
    SAME = "same"
    """The tag already names this content: nothing to do."""
    CONFLICT = "conflict"
    """The tag names other content: refuse."""


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str

    @property
    def absent(self) -> bool:
        return self.outcome is Outcome.ABSENT

    @property
    def same(self) -> bool:
        return self.outcome is Outcome.SAME

    @property
    def conflict(self) -> bool:
        return self.outcome is Outcome.CONFLICT

    def raise_for_conflict(self) -> None:
        """Raise `ImmutableTagError` with the message when the tag names other content."""
        if self.conflict:
            raise ImmutableTagError(self.message)


def read_identity(path: Path) -> ImageIdentity:
    """The per-platform config digests of an image tarball (or an unpacked layout directory).

    Reads an OCI image layout (what `docker save` ≥ 25, BuildKit and Dagger's
    `Container.export`/`asTarball` write, one or several platforms) or a classic
    `docker save` archive (`manifest.json`).
    """
    if path.is_dir():
        return _identify(_directory_reader(path), str(path))
    try:
        with tarfile.open(path, "r:*") as archive:
            return _identify(_tar_reader(archive, str(path)), str(path))
    except (tarfile.TarError, OSError) as exc:
        raise ImageError(
            f"{path}: cannot read the image tarball ({exc}): pass a file written by "
            "`docker save` or a Dagger/BuildKit OCI export"
        ) from None


def compare(
    local: Mapping[str, str], remote: RemoteImage | None, *, reference: str | None = None
) -> Verdict:
    """Whether publishing `local` ({platform: config digest}) under `remote`'s tag is allowed.

    SAME when every local platform is in the registry's image with the same config digest.
    A registry image that has *more* platforms is still SAME: nothing we built differs from
    what the tag names, and pushing would only drop platforms from it.
    """
    if not local:
        raise ValueError("compare() needs at least one local platform")
    wanted = {_normalise(platform): digest for platform, digest in local.items()}
    if remote is None:
        where = f"{reference} " if reference else "the tag "
        return Verdict(Outcome.ABSENT, f"{where}does not exist yet: push")
    differences: list[str] = []
    for platform, digest in sorted(wanted.items()):
        theirs = remote.configs.get(platform)
        if theirs is None:
            present = ", ".join(sorted(remote.configs)) or "no platform"
            differences.append(f"{platform}: local config {digest}, the registry has {present}")
        elif theirs != digest:
            differences.append(f"{platform}: local config {digest}, registry config {theirs}")
    if differences:
        return Verdict(
            Outcome.CONFLICT,
            f"{remote.reference} already exists with different content (manifest "
            f"{remote.digest}; {'; '.join(differences)}): {_FIX}",
        )
    return Verdict(
        Outcome.SAME,
        f"{remote.reference} already holds this image ({remote.digest}): nothing to push",
    )


def _normalise(platform: str) -> str:
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform {platform!r} is not os/arch[/variant]")
    return platform_key(*parts)


# -- archive formats ---------------------------------------------------------------------


def _identify(read: _Reader, where: str) -> ImageIdentity:
    if read("index.json") is not None:
        return _oci_layout(read, where)
    if read("manifest.json") is not None:
        return _docker_save(read, where)
    raise ImageError(
        f"{where}: neither index.json (OCI image layout) nor manifest.json (`docker save`) "
        "is in it: pass an image tarball"
    )


def _oci_layout(read: _Reader, where: str) -> ImageIdentity:
    index = _document(read, "index.json", where)
    entries = [
        fields
        for entry in as_list(index.get("manifests")) or []
        if (fields := as_dict(entry)) is not None
        and not is_attestation(platform_of(fields.get("platform")), fields.get("annotations"))
    ]
    if not entries:
        raise ImageError(f"{where}: index.json lists no image")
    configs: dict[str, str] = {}
    for entry in entries:
        for platform, digest in _descriptor_configs(read, entry, where, 0).items():
            if platform in configs:
                raise ImageError(
                    f"{where}: holds more than one image for {platform}: save one image "
                    "(one tag) per tarball"
                )
            configs[platform] = digest
    digest = _digest_of(entries[0]) if len(entries) == 1 else None
    return ImageIdentity(configs=configs, manifest_digest=digest, layout="oci-layout")


def _descriptor_configs(
    read: _Reader, descriptor: dict[str, object], where: str, depth: int
) -> dict[str, str]:
    """{platform: config digest} of the manifest or index a descriptor points to."""
    digest = _digest_of(descriptor)
    if digest is None:
        raise ImageError(f"{where}: an index entry has no valid digest")
    document = _document(read, _blob_path(digest), where, digest)
    media_type = descriptor.get("mediaType") or document.get("mediaType")
    if media_type in INDEX_TYPES or (media_type is None and "manifests" in document):
        if depth >= _MAX_NESTING:
            raise ImageError(f"{where}: image indexes nested deeper than any builder writes")
        configs: dict[str, str] = {}
        for entry in as_list(document.get("manifests")) or []:
            fields = as_dict(entry) or {}
            if is_attestation(platform_of(fields.get("platform")), fields.get("annotations")):
                continue
            for platform, config in _descriptor_configs(read, fields, where, depth + 1).items():
                if platform in configs:
                    raise ImageError(f"{where}: the image index lists {platform} twice")
                configs[platform] = config
        return configs
    if media_type not in MANIFEST_TYPES and media_type is not None:
        raise ImageError(f"{where}: unsupported manifest type {media_type}")
    config = _digest_of(as_dict(document.get("config")) or {})
    if config is None:
        raise ImageError(f"{where}: manifest {digest} has no valid config digest")
    # The config's own os/architecture, verified against its digest, is the authority;
    # an index entry's platform is only a copy of it.
    platform = platform_of(_document(read, _blob_path(config), where, config))
    platform = platform or platform_of(descriptor.get("platform"))
    if platform is None:
        raise ImageError(f"{where}: config {config} names no os/architecture")
    return {platform: config}


def _docker_save(read: _Reader, where: str) -> ImageIdentity:
    raw = read("manifest.json") or b""
    try:
        entries = as_list(json.loads(raw)) or []
    except (ValueError, UnicodeDecodeError):
        entries = []
    images = [fields for entry in entries if (fields := as_dict(entry)) is not None]
    if len(images) != 1:
        raise ImageError(
            f"{where}: manifest.json lists {len(images)} images where one was expected: "
            "save one image per tarball (`docker save NAME:TAG`)"
        )
    config_path = images[0].get("Config")
    if not isinstance(config_path, str) or not config_path:
        raise ImageError(f"{where}: manifest.json has no Config entry")
    data = _must_read(read, config_path, where)
    digest = sha256_digest(data)
    # The file name is the digest the engine computed; a mismatch means a damaged archive.
    named = config_path.removeprefix("blobs/sha256/").removesuffix(".json")
    if len(named) == 64 and f"sha256:{named}" != digest:
        raise ImageError(f"{where}: {config_path} does not hash to its name: damaged archive")
    config = _parse(data, config_path, where)
    platform = platform_of(config)
    if platform is None:
        raise ImageError(f"{where}: {config_path} names no os/architecture")
    return ImageIdentity(configs={platform: digest}, manifest_digest=None, layout="docker-save")


# -- reading -------------------------------------------------------------------------------


def _document(read: _Reader, name: str, where: str, digest: str | None = None) -> dict[str, object]:
    data = _must_read(read, name, where)
    if digest is not None and not digest_matches(data, digest):
        raise ImageError(f"{where}: {name} does not hash to {digest}: damaged archive")
    return _parse(data, name, where)


def _parse(data: bytes, name: str, where: str) -> dict[str, object]:
    try:
        document = as_dict(json.loads(data))
    except (ValueError, UnicodeDecodeError):
        document = None
    if document is None:
        raise ImageError(f"{where}: {name} is not a JSON object: damaged archive")
    return document


def _must_read(read: _Reader, name: str, where: str) -> bytes:
    data = read(name)
    if data is None:
        raise ImageError(f"{where}: {name} is missing: incomplete or damaged archive")
    return data


def _digest_of(descriptor: Mapping[str, object]) -> str | None:
    digest = descriptor.get("digest")
    return digest if isinstance(digest, str) and is_digest(digest) else None


def _blob_path(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _tar_reader(archive: tarfile.TarFile, where: str) -> _Reader:
    members: dict[str, tarfile.TarInfo] = {}
    for member in archive.getmembers():
        name = member.name.removeprefix("./").lstrip("/")
        members.setdefault(name, member)

    def read(name: str) -> bytes | None:
        member = members.get(name)
        if member is None:
            return None
        if member.size > _MAX_DOCUMENT:
            raise ImageError(f"{where}: {name} is {member.size} bytes, too large for metadata")
        handle = archive.extractfile(member)  # follows the archive's own hard/symlinks
        return None if handle is None else handle.read()

    return read


def _directory_reader(root: Path) -> _Reader:
    def read(name: str) -> bytes | None:
        path = root / name
        # Only files inside the layout: a crafted index must not make us read elsewhere.
        if not path.resolve().is_relative_to(root.resolve()) or not path.is_file():
            return None
        if path.stat().st_size > _MAX_DOCUMENT:
            raise ImageError(f"{root}: {name} is too large for metadata")
        return path.read_bytes()

    return read
