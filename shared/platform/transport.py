"""The HTTP transport of every storage client the stages use.

Four things the Azure SDK's default transport does not do, in the one place every
request passes:
- no look-up of proxy and netrc settings on each request (``use_env_settings=False``): it
  was 8.5 % of the host's GIL time, and storage is never reached through a proxy here;
- the name of the invoking function in the User-Agent (``fhir-intake-function/<name>``):
  Azure Storage logs record the User-Agent, so requests can be counted per stage there,
  and ``make bench-ops`` counts them locally the same way;
- a count of the requests each message or HTTP request costs (``telemetry``: the
  ``fhir_intake.storage.operations`` histogram and the span's ``storage_operations``);
- a process-local notice of each message enqueued, so a host that runs the next stage's
  listener in the same process polls that queue at once instead of after its back-off
  (the Functions host does the same for messages its own output bindings write).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from azure.core.pipeline.transport import RequestsTransport

from .telemetry import count_storage_request

__all__ = [
    "FUNCTION_AGENT",
    "StorageTransport",
    "invoking",
    "on_enqueue",
]

FUNCTION_AGENT = "fhir-intake-function/"
_function: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "invoking_function", default=None
)
_listeners: list[Callable[[str], None]] = []
_listeners_lock = threading.Lock()


@contextlib.contextmanager
def invoking(function: str) -> Iterator[None]:
    """Storage requests made inside the block carry ``function`` in their User-Agent."""
    token = _function.set(function)
    try:
        yield
    finally:
        _function.reset(token)


def on_enqueue(listener: Callable[[str], None]) -> Callable[[], None]:
    """From now on ``listener`` hears the physical name of every queue a message was just
    added to from this process (on the sending thread: keep it short); call what this
    returns to stop."""
    with _listeners_lock:
        _listeners.append(listener)

    def stop() -> None:
        with _listeners_lock:
            _listeners.remove(listener)

    return stop


class StorageTransport(RequestsTransport):  # type: ignore[misc]
    """``RequestsTransport`` without environment settings, tagging and announcing."""

    def __init__(self, **options: Any) -> None:
        super().__init__(use_env_settings=False, **options)

    def send(self, request: Any, **kwargs: Any) -> Any:
        function = _function.get()
        if function is not None:
            agent = request.headers.get("User-Agent", "")
            request.headers["User-Agent"] = f"{agent} {FUNCTION_AGENT}{function}".lstrip()
        count_storage_request()
        response = super().send(request, **kwargs)
        if _listeners and request.method == "POST" and response.status_code == 201:
            path = urlsplit(request.url).path.rstrip("/")
            if path.endswith("/messages"):
                _announce(path.rsplit("/", 2)[-2])
        return response


def _announce(queue: str) -> None:
    with _listeners_lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(queue)
