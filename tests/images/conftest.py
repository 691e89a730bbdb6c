"""Session fixtures for the image tests: a Docker engine and the local base images."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.images.engine import Engine, EngineUnavailable, docker_engine, ensure_base_images


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A Docker engine with the base images; the tests skip, with the reason, without one."""
    try:
        with docker_engine() as found:
            ensure_base_images(found)
            yield found
    except EngineUnavailable as err:
        pytest.skip(f"no Docker engine: {err}")
