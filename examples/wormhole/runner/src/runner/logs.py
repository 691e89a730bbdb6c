"""Structured logging: one JSON object per line on stderr, via ``python-json-logger``.

Every line has ``level``, ``logger``, ``message``, ``service`` (``"runner"``), ``version``
(``BUILD_SHA`` or ``"dev"``) and ``timestamp`` (ISO 8601, UTC). Context passed with
``extra=`` (``run_id``, ``tenant_id``, ``step``, ``duration_ms``, ...) becomes top-level
fields, and a logged exception becomes ``exc_info``.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from runner.config import Settings

SERVICE = "runner"
HANDLER_NAME = "runner-json"


def json_formatter(version: str) -> logging.Formatter:
    """The formatter behind :func:`configure_logging`, for a given build ``version``."""
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields={"service": SERVICE, "version": version},
        timestamp=True,
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
