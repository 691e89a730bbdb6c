"""OCI/Docker image format facts shared by the registry client and the tarball reader."""

from __future__ import annotations

import hashlib
import re

from wormhole_ci.jsonish import as_dict

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

# The digest algorithms the OCI image spec registers, with their hex lengths.
_DIGEST_RE = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")

# containerd's normalisation (platforms.Normalize): the same platform is spelled several
# ways by different builders, and a spelling difference must not read as different content.
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}


def sha256_digest(data: bytes) -> str:
    """The OCI digest (`sha256:<hex>`) of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(value: str) -> bool:
    """Whether `value` is a sha256 or sha512 OCI digest."""
    return bool(_DIGEST_RE.match(value))


def digest_matches(data: bytes, digest: str) -> bool:
    """Whether `data` hashes to `digest` (a registered algorithm only; anything else is False)."""
    if not is_digest(digest):
        return False
    algorithm, _, hexdigest = digest.partition(":")
    return hashlib.new(algorithm, data).hexdigest() == hexdigest


def platform_key(os_name: str, architecture: str, variant: str = "") -> str:
    """`os/arch[/variant]`, normalised so that e.g. `linux/aarch64/v8` and `linux/arm64` match."""
    arch = _ARCH_ALIASES.get(architecture.lower(), architecture.lower())
    var = variant.lower()
    if arch == "arm64" and var == "v8":
        # v8 is the only arm64 variant in use: builders differ on whether they write it.
        var = ""
    if architecture.lower() == "armhf" and not var:
        var = "v7"
    key = f"{os_name.lower()}/{arch}"
    return f"{key}/{var}" if var else key


def platform_of(value: object) -> str | None:
    """The platform key of an image config or an index entry's `platform`, or None if it lacks one."""
    fields = as_dict(value)
    if fields is None:
        return None
    os_name, arch, variant = fields.get("os"), fields.get("architecture"), fields.get("variant", "")
    if not isinstance(os_name, str) or not isinstance(arch, str) or not os_name or not arch:
        return None
    return platform_key(os_name, arch, variant if isinstance(variant, str) else "")


def is_attestation(platform: str | None, annotations: object) -> bool:
    """Whether an index entry is BuildKit's provenance/SBOM attestation, not a runnable image.

    BuildKit (and so Dagger and `docker buildx`) lists attestations in the image index with
    the platform `unknown/unknown`; they carry no config of a real image.
    """
    if platform == "unknown/unknown":
        return True
    notes = as_dict(annotations) or {}
    return notes.get("vnd.docker.reference.type") == "attestation-manifest"
