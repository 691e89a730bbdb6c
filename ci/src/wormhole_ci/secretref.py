"""Secret references for the native CLI: `env:NAME` and `file:PATH`, as `dagger call` takes them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from wormhole_ci.errors import SecretError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REDACTED = "***"


@dataclass(frozen=True)
class Secret:
    """A resolved secret. Its repr and str never show the value; `.reveal()` does."""

    source: str
    """Where it came from (`env:NAME` or `file:PATH`): safe to print."""
    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


_EXAMPLE_VARIABLES = {"--password": "REGISTRY_PASSWORD"}
"""Options whose own name would make a vague variable name (PASSWORD: of what?)."""


def example_variable(option: str) -> str:
    """The variable an error's example names for `option`: `--database-url` -> DATABASE_URL,
    `--password` -> REGISTRY_PASSWORD (the registry's)."""
    name = option.lstrip("-").rsplit(".", 1)[-1]  # a manifest field: its last part
    return _EXAMPLE_VARIABLES.get(option) or name.upper().replace("-", "_")


def resolve_secret(ref: str, option: str) -> Secret:
    """Resolve `env:NAME` / `file:PATH`; a bare value is refused so it never reaches
    the process list or shell history (the error never repeats the value)."""
    kind, sep, target = ref.partition(":")
    if not sep or kind not in ("env", "file") or not target:
        raise SecretError(
            f"{option}: expected a secret reference env:NAME or file:PATH; a secret passed "
            "literally would end up in the process list and shell history "
            f"(e.g. {option}=env:{example_variable(option)})"
        )
    if kind == "env":
        if not _ENV_NAME.match(target):
            raise SecretError(f"{option}: env:{target!s:.40} is not a variable name")
        value = os.environ.get(target)
        if value is None or value == "":
            raise SecretError(f"{option}: environment variable {target} is not set or empty")
        return Secret(f"env:{target}", value)
    path = Path(target).expanduser()
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SecretError(f"{option}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise SecretError(f"{option}: {path} is empty")
    return Secret(f"file:{path}", value)


def redact(text: str, *secrets: Secret | str | None) -> str:
    """`text` with every secret value (and its URL-encoded form) replaced by ***."""
    for secret in secrets:
        if secret is None:
            continue
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if len(value) < 3:  # too short to scrub without mangling the text; never expected
            continue
        for form in {value, quote(value, safe="")}:
            text = text.replace(form, REDACTED)
    return text
