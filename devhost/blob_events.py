"""Stands in for Event Grid: announces new blobs in a container on a storage queue.

In Azure an Event Grid subscription delivers ``Microsoft.Storage.BlobCreated`` events
for ``ingest-drop`` to the ``blob-created`` queue (base64, Event Grid schema).
Azurite emits no events, so this watcher lists the container and enqueues the same
event once per new blob (or new version of a blob: a changed ETag). What it has
announced is kept in a table, so a restart announces nothing twice; like Event Grid
it is at-least-once if the host dies between enqueueing and recording.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import BlobProperties

from shared.platform.names import Table

from .storage import HostStorage

__all__ = ["BlobEventSource", "blob_created_event"]

log = logging.getLogger("devhost")
_TOPIC = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
    "/providers/Microsoft.Storage/storageAccounts/{account}"
)


def blob_created_event(
    account: str, container: str, blob: BlobProperties, url: str
) -> dict[str, Any]:
    """An Event Grid schema ``Microsoft.Storage.BlobCreated`` event for a blob."""
    settings = blob.content_settings
    return {
        "topic": _TOPIC.format(account=account),
        "subject": f"/blobServices/default/containers/{container}/blobs/{blob.name}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": str(uuid.uuid4()),
        "eventTime": (blob.last_modified or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "data": {
            "api": "PutBlob",
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": blob.etag,
            "contentType": settings.content_type if settings else None,
            "contentLength": blob.size,
            "blobType": "BlockBlob",
            "url": url,
            "sequencer": f"{int((blob.last_modified or datetime.now(UTC)).timestamp() * 1e6):032x}",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
        "dataVersion": "",
        "metadataVersion": "1",
    }


class BlobEventSource:
    """Watches one container and enqueues BlobCreated events on one queue."""

    def __init__(
        self,
        storage: HostStorage,
        container: str,
        queue: str,
        *,
        interval: float = 1.0,
        on_enqueue: Callable[[str], None] | None = None,
    ) -> None:
        self._storage = storage
        self._container_name = container
        self._queue_name = queue
        self._interval = interval
        self._on_enqueue = on_enqueue
        self._container = storage.container(container)
        self._queue = storage.queue_client(queue)
        self._seen_table = storage.table_client(Table.DEVHOST_BLOB_EVENTS)
        self._seen: dict[str, str] = {}
        self._stopping = asyncio.Event()

    async def prepare(self) -> None:
        """Create what the watcher needs and load what it announced before."""
        for create in (
            self._container.create_container,
            self._queue.create_queue,
            self._seen_table.create_table,
        ):
            with contextlib.suppress(ResourceExistsError):
                await create()
        partition = self._storage.physical(self._container_name)
        async for row in self._seen_table.query_entities(
            "PartitionKey eq @p", parameters={"p": partition}
        ):
            self._seen[row["name"]] = row["etag"]

    async def run(self) -> None:
        """Scan every ``interval`` seconds until stopped; storage errors only delay it."""
        while not self._stopping.is_set():
            try:
                await self.scan()
            except AzureError as exc:
                log.warning(
                    "Watching %r failed (%s); retrying", self._container_name, type(exc).__name__
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    def stop(self) -> None:
        """End ``run`` after the current scan."""
        self._stopping.set()

    async def scan(self) -> int:
        """Announce blobs not announced yet; returns how many."""
        announced = 0
        account = self._storage.blob.account_name or "devstoreaccount1"
        physical = self._storage.physical(self._container_name)
        async for blob in self._container.list_blobs():
            if self._seen.get(blob.name) == blob.etag:
                continue
            url = f"{self._container.url}/{blob.name}"
            event = blob_created_event(account, physical, blob, url)
            body = base64.b64encode(json.dumps(event).encode()).decode()
            await self._queue.send_message(body)
            await self._seen_table.upsert_entity(
                {
                    "PartitionKey": physical,
                    "RowKey": hashlib.sha256(blob.name.encode()).hexdigest(),
                    "name": blob.name,
                    "etag": blob.etag,
                }
            )
            self._seen[blob.name] = blob.etag
            announced += 1
        if announced:
            log.info(
                "Announced %d new blob(s) in %r on %r",
                announced,
                self._container_name,
                self._queue_name,
            )
            if self._on_enqueue is not None:
                self._on_enqueue(self._queue_name)
        return announced
