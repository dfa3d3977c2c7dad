"""Logs that carry ids, hashes and counts, never PHI, as text or as JSON lines.

Three rules make a log line safe whatever a caller passes:
- extra fields: numbers and booleans pass; strings pass only under names that hold our
  own ids (``correlation_id``, ``partner``, ``stage``...); any other string becomes a
  short SHA-256 (``sha256:…``), which still joins lines up but reveals nothing;
- exceptions are written as their types and stack frames, never their messages (a
  parser's message can quote the input);
- trace context (W3C ``traceparent``) and the correlation id are bound per invocation
  (``log_context``), so every line of one ingestion, in every stage, carries the same
  ``trace_id`` (the OpenTelemetry log fields ``trace_id``/``span_id``).
Messages themselves are our constant format strings; the PHI canary test
(tests/e2e/test_phi_canary.py) pushes identifying values through every path and reads
every line the host wrote.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import re
import secrets
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

__all__ = [
    "JsonFormatter",
    "SafeTextFormatter",
    "bound_to",
    "configure_logging",
    "log_context",
    "new_traceparent",
    "safe_fields",
    "trace_ids",
]

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}\Z")
_SAFE_STRINGS = frozenset(
    {
        "correlation_id",
        "partner",
        "stage",
        "outcome",
        "subscription",
        "resource_type",
        "format",
        "mapping",
        "queue",
        "function",
        "invocation_id",
        "ingestion_id",
        "upload_id",
        "trace_id",
        "span_id",
        "job",
        "kind",
        "channel",  # http, mllp, queue
        "peer",  # an interface engine's address and port (a system's, not a person's)
    }
)
# LogRecord's own attributes: everything else on a record came in through ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "log_context", default=()
)


def new_traceparent() -> str:
    """A fresh W3C trace context (a new trace, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_ids(traceparent: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a valid ``traceparent``, else None."""
    found = _TRACEPARENT.match((traceparent or "").strip().lower())
    if not found or set(found[1]) == {"0"} or set(found[2]) == {"0"}:
        return None
    return found[1], found[2]


@contextlib.contextmanager
def log_context(
    correlation_id: str | None = None,
    partner: str | None = None,
    traceparent: str | None = None,
) -> Iterator[None]:
    """Bind ids to every log line written inside the block (this thread or task)."""
    bound = dict(_context.get())
    if correlation_id:
        bound["correlation_id"] = correlation_id
    if partner:
        bound["partner"] = partner
    ids = trace_ids(traceparent)
    if ids:
        bound["trace_id"], bound["span_id"] = ids
    token = _context.set(tuple(bound.items()))
    try:
        yield
    finally:
        _context.reset(token)


class _Traced(Protocol):
    """What a queue envelope tells about its ingestion."""

    @property
    def correlation_id(self) -> str: ...

    @property
    def partner(self) -> str: ...

    @property
    def traceparent(self) -> str | None: ...


def bound_to(envelope: _Traced) -> contextlib.AbstractContextManager[None]:
    """``log_context`` for the ingestion a queue envelope belongs to."""
    return log_context(envelope.correlation_id, envelope.partner, envelope.traceparent)


def _digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:12]


def safe_fields(record: logging.LogRecord) -> dict[str, Any]:
    """A record's bound ids and extra fields as they may leave the process: numbers,
    booleans and our id fields as they are, any other value hashed (the stderr formatters
    and the OpenTelemetry log export both write these, and only these)."""
    fields: dict[str, Any] = dict(_context.get())
    for name, value in vars(record).items():
        if name in _RECORD_FIELDS or name.startswith("_"):
            continue
        if (
            value is None
            or isinstance(value, bool | int | float)
            or (isinstance(value, str) and name in _SAFE_STRINGS)
        ):
            fields[name] = value
        else:
            fields[name] = _digest(str(value))
    return fields


def _safe_exception(
    info: tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None],
) -> str:
    """Exception types and frames, causes included; never the messages."""
    _, exc, _ = info
    parts: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = traceback.extract_tb(exc.__traceback__)
        where = " <- ".join(
            f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames[-6:]
        )
        parts.append(f"{type(exc).__module__}.{type(exc).__qualname__} at {where or '?'}")
        exc = exc.__cause__ or exc.__context__
    return "; caused by ".join(parts)


class SafeTextFormatter(logging.Formatter):
    """``[time] message key=value ...`` for people; the same safety rules as JSON."""

    def __init__(self) -> None:
        super().__init__("[%(asctime)s] %(message)s", "%Y-%m-%dT%H:%M:%S")

    def formatException(self, ei: Any) -> str:
        return "  exception: " + _safe_exception(ei)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = safe_fields(record)
        if not fields:
            return text
        first, _, rest = text.partition("\n")
        extras = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{first} {extras}" + (f"\n{rest}" if rest else "")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, bound ids, safe fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **safe_fields(record),
        }
        if record.exc_info:
            line["exception"] = _safe_exception(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(*, json_lines: bool, verbose: bool = False) -> None:
    """Send every log record to stderr through a safe formatter (local host, CLI)."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else SafeTextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("azure", "aiohttp.access", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
