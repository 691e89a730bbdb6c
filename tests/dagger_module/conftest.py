"""The fake engine for Dagger-layer tests, and a way to call module functions against it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import TypeVar

import anyio
import dagger
import pytest

from tests.conftest import shared_reference
from tests.dagger_module.fake_engine import FakeEngine
from tests.images.registry_server import RegistryServer, registry_or_skip

SCHEMA = "dagger-v0.21-schema.graphqls"
# The loopback registry's user (publish tests); the password is what the tests pass as a Secret.
USER = "ci-bot"
PASSWORD = "pa55-w0rd-for-the-test-registry"
T = TypeVar("T")


@contextlib.contextmanager
def stand_in_engine() -> Generator[FakeEngine]:
    """A stand-in engine on loopback, the SDK's session pointed at it while it runs."""
    # the Dagger v0.21 GraphQL schema: the offline Dagger tests need it
    engine = FakeEngine(shared_reference(SCHEMA))
    port = engine.start()
    previous = {k: os.environ.get(k) for k in ("DAGGER_SESSION_PORT", "DAGGER_SESSION_TOKEN")}
    os.environ["DAGGER_SESSION_PORT"] = str(port)
    os.environ["DAGGER_SESSION_TOKEN"] = engine.token
    try:
        yield engine
    finally:
        engine.stop()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def engine_server() -> Iterator[FakeEngine]:
    with stand_in_engine() as engine:
        yield engine


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
