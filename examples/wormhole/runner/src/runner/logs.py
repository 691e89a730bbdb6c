"""Structured logging: one JSON object per line on stderr, via ``python-json-logger``.

Every line starts with the platform's log fields, the same in every Wormhole service:

``time``
    RFC 3339, UTC, milliseconds (``2026-12-01T18:30:00.123Z``).
``level``
    ``DEBUG`` … ``CRITICAL``.
``service``
    ``"runner"`` (the BullMQ worker runs in this process, so its lines say ``runner`` too).
``tenant_id``, ``run_id``
    from ``extra=``; ``null`` when the event has none.
``message``
    the formatted message; ``null`` when empty.

Then ``logger``, ``version`` (``BUILD_SHA`` or ``"dev"``), any other context passed with
``extra=`` (``job_id``, ``step``, ``duration_ms``, ...) and, for a logged exception,
``exc_info``.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from runner.config import Settings

SERVICE = "runner"
HANDLER_NAME = "runner-json"
PLATFORM_FIELDS = ("time", "level", "service", "tenant_id", "run_id", "message")
"""The keys every line of every Wormhole service starts with, in this order."""


def rfc3339(timestamp: float) -> str:
    """``timestamp`` (seconds since the epoch) as RFC 3339 UTC with milliseconds and ``Z``."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PlatformJsonFormatter(JsonFormatter):
    """python-json-logger's formatter with the platform fields first and always present."""

    def add_fields(
        self,
        log_data: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        fields: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "service": SERVICE,
            "tenant_id": log_data.pop("tenant_id", None),
            "run_id": log_data.pop("run_id", None),
            "message": log_data.pop("message", None) or None,
        }
        for key in ("levelname", "level", "service"):
            log_data.pop(key, None)
        rest = dict(log_data)
        log_data.clear()
        log_data.update(fields)
        log_data.update(rest)


def json_formatter(version: str) -> logging.Formatter:
    """The formatter behind :func:`configure_logging`, for a given build ``version``."""
    return PlatformJsonFormatter(
        ["message", "name"],
        rename_fields={"name": "logger"},
        static_fields={"version": version},
    )


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Send all log records at ``settings.log_level`` and above to ``stream`` (stderr) as JSON.

    Calling it again replaces the handler it installed before; other handlers are left alone.
    """
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(json_formatter(settings.build_sha))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    return handler
