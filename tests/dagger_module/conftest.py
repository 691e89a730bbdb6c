"""The fake engine for Dagger-layer tests, and a way to call module functions against it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import anyio
import dagger
import pytest

from tests.dagger_module.fake_engine import FakeEngine
from tests.images.registry_server import RegistryServer, registry_or_skip

# The loopback registry's user (publish tests); the password is what the tests pass as a Secret.
USER = "ci-bot"
PASSWORD = "pa55-w0rd-for-the-test-registry"
T = TypeVar("T")


@pytest.fixture
def engine(engine_server: FakeEngine) -> Iterator[FakeEngine]:
    engine_server.reset()
    yield engine_server
    engine_server.reset()


def call(fn: Callable[[], Awaitable[T]]) -> T:
    """Run `fn` with the global `dag` client connected to the fake engine."""

    async def main() -> T:
        await dagger.connect()
        try:
            return await fn()
        finally:
            await dagger.close()

    return anyio.run(main)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with registry_or_skip(
        tmp_path_factory.mktemp("dagger-registry"), users={USER: PASSWORD}
    ) as server:
        yield server
