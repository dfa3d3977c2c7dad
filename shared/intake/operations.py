"""Operator actions on the pipeline: replay a poison queue, reprocess a dropped file."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from shared.platform.errors import StorageUnavailableError
from shared.platform.names import Container, Queue, poison_queue
from shared.platform.storage import StorageClients

__all__ = ["replay_poison", "reprocess_drop"]


def _raw(clients: StorageClients, name: str) -> QueueClient:
    """A queue client that moves message text unchanged (no base64 step)."""
    return clients.queue.get_queue_client(clients.queue_client(name).queue_name)


def replay_poison(clients: StorageClients, queue: Queue, limit: int | None = None) -> int:
    """Move messages from ``<queue>-poison`` back to ``queue``, bodies unchanged.

    Each message is sent before it is deleted, so a failure half-way leaves a copy, never
    a loss. Returns how many moved.

    Raises:
        StorageUnavailableError: storage failed.
    """
    source, target = _raw(clients, poison_queue(queue)), _raw(clients, queue)
    moved = 0
    try:
        while limit is None or moved < limit:
            batch = list(source.receive_messages(max_messages=32, visibility_timeout=60))
            if not batch:
                break
            for message in batch:
                target.send_message(message.content)
                source.delete_message(message)
                moved += 1
                if limit is not None and moved >= limit:
                    break
    except ResourceNotFoundError:
        return moved
    except AzureError as exc:
        raise StorageUnavailableError(f"replaying failed: {type(exc).__name__}") from exc
    return moved


def reprocess_drop(clients: StorageClients, name: str) -> str:
    """Process a dropped file again: announce it anew as a run of its own.

    The records become new ingestions; their resources keep their ids, so the record
    is updated, not duplicated.

    Args:
        name: the blob's name in ingest-drop (``partner/path``).

    Returns:
        The event id sent.

    Raises:
        FileNotFoundError: no such drop.
        StorageUnavailableError: storage failed.
    """
    blob = clients.container(Container.INGEST_DROP).get_blob_client(name)
    try:
        props = blob.get_blob_properties()
        event_id = str(uuid.uuid4())
        etag = str(props.etag).strip('"')
        event = {
            "id": event_id,
            "eventType": "Microsoft.Storage.BlobCreated",
            "subject": f"/blobServices/default/containers/{blob.container_name}/blobs/{name}",
            "eventTime": datetime.now(UTC).isoformat(),
            "dataVersion": "",
            "metadataVersion": "1",
            # a marker beside the ETag: a new run with its own checkpoint and ingestions
            "data": {
                "eTag": f"{etag}-reprocess-{event_id[:8]}",
                "url": blob.url,
                "contentLength": props.size,
                "api": "Reprocess",
            },
        }
        _raw(clients, Queue.BLOB_CREATED).send_message(
            base64.b64encode(json.dumps(event).encode()).decode()
        )
    except ResourceNotFoundError as exc:
        raise FileNotFoundError(f"no drop named {name!r}") from exc
    except AzureError as exc:
        raise StorageUnavailableError(f"reprocessing failed: {type(exc).__name__}") from exc
    return event_id
