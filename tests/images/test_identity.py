"""Local image identity (OCI layout and `docker save` tarballs) and the tag-immutability verdict."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.images.registry_server import (
    ImageParts,
    Platform,
    RegistryServer,
    make_image,
    push_image,
    push_index,
    registry_or_skip,
    sha256,
)
from wormhole_ci.errors import ImageError, ImmutableTagError
from wormhole_ci.images.identity import ImageIdentity, Outcome, compare, read_identity
from wormhole_ci.images.oci import OCI_INDEX, OCI_MANIFEST
from wormhole_ci.images.registry import Registry, RemoteImage

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def write_tar(path: Path, files: dict[str, bytes], *, compress: bool = False) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue()) if compress else buffer.getvalue())
    return path


def blob(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def local_manifest(image: ImageParts, files: dict[str, bytes]) -> tuple[str, bytes]:
    """The manifest as a local export writes it (uncompressed layer); adds the blobs to `files`."""
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": image.config_digest,
                "size": len(image.config),
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER,
                    "digest": sha256(image.layer_tar),
                    "size": len(image.layer_tar),
                }
            ],
        }
    ).encode()
    files[blob(image.config_digest)] = image.config
    files[blob(sha256(image.layer_tar))] = image.layer_tar
    files[blob(sha256(body))] = body
    return sha256(body), body


def descriptor(media_type: str, body: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": sha256(body), "size": len(body), **extra}


def oci_layout(
    images: list[ImageParts], *, nested: bool, attestation: bool = False
) -> dict[str, bytes]:
    """The files of an OCI layout holding `images` (nested: one index; else entries in index.json)."""
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    entries: list[dict[str, object]] = []
    listed = [*images, make_image(Platform("unknown", "unknown"), "att")] if attestation else images
    for image in listed:
        _, body = local_manifest(image, files)
        extra: dict[str, object] = {"platform": image.platform.as_json()}
        if image.platform.os == "unknown":
            extra["annotations"] = {"vnd.docker.reference.type": "attestation-manifest"}
        entries.append(descriptor(OCI_MANIFEST, body, **extra))
    if nested:
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        ).encode()
        files[blob(sha256(index))] = index
        entries = [descriptor(OCI_INDEX, index)]
    files["index.json"] = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    ).encode()
    return files


def docker_save(image: ImageParts, *, blobs_style: bool = False) -> dict[str, bytes]:
    """The files of a classic `docker save` archive (`<hex>.json` config, layer.tar)."""
    hexdigest = image.config_digest.removeprefix("sha256:")
    config_name = f"blobs/sha256/{hexdigest}" if blobs_style else f"{hexdigest}.json"
    manifest = [{"Config": config_name, "RepoTags": ["x:y"], "Layers": ["abc/layer.tar"]}]
    return {
        "manifest.json": json.dumps(manifest).encode(),
        config_name: image.config,
        "abc/layer.tar": image.layer_tar,
    }


# -- reading tarballs ----------------------------------------------------------------------


def test_oci_layout_single_manifest(tmp_path: Path) -> None:
    image = make_image(AMD64, "one")
    files = oci_layout([image], nested=False)
    top = json.loads(files["index.json"])["manifests"][0]["digest"]

    found = read_identity(write_tar(tmp_path / "one.tar", files))

    assert found == ImageIdentity({"linux/amd64": image.config_digest}, top, "oci-layout")


def test_oci_layout_nested_index_two_platforms_without_attestation(tmp_path: Path) -> None:
    amd, arm = make_image(AMD64, "multi"), make_image(ARM64, "multi")
    files = oci_layout([amd, arm], nested=True, attestation=True)
    index_digest = json.loads(files["index.json"])["manifests"][0]["digest"]

    found = read_identity(write_tar(tmp_path / "multi.tar", files))

    assert found.configs == {"linux/amd64": amd.config_digest, "linux/arm64": arm.config_digest}
    assert found.manifest_digest == index_digest


def test_oci_layout_platform_entries_in_index_json(tmp_path: Path) -> None:
    # Several platform manifests directly in index.json: there is no single manifest digest.
    amd, arm = make_image(AMD64, "flat"), make_image(ARM64, "flat")
    found = read_identity(write_tar(tmp_path / "flat.tar", oci_layout([amd, arm], nested=False)))
    assert found.configs == {"linux/amd64": amd.config_digest, "linux/arm64": arm.config_digest}
    assert found.manifest_digest is None


def test_oci_layout_gzipped_and_as_directory(tmp_path: Path) -> None:
    image = make_image(AMD64, "gz")
    files = oci_layout([image], nested=True)
    assert read_identity(write_tar(tmp_path / "gz.tar.gz", files, compress=True)).configs == {
        "linux/amd64": image.config_digest
    }
    root = tmp_path / "layout"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    assert read_identity(root).configs == {"linux/amd64": image.config_digest}


@pytest.mark.parametrize("blobs_style", [False, True])
def test_docker_save_archive(tmp_path: Path, blobs_style: bool) -> None:
    image = make_image(ARM64, "saved")
    found = read_identity(
        write_tar(tmp_path / "s.tar", docker_save(image, blobs_style=blobs_style))
    )
    assert found == ImageIdentity({"linux/arm64": image.config_digest}, None, "docker-save")


def test_damaged_and_foreign_archives(tmp_path: Path) -> None:
    image = make_image(AMD64, "bad")
    files = docker_save(image)
    name = next(n for n in files if n.endswith(".json") and n != "manifest.json")
    files[name] = files[name].replace(b"amd64", b"arm64")
    with pytest.raises(ImageError, match="does not hash to its name: damaged archive"):
        read_identity(write_tar(tmp_path / "a.tar", files))

    files = oci_layout([image], nested=True)
    files.pop(blob(image.config_digest))
    with pytest.raises(ImageError, match=f"{blob(image.config_digest)} is missing"):
        read_identity(write_tar(tmp_path / "b.tar", files))

    files = oci_layout([image], nested=False)
    files[blob(image.config_digest)] = b"{}"
    with pytest.raises(ImageError, match=f"does not hash to {image.config_digest}"):
        read_identity(write_tar(tmp_path / "c.tar", files))

    files = {**docker_save(image), "manifest.json": b"[{}, {}]"}
    with pytest.raises(ImageError, match="lists 2 images where one was expected"):
        read_identity(write_tar(tmp_path / "d.tar", files))

    with pytest.raises(ImageError, match=r"neither index\.json"):
        read_identity(write_tar(tmp_path / "e.tar", {"hello.txt": b"hi"}))

    (tmp_path / "f.tar").write_text("not a tarball")
    with pytest.raises(ImageError, match="cannot read the image tarball"):
        read_identity(tmp_path / "f.tar")


def test_same_platform_twice_is_ambiguous(tmp_path: Path) -> None:
    files = oci_layout([make_image(AMD64, "a"), make_image(AMD64, "b")], nested=False)
    with pytest.raises(ImageError, match="more than one image for linux/amd64"):
        read_identity(write_tar(tmp_path / "twice.tar", files))


# -- the verdict ---------------------------------------------------------------------------

REF = "127.0.0.1:5000/wormhole/api:abc1234"
A, B, C = (f"sha256:{c * 64}" for c in "abc")
REMOTE = RemoteImage(REF, f"sha256:{'d' * 64}", OCI_INDEX, {"linux/amd64": A, "linux/arm64": B})


def test_compare_absent() -> None:
    verdict = compare({"linux/amd64": A}, None, reference=REF)
    assert (verdict.outcome, verdict.absent) == (Outcome.ABSENT, True)
    assert verdict.message == f"{REF} does not exist yet: push"
    verdict.raise_for_conflict()


def test_compare_same_including_a_subset_and_spelling_variants() -> None:
    assert compare({"linux/amd64": A, "linux/arm64": B}, REMOTE).same
    assert compare({"linux/amd64": A}, REMOTE).same
    assert compare({"linux/aarch64/v8": B}, REMOTE).same


def test_compare_conflict_names_reference_digests_and_fix() -> None:
    verdict = compare({"linux/amd64": C}, REMOTE)
    assert verdict.conflict
    assert verdict.message == (
        f"{REF} already exists with different content (manifest sha256:{'d' * 64}; "
        f"linux/amd64: local config {C}, registry config {A}): "
        "tags are immutable; build from a new commit or pass a new --version tag"
    )
    with pytest.raises(ImmutableTagError, match="tags are immutable"):
        verdict.raise_for_conflict()


def test_compare_platform_missing_in_registry_is_a_conflict() -> None:
    remote = RemoteImage(REF, A, OCI_MANIFEST, {"linux/amd64": A})
    verdict = compare({"linux/amd64": A, "linux/arm64": B}, remote)
    assert verdict.conflict
    assert f"linux/arm64: local config {B}, the registry has linux/amd64" in verdict.message


def test_compare_needs_a_local_platform() -> None:
    with pytest.raises(ValueError, match="at least one"):
        compare({}, REMOTE)
    with pytest.raises(ValueError, match="not os/arch"):
        compare({"amd64": A}, REMOTE)


# -- local tarball vs the real registry ----------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry_or_skip(tmp_path_factory.mktemp("registry-identity")) as server:
        yield server


def test_recompressed_push_is_the_same_image(tmp_path: Path, registry: RegistryServer) -> None:
    # Locally the layer is uncompressed (docker save / OCI export); the registry holds it
    # gzipped under another manifest digest. The config digest still says "same image".
    amd, arm = make_image(AMD64, "rt"), make_image(ARM64, "rt")
    with registry.client() as client:
        push_image(client, "wormhole/api", "abc1234", amd)
        pushed_index = push_index(client, "wormhole/web", "abc1234", [amd, arm])
    saved = read_identity(write_tar(tmp_path / "api.tar", docker_save(amd)))
    exported = read_identity(write_tar(tmp_path / "web.tar", oci_layout([amd, arm], nested=True)))
    assert exported.manifest_digest != pushed_index

    with Registry(registry.address) as client:
        assert compare(saved.configs, client.resolve("wormhole/api", "abc1234")).same
        assert compare(exported.configs, client.resolve("wormhole/web", "abc1234")).same
        changed = read_identity(
            write_tar(tmp_path / "api2.tar", docker_save(make_image(AMD64, "rt, edited")))
        )
        verdict = compare(changed.configs, client.resolve("wormhole/api", "abc1234"))
        absent = compare(saved.configs, client.resolve("wormhole/api", "new-tag"))

    assert verdict.conflict
    assert f"{registry.address}/wormhole/api:abc1234 already exists" in verdict.message
    assert absent.absent


# A real `docker save` archive is read in test_native_images.py (build --save-dir).
