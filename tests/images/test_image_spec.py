"""Which images exist, their tags and build arguments, and the commit they come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, git
from wormhole_ci.errors import ImageError, ManifestError
from wormhole_ci.images.engine import BUILD_ARGS_LABEL, cache_safe_dockerfile, needs_buildkit
from wormhole_ci.images.gitinfo import revision
from wormhole_ci.images.spec import (
    Revision,
    build_args,
    check_platforms,
    check_registry,
    check_sha,
    check_version_tag,
    image_specs,
    reference,
    tags,
)
from wormhole_ci.manifest import load_manifest

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_every_service_with_a_dockerfile_has_an_image(example: Path) -> None:
    specs = image_specs(load_manifest(example))
    assert [(s.service, s.context, s.dockerfile, s.repository) for s in specs] == [
        ("api", "api", "Dockerfile", "wormhole-api"),
        ("web", "web", "Dockerfile", "wormhole-web"),
        ("runner", "runner", "Dockerfile", "wormhole-runner"),
    ]


def test_unknown_service_and_missing_dockerfile_are_named(example: Path) -> None:
    manifest = load_manifest(example)
    with pytest.raises(
        ManifestError,
        match=r"no service named 'nope' \(known services: api, web, runner, hasura, delivery\)",
    ):
        image_specs(manifest, ["nope"])
    with pytest.raises(
        ImageError, match=r"service 'hasura' has no Dockerfile: .*hasura/Dockerfile does not exist"
    ):
        image_specs(manifest, ["hasura"])


def test_a_custom_dockerfile_path_from_the_manifest(example: Path) -> None:
    (example / "runner" / "Dockerfile").rename(example / "runner" / "service.Dockerfile")
    path = example / "wormhole-ci.toml"
    path.write_text(
        path.read_text().replace(
            'path = "runner"', 'path = "runner"\ndockerfile = "service.Dockerfile"'
        )
    )
    runner = image_specs(load_manifest(example), ["runner"])[0]
    assert runner.dockerfile == "service.Dockerfile"


def test_tags_references_and_build_args() -> None:
    rev = Revision(SHA, committed="2026-11-27T03:00:00Z")
    assert tags(rev, None) == ("0123456",)
    assert tags(rev, "v1.4.0") == ("0123456", "v1.4.0")
    args = dict(build_args(rev, "v1.4.0", "https://github.com/acme/wormhole"))
    assert args == {
        "GIT_SHA": SHA,
        "VERSION": "v1.4.0",
        "BUILD_CREATED": "2026-11-27T03:00:00Z",
        "SOURCE_URL": "https://github.com/acme/wormhole",
    }
    assert dict(build_args(Revision(SHA), None, None)) == {"GIT_SHA": SHA, "VERSION": "0123456"}


def test_reference_under_a_namespace(example: Path) -> None:
    api = image_specs(load_manifest(example), ["api"])[0]
    assert reference("ghcr.io/acme", api, "0123456") == "ghcr.io/acme/wormhole-api:0123456"


@pytest.mark.parametrize("bad", ["", "xyz1234", "0123", "g" * 40, SHA + "0"])
def test_bad_sha(bad: str) -> None:
    with pytest.raises(ImageError, match="expected a commit SHA"):
        check_sha(bad)


@pytest.mark.parametrize("bad", ["", "-v1", "v 1", "0123456", "a" * 129, "v1/2"])
def test_bad_version_tag(bad: str) -> None:
    with pytest.raises(ImageError, match="--version-tag"):
        check_version_tag(bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("ghcr.io/acme/", "ghcr.io/acme"),
        ("https://r.example", "r.example"),
    ],
)
def test_registry_addresses(given: str, expected: str) -> None:
    assert check_registry(given) == expected


@pytest.mark.parametrize("bad", ["user:pw@ghcr.io", "ghcr.io/Acme", "", "a b"])
def test_bad_registry(bad: str) -> None:
    with pytest.raises(ImageError, match="--registry"):
        check_registry(bad)


def test_platforms() -> None:
    assert check_platforms(["linux/arm64", "linux/amd64", "linux/arm64"]) == (
        "linux/arm64",
        "linux/amd64",
    )
    with pytest.raises(ImageError, match="supported platforms are linux/amd64, linux/arm64"):
        check_platforms(["windows/amd64"])


def test_revision_from_git_head_and_dirty_tree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "mono").mkdir(parents=True)
    (repo / "mono" / "a.txt").write_text("a\n")
    (repo / "elsewhere.txt").write_text("x\n")
    git(repo, "init", "-q")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", ".")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "init")
    head = git(repo, "rev-parse", "HEAD")
    rev = revision(repo / "mono")
    assert rev.sha == head and not rev.dirty and rev.committed and rev.committed.endswith("Z")
    (repo / "elsewhere.txt").write_text("changed\n")  # outside the monorepo dir: not dirty
    assert not revision(repo / "mono").dirty
    (repo / "mono" / ".wormhole-ci" / "logs").mkdir(parents=True)  # our own logs do not count
    (repo / "mono" / ".wormhole-ci" / "logs" / "build-api.log").write_text("log\n")
    assert not revision(repo / "mono").dirty
    (repo / "mono" / "b.txt").write_text("new\n")
    assert revision(repo / "mono").dirty
    explicit = revision(repo / "mono", head[:12].upper())
    assert explicit.sha == head[:12] and explicit.dirty  # an explicit SHA does not hide changes
    assert revision(tmp_path, head).committed is None  # outside any clone: SHA as given


def test_not_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"not inside a git work tree .*pass --tag SHA"):
        revision(tmp_path)


@pytest.mark.parametrize(
    ("text", "needs"),
    [
        ("FROM x\nRUN --mount=type=cache,target=/c make\n", True),
        ("FROM x\nrun --network=none --mount=type=secret,id=k cat /run/secrets/k\n", True),
        ("FROM x\n# RUN --mount=type=cache,target=/c make\nRUN make\n", False),
        ("FROM x\nRUN echo --mount=not-a-flag\n", False),
    ],
)
def test_run_mount_marks_a_dockerfile_as_needing_buildkit(
    tmp_path: Path, text: str, needs: bool
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text)
    assert needs_buildkit(dockerfile) is needs


def test_the_example_web_dockerfile_needs_buildkit_and_the_others_do_not() -> None:
    assert needs_buildkit(EXAMPLE / "web" / "Dockerfile")
    assert not needs_buildkit(EXAMPLE / "api" / "Dockerfile")
    assert not needs_buildkit(EXAMPLE / "runner" / "Dockerfile")


def test_buildah_dockerfile_gets_a_cache_key_after_the_final_stage_first_per_build_arg() -> None:
    text = (
        "ARG BASE=debian\nFROM ${BASE} AS build\nARG GIT_SHA\nRUN make\n"
        "FROM ${BASE}\nCOPY --from=build /out /out\nARG GIT_SHA=dev\nARG VERSION=dev\n"
        'LABEL org.opencontainers.image.revision="${GIT_SHA}"\nENV BUILD_SHA=${GIT_SHA}\n'
    )
    one = cache_safe_dockerfile(text, [("GIT_SHA", "a" * 40), ("VERSION", "1"), ("BASE", "x")])
    lines = one.splitlines()
    # one LABEL, in the final stage, right after its first ARG that a build argument feeds
    keys = [i for i, line in enumerate(lines) if line.startswith(f"LABEL {BUILD_ARGS_LABEL}=")]
    assert len(keys) == 1 and lines[keys[0] - 1] == "ARG GIT_SHA=dev"
    assert [line for line in lines if BUILD_ARGS_LABEL not in line] == text.splitlines()
    # the key changes exactly when a value the final stage declares changes
    same = cache_safe_dockerfile(text, [("GIT_SHA", "a" * 40), ("VERSION", "1"), ("BASE", "y")])
    other = cache_safe_dockerfile(text, [("GIT_SHA", "b" * 40), ("VERSION", "1")])
    assert same == one and other != one
    # nothing given that the final stage declares: the Dockerfile is left alone
    assert cache_safe_dockerfile(text, [("BASE", "x")]) == text
    continued = "FROM x\nARG GIT_SHA=dev \\\n  VERSION=dev\nENV V=${VERSION}\n"
    assert cache_safe_dockerfile(continued, [("GIT_SHA", "c")]).splitlines()[3].startswith("LABEL")
