"""Safe log lines: strings only under id names, exceptions without messages, bound ids."""

from __future__ import annotations

import json
import logging

from shared.platform.logs import (
    JsonFormatter,
    SafeTextFormatter,
    log_context,
    new_traceparent,
    trace_ids,
)

CANARY = "Zyxcanary Qwertania"


def record(
    msg: str = "stage: done", exc: BaseException | None = None, **extra: object
) -> logging.LogRecord:
    found = logging.makeLogRecord(
        {"name": "shared.test", "levelno": 20, "levelname": "INFO", "msg": msg}
    )
    for name, value in extra.items():
        setattr(found, name, value)
    if exc is not None:
        found.exc_info = (type(exc), exc, exc.__traceback__)
    return found


def failing() -> BaseException:
    try:
        try:
            raise ValueError(f"bad name {CANARY}")
        except ValueError as inner:
            raise RuntimeError(f"wrapping {CANARY}") from inner
    except RuntimeError as exc:
        return exc


def test_json_lines_keep_ids_and_numbers_and_hash_other_strings() -> None:
    line = json.loads(
        JsonFormatter().format(
            record(stage="normalize", correlation_id="ing-1", records=3, name_of=CANARY, ok=True)
        )
    )
    assert line["stage"] == "normalize" and line["correlation_id"] == "ing-1"
    assert line["records"] == 3 and line["ok"] is True
    assert line["name_of"].startswith("sha256:") and CANARY not in json.dumps(line)
    assert line["level"] == "INFO" and line["message"] == "stage: done"


def test_exceptions_are_types_and_frames_never_messages() -> None:
    for formatter in (JsonFormatter(), SafeTextFormatter()):
        text = formatter.format(record("failed", exc=failing()))
        assert "RuntimeError" in text and "ValueError" in text and "failing" in text
        assert CANARY not in text


def test_context_binds_correlation_and_trace_to_every_line() -> None:
    parent = new_traceparent()
    trace, span = trace_ids(parent) or ("", "")
    with log_context("ing-9", "lab", parent):
        line = json.loads(JsonFormatter().format(record()))
    assert (line["correlation_id"], line["partner"], line["trace_id"], line["span_id"]) == (
        "ing-9",
        "lab",
        trace,
        span,
    )
    assert "trace_id" not in json.loads(JsonFormatter().format(record()))  # unbound after


def test_traceparent_validation() -> None:
    assert trace_ids(new_traceparent()) is not None
    assert trace_ids("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None  # all-zero trace id
    assert trace_ids("garbage\r\nX-Injected: 1") is None
    assert trace_ids(None) is None
