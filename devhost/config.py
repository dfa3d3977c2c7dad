"""Reads ``host.json`` and ``local.settings.json`` into typed options.

Defaults are the Functions runtime's own, so a setting left out behaves as in Azure.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "HostConfigError",
    "HostOptions",
    "HttpOptions",
    "LocalSettings",
    "QueueOptions",
    "apply_values",
    "load_host_options",
    "load_local_settings",
    "parse_timespan",
]

_TIMESPAN = re.compile(
    r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)\Z"
)
DEFAULT_BODY_LIMIT = 100 * 1024 * 1024  # FUNCTIONS_REQUEST_BODY_SIZE_LIMIT's default


class HostConfigError(ValueError):
    """host.json or local.settings.json is malformed; the message names the setting."""


def parse_timespan(value: Any, *, setting: str, ms_integers: bool = False) -> float:
    """Seconds from a .NET TimeSpan string (``[d.]hh:mm:ss[.fff]``), as host.json writes them.

    Args:
        value: the setting's value.
        setting: its name, for the error message.
        ms_integers: accept a bare number as milliseconds (``maxPollingInterval`` does).
    """
    if ms_integers and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000
    match = _TIMESPAN.match(str(value).strip()) if isinstance(value, str) else None
    if not match:
        raise HostConfigError(f"{setting}: expected a time span like 00:00:30, got {value!r}")
    days = int(match["d"] or 0)
    return days * 86400 + int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """``extensions.http`` and the request body limit."""

    route_prefix: str = "api"
    max_outstanding_requests: int = -1  # -1: unbounded
    max_concurrent_requests: int = -1
    max_body_bytes: int = DEFAULT_BODY_LIMIT


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """``extensions.queues``, with the runtime's defaults."""

    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    message_encoding: str = "base64"


@dataclass(frozen=True, slots=True)
class HostOptions:
    """Everything the host takes from host.json."""

    http: HttpOptions = field(default_factory=HttpOptions)
    queues: QueueOptions = field(default_factory=QueueOptions)
    function_timeout: float | None = 300.0


def _int(section: dict[str, Any], key: str, default: int, *, low: int, high: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise HostConfigError(f"{key}: expected a whole number from {low} to {high}, got {value!r}")
    return value


def load_host_options(path: Path, environ: dict[str, str] | None = None) -> HostOptions:
    """Read host.json (a missing file means all defaults).

    Raises:
        HostConfigError: the file is not JSON or a setting is out of range.
    """
    env = os.environ if environ is None else environ
    doc: dict[str, Any] = {}
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise HostConfigError(
                f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})"
            ) from exc
    extensions = doc.get("extensions", {})
    http = extensions.get("http", {})
    queues = extensions.get("queues", {})
    batch_size = _int(queues, "batchSize", 16, low=1, high=32)
    body_limit = env.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "")
    timeout = doc.get("functionTimeout", "00:05:00")
    encoding = str(queues.get("messageEncoding", "base64")).lower()
    if encoding not in {"base64", "none"}:
        raise HostConfigError(f"messageEncoding: expected base64 or none, got {encoding!r}")
    return HostOptions(
        http=HttpOptions(
            route_prefix=str(http.get("routePrefix", "api")).strip("/"),
            max_outstanding_requests=_int(http, "maxOutstandingRequests", -1, low=-1, high=10**6),
            max_concurrent_requests=_int(http, "maxConcurrentRequests", -1, low=-1, high=10**6),
            max_body_bytes=int(body_limit) if body_limit.isdigit() else DEFAULT_BODY_LIMIT,
        ),
        queues=QueueOptions(
            max_polling_interval=max(
                0.1,
                parse_timespan(
                    queues.get("maxPollingInterval", "00:01:00"),
                    setting="maxPollingInterval",
                    ms_integers=True,
                ),
            ),
            visibility_timeout=parse_timespan(
                queues.get("visibilityTimeout", "00:00:00"), setting="visibilityTimeout"
            ),
            batch_size=batch_size,
            new_batch_threshold=_int(
                queues, "newBatchThreshold", batch_size // 2, low=0, high=10**4
            ),
            max_dequeue_count=_int(queues, "maxDequeueCount", 5, low=1, high=10**4),
            message_encoding=encoding,
        ),
        function_timeout=None
        if timeout in (None, "-1")
        else parse_timespan(timeout, setting="functionTimeout"),
    )


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """``local.settings.json``: app settings plus the local host's function keys."""

    values: dict[str, str] = field(default_factory=dict)
    function_keys: dict[str, str] = field(default_factory=dict)
    master_key: str | None = None
    port: int | None = None


def apply_values(local: LocalSettings) -> None:
    """Put local app settings into the environment; variables already set win, as in Azure."""
    for name, value in local.values.items():
        os.environ.setdefault(name, value)


def load_local_settings(path: Path) -> LocalSettings:
    """Read local.settings.json (missing file: empty settings).

    Keys live in a ``DevHost`` section that the real Core Tools ignore:
    ``{"DevHost": {"FunctionKeys": {"default": "..."}, "MasterKey": "..."}}``.

    Raises:
        HostConfigError: the file is not JSON or a section has the wrong shape.
    """
    if not path.exists():
        return LocalSettings()
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise HostConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    values = doc.get("Values", {})
    dev = doc.get("DevHost", {})
    keys = dev.get("FunctionKeys", {})
    if not isinstance(values, dict) or not isinstance(keys, dict):
        raise HostConfigError(f"{path}: Values and DevHost.FunctionKeys must be objects")
    port = doc.get("Host", {}).get("LocalHttpPort")
    return LocalSettings(
        values={str(k): str(v) for k, v in values.items()},
        function_keys={str(k): str(v) for k, v in keys.items() if v},
        master_key=dev.get("MasterKey") or None,
        port=int(port) if port else None,
    )
