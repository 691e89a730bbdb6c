"""Secret references: env:/file: resolve, literals are refused, and values never print."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wormhole_ci.errors import SecretError
from wormhole_ci.secretref import REDACTED, Secret, redact, resolve_secret

VALUE = "s3cr3t-p@ss/word"


def test_env_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WCI_TEST_PASSWORD", VALUE)
    secret = resolve_secret("env:WCI_TEST_PASSWORD", "--password")
    assert secret.reveal() == VALUE
    assert VALUE not in repr(secret) and VALUE not in str(secret) and VALUE not in f"{secret}"
    assert secret.source == "env:WCI_TEST_PASSWORD"


def test_file_reference_strips_the_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(VALUE + "\n")
    assert resolve_secret(f"file:{path}", "--password").reveal() == VALUE


@pytest.mark.parametrize(
    "literal", [VALUE, "hunter2", "cmd:echo hi", "env:", "postgres://u:p@h/db"]
)
def test_literal_or_unknown_forms_are_refused_without_echoing_them(literal: str) -> None:
    with pytest.raises(SecretError) as info:
        resolve_secret(literal, "--password")
    message = str(info.value)
    assert "env:NAME or file:PATH" in message and "--password" in message
    assert literal not in message or literal in ("env:",)


def test_unset_variable_and_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WCI_TEST_UNSET", raising=False)
    with pytest.raises(SecretError, match="WCI_TEST_UNSET is not set or empty"):
        resolve_secret("env:WCI_TEST_UNSET", "--password")
    with pytest.raises(SecretError, match=r"cannot read .*nope"):
        resolve_secret(f"file:{tmp_path / 'nope'}", "--password")


def test_redact_plain_and_url_encoded_forms() -> None:
    secret = Secret("env:X", VALUE)
    text = f"login with {VALUE} at postgres://u:s3cr3t-p%40ss%2Fword@h/db"
    out = redact(text, secret, None)
    assert VALUE not in out and "s3cr3t-p%40ss%2Fword" not in out
    assert out.count(REDACTED) == 2


@pytest.mark.parametrize(
    ("option", "example"),
    [
        ("--database-url", "--database-url=env:DATABASE_URL"),
        ("--password", "--password=env:REGISTRY_PASSWORD"),
        ("--coolify-token", "--coolify-token=env:COOLIFY_TOKEN"),
        ("--github-token", "--github-token=env:GITHUB_TOKEN"),
    ],
)
def test_the_refusal_example_names_a_variable_that_fits_the_option(
    option: str, example: str
) -> None:
    with pytest.raises(SecretError) as info:
        resolve_secret("postgres://u:p@h/db", option)
    assert f"(e.g. {example})" in str(info.value)


def test_migrate_refuses_a_literal_database_url_with_its_own_example() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "wormhole"
    argv = ["migrate", "--source", str(example), "--database-url", "postgres://u:pw9@h/db"]
    done = subprocess.run(
        [sys.executable, "-m", "wormhole_ci", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "--database-url=env:DATABASE_URL" in done.stderr
    assert "REGISTRY_PASSWORD" not in done.stderr and "pw9" not in done.stderr + done.stdout
