"""What the console reads from storage: journey rows by filter, the head of a payload
blob, a quarantine folder, and poison queues' first messages (peeked, never taken)."""

from __future__ import annotations

import base64
import binascii
import itertools
import time
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.platform.names import Container, Queue, poison_queue
from shared.platform.storage import StorageClients, storage_errors

__all__ = ["SCAN_SECONDS", "StorageConsoleReader", "TableIngestionRows"]

SCAN_SECONDS = 10.0  # a search's or a window's reading, at most (a page must come back)


class TableIngestionRows:
    """``IngestionRows`` on the ``ingestions`` table.

    A filter on anything but the partition makes the Table service scan every partition,
    answering in pages (and, on a large table, empty pages with a continuation) until it
    is done; a page view stops reading after ``budget`` seconds and says it did.
    """

    def __init__(self, table: TableClient, budget: float = SCAN_SECONDS) -> None:
        self._table = table
        self._budget = budget

    def find(
        self, query: str, parameters: Mapping[str, Any], limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        deadline = time.monotonic() + self._budget
        found: list[dict[str, Any]] = []
        with storage_errors("searching ingestions"):
            rows = (
                self._table.query_entities(query, parameters=dict(parameters), results_per_page=500)
                if query
                else self._table.list_entities(results_per_page=500)
            )
            for page in rows.by_page():
                found.extend(dict(r) for r in page)
                if len(found) >= limit or time.monotonic() > deadline:
                    return found[:limit], False
        return found, True

    def get(self, partner: str, ingestion_id: str) -> dict[str, Any] | None:
        with storage_errors("reading an ingestion"):
            try:
                return dict(self._table.get_entity(partner, ingestion_id))
            except ResourceNotFoundError:
                return None


class StorageConsoleReader:
    """Blobs and queues as the console shows them."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    def head(self, container: Container, name: str, limit: int) -> tuple[bytes, int] | None:
        """The first ``limit`` bytes of a blob and its size, or None if it is gone."""
        blob = self._clients.container(container).get_blob_client(name)
        with storage_errors("reading a payload"):
            try:
                downloader = blob.download_blob(offset=0, length=limit)
                data = downloader.readall()
            except ResourceNotFoundError:
                return None
        # A ranged read's size is the range's; the whole blob's is after the slash.
        whole = str(downloader.properties.content_range or "").rpartition("/")[2]
        return data, int(whole) if whole.isdigit() else len(data)

    def names(self, container: Container, prefix: str, limit: int) -> list[str]:
        """The first ``limit`` blob names under a prefix."""
        client = self._clients.container(container)
        with storage_errors("listing blobs"):
            return [b.name for b in itertools.islice(client.list_blobs(prefix), limit)]

    def peek(self, queue: Queue, limit: int) -> list[tuple[bytes, Any, int]]:
        """(body, inserted, dequeue count) of the first messages of ``queue``'s poison
        queue, left where they are."""
        name = self._clients.queue_client(poison_queue(queue)).queue_name
        client = self._clients.queue.get_queue_client(name)  # text as stored: decoded below
        with storage_errors("peeking a poison queue"):
            try:
                found = client.peek_messages(max_messages=limit)
            except ResourceNotFoundError:
                return []
            return [(_body(m.content), m.inserted_on, int(m.dequeue_count or 0)) for m in found]


def _body(content: object) -> bytes:
    """A message's body: base64 as our stages write it, else its text as it is (a
    poison queue may hold a message nobody could read, and the page must still show)."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return text.encode()
