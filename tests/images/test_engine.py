"""Without root or apt-get the image tests cannot get an engine; the reason says what is missing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.images import engine
from tests.images.engine import EngineUnavailable, docker_engine, ensure_engine_packages


def which_without(*missing: str) -> Callable[[str], str | None]:
    return lambda tool: None if tool in missing else f"/usr/bin/{tool}"


def test_missing_engine_without_root_names_the_tools_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine.shutil, "which", which_without("dockerd"))
    monkeypatch.setattr(engine.os, "geteuid", lambda: 1000)
    with pytest.raises(EngineUnavailable, match=r"^dockerd not installed and not running as root"):
        ensure_engine_packages()


def test_missing_engine_without_apt_get_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.shutil, "which", which_without("debootstrap", "apt-get"))
    monkeypatch.setattr(engine.os, "geteuid", lambda: 0)
    with pytest.raises(EngineUnavailable, match=r"^debootstrap not installed and no apt-get"):
        ensure_engine_packages()


def test_no_answering_engine_and_no_root_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(host: str) -> bool:
        del host
        return False

    monkeypatch.setattr(engine.shutil, "which", which_without())
    monkeypatch.setattr(engine, "_answers", never)
    monkeypatch.setattr(engine.os, "geteuid", lambda: 1000)
    with (
        pytest.raises(EngineUnavailable, match=r"no Docker engine answers .* needs root"),
        docker_engine(),
    ):
        pass
