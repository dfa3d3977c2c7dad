"""Storage that answers "server busy" for good: each client tries three times and gives
up within seconds (the SDK defaults wait about a minute), so an HTTP caller gets its 503
while it is still waiting and a stage's message goes back to its queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from shared.platform.settings import Settings
from shared.platform.storage import StorageClients, build_storage_clients


class _Busy(BaseHTTPRequestHandler):
    """Every request: 503 Server Busy, as Azure Storage says when it throttles."""

    hits = 0

    def _busy(self) -> None:
        type(self).hits += 1
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        body = b"<?xml version='1.0'?><Error><Code>ServerBusy</Code></Error>"
        self.send_response(503)
        self.send_header("x-ms-error-code", "ServerBusy")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_PATCH = do_MERGE = do_DELETE = _busy

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def busy_storage() -> Iterator[StorageClients]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/devstoreaccount1"
    conn = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
        f"KBHBeksoGMGw==;BlobEndpoint={base};QueueEndpoint={base};TableEndpoint={base};"
    )
    _Busy.hits = 0
    yield build_storage_clients(Settings(AzureWebJobsStorage=conn))  # type: ignore[call-arg]
    server.shutdown()
    server.server_close()


CALLS: dict[str, Callable[[StorageClients], Any]] = {
    "blob": lambda c: c.blob.get_container_client("raw").upload_blob("a", b"x", overwrite=True),
    "queue": lambda c: c.queue_client("normalize").send_message(b"x"),
    "table": lambda c: c.table.get_table_client("ingestions").upsert_entity(
        {"PartitionKey": "p", "RowKey": "r"}
    ),
}


@pytest.mark.parametrize("service", sorted(CALLS))
def test_busy_storage_is_tried_three_times_then_given_up(
    busy_storage: StorageClients, service: str
) -> None:
    started = time.monotonic()
    with pytest.raises(HttpResponseError) as caught:
        CALLS[service](busy_storage)
    elapsed = time.monotonic() - started
    assert caught.value.status_code == 503
    assert _Busy.hits == 3  # the first try and two retries
    assert elapsed < 20, f"{service} took {elapsed:.1f} s to give up"  # SDK default: ~60 s
