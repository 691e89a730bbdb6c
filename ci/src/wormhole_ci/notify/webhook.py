"""Release outcomes to a Slack incoming webhook or a generic JSON webhook.

Slack: `POST <webhook URL>` with `Content-Type: application/json` and `{"text": ...}`; it
answers 200 `ok` (api.slack.com/messaging/webhooks, docs.slack.dev "Incoming webhooks").
A generic webhook gets the release as one JSON object (`webhook_payload`). The URL is a
credential (Slack's holds its token): it is never printed, and errors name only its variable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from wormhole_ci.notify.http import JsonClient, Retry
from wormhole_ci.secretref import Secret


@dataclass(frozen=True)
class Message:
    """One announcement: the chat line and the structured event."""

    text: str
    event: Mapping[str, object]


class Webhook:
    """Posts messages to one webhook (`kind` slack or webhook); raises NotifyError."""

    def __init__(
        self,
        kind: str,
        url: Secret,
        *,
        retry: Retry | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind, self.url = kind, url
        client = httpx.Client(transport=transport, headers={"User-Agent": "wormhole-ci"})
        self.http = JsonClient(client, retry or Retry(), (url.reveal(),), sleep=sleep, clock=clock)

    def close(self) -> None:
        self.http.client.close()

    def send(self, message: Message) -> None:
        body: object = {"text": message.text} if self.kind == "slack" else dict(message.event)
        self.http.send("POST", self.url.reveal(), f"{self.kind} webhook ({self.url})", body=body)
