import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from runner.config import Settings
from runner.logs import HANDLER_NAME, PLATFORM_FIELDS, configure_logging, json_formatter, rfc3339


def make_record(level: int, message: str, *args: object, **extra: object) -> logging.LogRecord:
    return logging.getLogger("runner.test").makeRecord(
        "runner.test", level, __file__, 1, message, args, None, extra=extra
    )


def test_formatter_writes_one_json_object_with_the_platform_fields() -> None:
    record = make_record(
        logging.WARNING, "step %s slow", "s1", run_id="r-1", tenant_id="t-1", step="s1"
    )
    line = json_formatter("3f2c1ab").format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert list(entry) == [*PLATFORM_FIELDS, "logger", "version", "step"]
    assert entry == {
        "time": entry["time"],
        "level": "WARNING",
        "service": "runner",
        "tenant_id": "t-1",
        "run_id": "r-1",
        "message": "step s1 slow",
        "logger": "runner.test",
        "version": "3f2c1ab",
        "step": "s1",
    }
    # RFC 3339, UTC, milliseconds
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    moment = datetime.fromisoformat(entry["time"])
    assert moment.utcoffset() == timedelta(0)
    assert moment.timestamp() == pytest.approx(record.created, abs=1e-3)


def test_absent_ids_and_message_are_null() -> None:
    entry = json.loads(json_formatter("dev").format(make_record(logging.INFO, "")))
    assert {key: entry[key] for key in ("tenant_id", "run_id", "message")} == {
        "tenant_id": None,
        "run_id": None,
        "message": None,
    }
    assert entry["service"] == "runner"


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1_796_148_600.5) == "2026-12-01T18:10:00.500Z"


def test_formatter_includes_the_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("runner.test").makeRecord(
            "runner.test", logging.ERROR, __file__, 1, "crashed", (), sys.exc_info()
        )
    entry = json.loads(json_formatter("dev").format(record))
    assert entry["message"] == "crashed"
    assert "RuntimeError: boom" in entry["exc_info"]


@pytest.fixture
def restore_root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level = root.level
    try:
        yield root
    finally:
        for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
            root.removeHandler(handler)
        root.setLevel(level)


def test_configure_logging_sends_json_lines_at_the_configured_level(
    restore_root_logger: logging.Logger,
) -> None:
    first, stream = io.StringIO(), io.StringIO()
    configure_logging(Settings(build_sha="abc", log_level="WARNING"), stream=first)
    handler = configure_logging(Settings(build_sha="abc", log_level="WARNING"), stream=stream)
    assert restore_root_logger.level == logging.WARNING
    assert handler in restore_root_logger.handlers
    assert [h.get_name() for h in restore_root_logger.handlers].count(HANDLER_NAME) == 1

    logger = logging.getLogger("runner.somewhere")
    logger.info("not shown")
    logger.warning("shown", extra={"run_id": "r-9"})
    logger.error("also shown")

    assert first.getvalue() == ""
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["level"], e["message"]) for e in entries] == [
        ("WARNING", "shown"),
        ("ERROR", "also shown"),
    ]
    assert entries[0]["run_id"] == "r-9"
    assert entries[1]["run_id"] is None
    assert {(e["service"], e["version"], e["logger"]) for e in entries} == {
        ("runner", "abc", "runner.somewhere")
    }
