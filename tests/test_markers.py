"""`-m docker` / `-m registry` select exactly the tests that need the Docker engine or the
loopback registry (marked from their fixtures by tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

FILES = (
    "tests/images/test_native_images.py",
    "tests/images/test_buildah.py",
    "tests/images/test_engine.py",
    "tests/images/test_registry.py",
    "tests/deploy/test_release.py",
    "tests/dagger_module/test_registration.py",
    "tests/dagger_module/test_release.py",
)
NATIVE_BUILD = "tests/images/test_native_images.py::test_build_tags_by_commit_and_saves_tarballs"
NATIVE_PUBLISH = (
    "tests/images/test_native_images.py::test_publish_then_republish_then_refuse_a_moved_tag"
)
BUILDAH = "tests/images/test_buildah.py::test_buildah_publish_is_immutable_and_idempotent"
RELEASE = "tests/deploy/test_release.py::test_7_deploy_gate"
REGISTRY_CLIENT = "tests/images/test_registry.py::test_basic_auth_credentials_accepted"
DAGGER_RELEASE = "tests/dagger_module/test_release.py::test_deploy_sets_tags_deploys_and_verifies"
# pure: monkeypatched engine look-up; and the Dagger stand-in, a fixture also named `engine`
NO_ENGINE = (
    "tests/images/test_engine.py::test_missing_engine_without_root_names_the_tools_and_the_fix"
)
REGISTRATION = "tests/dagger_module/test_registration.py::test_registration_of_the_image_functions"


def selected(marker: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marker, *FILES],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return {line for line in done.stdout.splitlines() if "::" in line}


@pytest.mark.parametrize(
    ("marker", "needing", "not_needing"),
    [
        ("docker", {NATIVE_BUILD, NATIVE_PUBLISH, BUILDAH, RELEASE}, {NO_ENGINE, REGISTRATION, REGISTRY_CLIENT, DAGGER_RELEASE}),
        ("registry", {NATIVE_PUBLISH, BUILDAH, RELEASE, REGISTRY_CLIENT, DAGGER_RELEASE}, {NATIVE_BUILD, NO_ENGINE, REGISTRATION}),
    ],
)  # fmt: skip
def test_marker_selects_the_tests_that_need_it(
    marker: str, needing: set[str], not_needing: set[str]
) -> None:
    found = selected(marker)
    assert found, f"-m {marker!r} selected nothing"
    assert needing <= found, sorted(needing - found)
    assert not (not_needing & found), sorted(not_needing & found)
