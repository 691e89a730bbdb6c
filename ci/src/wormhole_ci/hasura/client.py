"""A synchronous client of a Hasura engine's metadata API (`POST <url>/v1/metadata`).

Shapes follow https://hasura.io/docs/latest/api-reference/metadata-api/manage-metadata/
and the engine's sources (see tests/hasura/hasura_server.py for what was checked where).
The admin secret travels only in the `X-Hasura-Admin-Secret` header: no message, repr
or log line of this module contains it (messages are also scrubbed of it, in case an
engine echoes it back).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import httpx

from wormhole_ci.errors import HasuraApiError, HasuraConflictError, InconsistentObject
from wormhole_ci.jsonish import as_dict, as_list

__all__ = ["Exported", "HasuraClient", "InconsistentObject", "parse_inconsistent"]

_READ_ATTEMPTS = 3
"""Reads (export, get_inconsistent_metadata) are retried on connection errors and 5xx,
this many attempts in all, within one timeout's worth of extra time."""
_BACKOFF = 0.25
_SECRET_HINT = "check the environment's hasura admin_secret"  # noqa: S105 (a hint, no secret)
_CONFLICT_HINT = (
    "someone edited the metadata (e.g. in the console) since it was exported: reconcile "
    "the repository with the live metadata (`wormhole-ci drift` shows the difference), "
    "then re-run"
)


@dataclass(frozen=True)
class Exported:
    """What `export_metadata` (version 2) answered."""

    resource_version: int
    metadata: dict[str, object]


class HasuraClient:
    """The metadata API of one engine. `url` is the engine's base URL."""

    def __init__(
        self,
        url: str,
        admin_secret: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.endpoint = f"{self.url}/v1/metadata"
        self._secret = admin_secret
        self._timeout = timeout
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"X-Hasura-Admin-Secret": admin_secret},
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"HasuraClient(url={self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HasuraClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------

    def export(self) -> Exported:
        """The live metadata and its resource_version."""
        body = self._read({"type": "export_metadata", "version": 2, "args": {}}, "export_metadata")
        data = as_dict(body) or {}
        version = data.get("resource_version")
        metadata = as_dict(data.get("metadata"))
        if not isinstance(version, int) or metadata is None:
            raise HasuraApiError(
                f"hasura {self.endpoint}: export_metadata answered without resource_version "
                "and metadata; is this a Hasura v2 engine?"
            )
        return Exported(version, metadata)

    def replace(
        self,
        metadata: dict[str, object],
        *,
        resource_version: int | None,
        allow_inconsistent: bool = False,
    ) -> None:
        """`replace_metadata` v2. With a resource_version the engine refuses (409,
        HasuraConflictError) when the live metadata moved since; never retried."""
        request: dict[str, object] = {
            "type": "replace_metadata",
            "version": 2,
            "args": {"allow_inconsistent_metadata": allow_inconsistent, "metadata": metadata},
        }
        if resource_version is not None:
            request["resource_version"] = resource_version
        self._post(request, "replace_metadata")

    def inconsistent(self) -> list[InconsistentObject]:
        """`get_inconsistent_metadata`: the objects the engine cannot serve (empty: consistent)."""
        body = self._read(
            {"type": "get_inconsistent_metadata", "args": {}}, "get_inconsistent_metadata"
        )
        data = as_dict(body) or {}
        return parse_inconsistent(data.get("inconsistent_objects"))

    def reload(self) -> None:
        """`reload_metadata`: rebuild the engine's schema cache from the stored metadata."""
        self._post({"type": "reload_metadata", "args": {}}, "reload_metadata")

    # -- HTTP ---------------------------------------------------------------------------

    def _read(self, request: dict[str, object], what: str) -> object:
        """A read, retried on connection errors and 5xx within a bounded deadline."""
        deadline = time.monotonic() + self._timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._post(request, what)
            except _Retryable as err:
                pause = _BACKOFF * 2 ** (attempt - 1)
                if attempt >= _READ_ATTEMPTS or time.monotonic() + pause > deadline:
                    raise HasuraApiError(str(err)) from None
                self._sleep(pause)

    def _post(self, request: dict[str, object], what: str) -> object:
        try:
            response = self._http.post(self.endpoint, json=request)
        except httpx.TimeoutException:
            raise _Retryable(
                self._scrub(
                    f"hasura {self.endpoint}: {what} timed out after {self._timeout:g} s; check "
                    "that the engine is up and answering (its logs, its database connection)"
                )
            ) from None
        except httpx.TransportError as exc:
            raise _Retryable(
                self._scrub(
                    f"hasura {self.endpoint}: {what} could not connect ({type(exc).__name__}); "
                    "check the environment's hasura url and that the engine is running"
                )
            ) from None
        status = response.status_code
        try:
            body: object = response.json()
        except ValueError:
            body = None
        if status == 200:
            return body
        error = as_dict(body) or {}
        message = str(error.get("error") or response.text[:200] or response.reason_phrase)
        code = str(error.get("code") or "")
        where = f"hasura {self.endpoint}: {what}"
        if status == 401 or code == "access-denied":
            raise HasuraApiError(
                self._scrub(f"{where} refused ({status} {code}: {message}); {_SECRET_HINT}")
            )
        if status == 409:
            raise HasuraConflictError(
                self._scrub(f"{where} refused (409 {code}: {message}); {_CONFLICT_HINT}")
            )
        if status >= 500:
            raise _Retryable(
                self._scrub(f"{where} failed ({status}: {message}); check the engine's logs")
            )
        inconsistent = parse_inconsistent(error.get("internal"))
        detail = "".join(f"\n  {o}" for o in inconsistent)
        raise HasuraApiError(
            self._scrub(f"{where} refused ({status} {code}: {message}){detail}"),
            inconsistent=inconsistent,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


class _Retryable(HasuraApiError):
    """A connection error, timeout or 5xx: worth another read attempt."""


def parse_inconsistent(raw: object) -> list[InconsistentObject]:
    """Hasura's inconsistent objects ({type, name, reason, definition}) as dataclasses."""
    out: list[InconsistentObject] = []
    for item in as_list(raw) or []:
        entry = as_dict(item)
        if entry is None:
            continue
        out.append(
            InconsistentObject(
                type=str(entry.get("type") or "object"),
                name=str(entry.get("name") or entry.get("type") or "unnamed object"),
                reason=str(entry.get("reason") or "no reason given"),
            )
        )
    return out
