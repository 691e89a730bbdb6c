"""Shared fixtures: the example monorepo, copies of it, and a throwaway PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling
from xdist.scheduler.protocol import Scheduling

from tests.dagger_module.fake_engine import FakeEngine
from tests.images.engine import Engine, EngineUnavailable, docker_engine, ensure_base_images
from wormhole_ci.migrate.dburl import DatabaseUrl
from wormhole_ci.paths import GENERATED_DIRS
from wormhole_ci.pgtemp import (
    TempPostgres,
    create_role_and_database,
    drop_role_and_database,
    find_bindir,
    temp_postgres,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "wormhole"
SHARED = ROOT.parent / "shared"
# The fixture monorepos' own tests (their services' test suites) run inside `check`, not here.
collect_ignore_glob = ["fixtures/monorepos/*"]
# Build outputs and installed dependencies never travel with a copy of the example.
_IGNORE = shutil.ignore_patterns(*GENERATED_DIRS, ".env")


def shared_reference(name: str, *, shared: Path | None = None) -> Path:
    """`shared/reference/NAME` (the Dagger GraphQL schema, the dagger.json schema). Without
    it the test is skipped, saying so, except under CI (`CI=true`), where a missing
    reference fails the test: CI must not pass by skipping what it is there to prove."""
    path = (shared or SHARED) / "reference" / name
    if not path.is_file():
        reason = f"{name} is not at {path} (shared/reference)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true needs it", pytrace=False)
        pytest.skip(f"{reason}; tests that need it are skipped here (they fail when CI=true)")
    return path


def copy_example(dest: Path) -> Path:
    """A clean copy of the example monorepo under `dest`."""
    target = dest / "wormhole"
    shutil.copytree(EXAMPLE, target, ignore=_IGNORE, symlinks=True)
    return target


def copy_tree(source: Path, target: Path) -> Path:
    """A clean copy of a fixture monorepo at `target` (no installed dependencies or builds)."""
    shutil.copytree(source, target, ignore=_IGNORE, symlinks=True)
    return target


def git(root: Path, *args: str) -> str:
    """`git -C root ARGS` as a fixed committer; its output, stripped."""
    return subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def committed_example(dest: Path) -> Path:
    """A clean copy of the example monorepo under `dest`, committed as its own repository."""
    repo = copy_example(dest)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "example")
    return repo


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A fresh, clean copy of the example monorepo (no installed dependencies)."""
    return copy_example(tmp_path)


@pytest.fixture(scope="session")
def pg_bindir() -> Path:
    """The PostgreSQL server binaries; tests needing them are skipped, with the reason, without."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed")
    return bindir


@pytest.fixture
def postgres(pg_bindir: Path) -> Iterator[TempPostgres]:
    """A running throwaway PostgreSQL cluster (Unix socket only)."""
    with temp_postgres(pg_bindir) as server:
        yield server


@pytest.fixture(scope="session")
def pg_server(pg_bindir: Path) -> Iterator[TempPostgres]:
    """One throwaway cluster for the session that also listens on 127.0.0.1 (passwords on TCP)."""
    with temp_postgres(pg_bindir, tcp=True) as server:
        yield server


@dataclass(frozen=True)
class PgDatabase:
    """A fresh database on `pg_server`, owned by its own role with a random password."""

    url: DatabaseUrl
    raw: str
    """The URL itself, to hand over as `env:NAME` the way a user would."""
    role: str
    password: str


def new_password() -> str:
    # Characters a URL must percent-encode, so tests cover encoding and redaction of both forms.
    return f"pw@{secrets.token_hex(8)}/:%?"


@pytest.fixture
def make_database(pg_server: TempPostgres) -> Iterator[Callable[[], PgDatabase]]:
    """A factory of fresh databases (each with its own role); all dropped after the test."""
    made: list[PgDatabase] = []

    def make() -> PgDatabase:
        token = secrets.token_hex(4)
        role, dbname, password = f"wci_role_{token}", f"wci_db_{token}", new_password()
        create_role_and_database(pg_server, role, password, dbname)
        raw = pg_server.url(dbname, role, password)
        made.append(PgDatabase(DatabaseUrl.parse(raw), raw, role, password))
        return made[-1]

    yield make
    for db in made:
        drop_role_and_database(pg_server, db.role, db.url.dbname)


@pytest.fixture
def database_url(make_database: Callable[[], PgDatabase]) -> PgDatabase:
    """A fresh password-protected database on loopback TCP (`.url`, `.raw` for env:)."""
    return make_database()


DOCKER_MODULES = frozenset(
    {
        "tests/deploy/test_release.py",
        "tests/images/test_buildah.py",
        "tests/images/test_images_run.py",
        "tests/images/test_native_images.py",
    }
)
"""The modules with tests that use the Docker engine: one group under pytest-xdist (below)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`docker` and `registry` marks from the fixtures a test uses (directly or through other
    fixtures), so no test that needs them can be left unmarked: this module's `engine` (the
    Docker engine, not tests/dagger_module's stand-in of the same name) means `docker`; a
    fixture named `*registry` (each runs the loopback docker-registry) means `registry`.

    A Docker test outside DOCKER_MODULES is an error: parallel workers would each start a
    dockerd on the one data root (see pytest_xdist_make_scheduler). Those modules run first,
    since together they are the longest group."""
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        for name in item.fixturenames:
            definitions = item._fixtureinfo.name2fixturedefs.get(name)
            if not definitions:
                continue
            func = definitions[-1].func
            if (func.__module__, func.__name__) == (__name__, "engine"):
                item.add_marker(pytest.mark.docker)
                if _module(item.nodeid) not in DOCKER_MODULES:
                    raise pytest.UsageError(
                        f"{item.nodeid} uses the Docker engine: add "
                        f"{_module(item.nodeid)} to DOCKER_MODULES in tests/conftest.py"
                    )
            if name.endswith("registry"):
                item.add_marker(pytest.mark.registry)
    items.sort(key=lambda item: _module(item.nodeid) not in DOCKER_MODULES)  # stable


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> Scheduling:
    """`make test` runs two pytest-xdist workers. Each test module goes to one worker (its
    module fixtures are made once), and all DOCKER_MODULES to the same one: one dockerd owns
    the engine's data root (tests/images/engine.py), so a second worker's daemon would wait
    for the first worker's whole session to end. (xdist's own `loadgroup` marks do not work
    with pytest 9, whose node ids no longer follow `_nodeid`.)"""

    class ModulesDockerTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module(nodeid)
            return "docker" if module in DOCKER_MODULES else module

    return ModulesDockerTogether(config, log)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A Docker engine with the local base images, one per session (image and release tests);
    skipped, with the reason, without one. (tests/dagger_module has its own `engine`: the
    stand-in Dagger engine.)"""
    try:
        with docker_engine() as found:
            ensure_base_images(found)
            yield found
    except EngineUnavailable as err:
        pytest.skip(f"no Docker engine: {err}")


@contextlib.contextmanager
def stand_in_engine() -> Generator[FakeEngine]:
    """A stand-in Dagger engine on loopback, the SDK's session pointed at it while it runs."""
    # the Dagger v0.21 GraphQL schema: the offline Dagger tests need it
    engine = FakeEngine(shared_reference("dagger-v0.21-schema.graphqls"))
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
    """One stand-in engine per session: the SDK keeps the first session it connects to, so
    the Dagger-layer tests and the release parity tests share it (each resets it first)."""
    with stand_in_engine() as engine:
        yield engine
