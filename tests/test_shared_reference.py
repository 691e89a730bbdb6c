"""`shared_reference`: a missing reference file skips the test here and fails it under CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import shared_reference


def test_missing_reference_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"schema\.json is not at .*; CI=true needs it"):
        shared_reference("schema.json", shared=tmp_path)


@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_missing_reference_skips_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(
        pytest.skip.Exception, match=r"schema\.json is not at .*\(shared/reference\)"
    ):
        shared_reference("schema.json", shared=tmp_path)


def test_present_reference_is_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "schema.json").write_text("{}")
    assert (
        shared_reference("schema.json", shared=tmp_path) == tmp_path / "reference" / "schema.json"
    )
