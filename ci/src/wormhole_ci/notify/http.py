"""One bounded, retried JSON request for the status reporters (GitHub, webhooks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from wormhole_ci.errors import WormholeCiError
from wormhole_ci.jsonish import as_dict
from wormhole_ci.secretref import redact

Say = Callable[[str], None]


class NotifyError(WormholeCiError):
    """A status report that did not get through (always turned into a warning by callers)."""


@dataclass(frozen=True)
class Retry:
    """How long one report may keep trying: a status is never worth holding a release up."""

    deadline: float = 30.0
    """Seconds for one request, all attempts included."""
    first_delay: float = 0.5
    max_delay: float = 5.0
    timeout: float = 10.0
    """Seconds for one attempt (capped by what is left of the deadline)."""


@dataclass
class JsonClient:
    """Sends JSON with retries on 5xx, 429 and connection errors, until `retry.deadline`;
    any other answer is final. Errors name `what`, never a URL (webhook URLs are secrets)."""

    client: httpx.Client
    retry: Retry
    hidden: tuple[str, ...] = ()
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        body: object = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The 2xx response, or NotifyError with the last status or error."""
        end = self.clock() + self.retry.deadline
        delay, attempts, last = self.retry.first_delay, 0, ""
        while True:
            attempts += 1
            left = end - self.clock()
            try:
                response = self.client.request(
                    method,
                    url,
                    json=body,
                    params=params,
                    headers=headers,
                    timeout=max(0.1, min(self.retry.timeout, left)),
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                # The exception text can carry the URL (a credential for webhooks): only its
                # type is kept. A malformed URL is retried pointlessly but stays bounded.
                last, wait = f"{type(exc).__name__} (no answer)", delay
            else:
                if response.is_success:
                    return response
                last = f"HTTP {response.status_code}: {_message(response)}"
                if response.status_code < 500 and response.status_code != 429:
                    break
                wait = _retry_after(response) or delay
            if self.clock() + wait >= end:
                break
            self.sleep(wait)
            delay = min(delay * 2, self.retry.max_delay)
        raise NotifyError(
            redact(
                f"{what}: {last} after {attempts} attempt(s) within {self.retry.deadline:g} s",
                *self.hidden,
            )
        )


def _message(response: httpx.Response) -> str:
    """GitHub's `message` field, else the start of the body."""
    try:
        data: object = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    message = (as_dict(data) or {}).get("message")
    return message[:200] if isinstance(message, str) else response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None
