"""A FHIR server stand-in on loopback for forwarding tests: answers batch POSTs from a
script (whole-batch answers, or a status per entry) and records what it received."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.serving import serve

Answer = Callable[[dict[str, Any]], tuple[int, dict[str, str], dict[str, Any] | None]]


def batch_response(statuses: list[str]) -> dict[str, Any]:
    """A batch-response Bundle with these entry statuses."""
    return {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [{"response": {"status": s}} for s in statuses],
    }


class FhirStub:
    """Received batches (with arrival times), answered from ``script`` in turn; when the
    script runs out, every entry is accepted."""

    def __init__(self, script: list[Answer]) -> None:
        self.script = list(script)
        self.received: list[tuple[float, dict[str, Any], dict[str, str]]] = []
        self.url = ""

    def answer(self, batch: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        if self.script:
            return self.script.pop(0)(batch)
        return 200, {}, batch_response(["201 Created"] * len(batch.get("entry", [])))


@contextmanager
def fhir_stub(script: list[Answer]) -> Iterator[FhirStub]:
    """Serve a stub on 127.0.0.1 (a free port) for the ``with`` block."""
    stub = FhirStub(script)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            batch = json.loads(self.rfile.read(length) or b"{}")
            stub.received.append((time.monotonic(), batch, dict(self.headers)))
            status, headers, body = stub.answer(batch)
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in {"content-type": "application/fhir+json", **headers}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    with serve(Handler) as url:
        stub.url = f"{url}/fhir"
        yield stub
