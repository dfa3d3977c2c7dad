"""AuditEvents, append-only, in the ``audit`` container (never overwritten: the
infrastructure makes the container immutable). One blob per event, or one NDJSON blob
per unit of work, so a Bundle's thousand patient-specific events cost one write."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import ContentSettings

from ..errors import StorageUnavailableError
from ..names import Container
from ..storage import StorageClients

__all__ = ["BlobAuditLog"]


class BlobAuditLog:
    """Writes FHIR AuditEvents under ``audit/AuditEvent/{yyyy}/{mm}/{dd}/``."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    def write(self, event: dict[str, Any]) -> str:
        """Store one AuditEvent as ``{id}.json`` (``recorded`` gives the day); the name.

        A retried write of the same event finds it there and leaves it as it is.

        Raises:
            StorageUnavailableError: storage failed (retryable).
        """
        name = f"AuditEvent/{_day(event)}/{event['id']}.json"
        self._append_only(name, json.dumps(event).encode(), "application/fhir+json")
        return name

    def write_batch(self, events: Sequence[dict[str, Any]], work_id: str) -> str | None:
        """Store the AuditEvents of one unit of work as one NDJSON blob,
        ``{work_id}-{digest}.ndjson``; the name (None when there are none).

        The digest is over the content, so a retry that decided the same writes nothing
        new, and one that decided differently (a consent changed meanwhile) adds its own.

        Raises:
            StorageUnavailableError: storage failed (retryable).
        """
        if not events:
            return None
        body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
        digest = hashlib.sha256(body).hexdigest()[:16]
        name = f"AuditEvent/{_day(events[0])}/{work_id}-{digest}.ndjson"
        self._append_only(name, body, "application/fhir+ndjson")
        return name

    def events_on(self, day: date) -> Iterator[dict[str, Any]]:
        """Every AuditEvent recorded on ``day`` (single events and NDJSON batches).

        Raises:
            StorageUnavailableError: storage failed (retryable).
        """
        container = self._clients.container(Container.AUDIT)
        try:
            for blob in container.list_blobs(name_starts_with=f"AuditEvent/{day:%Y/%m/%d}/"):
                data = container.download_blob(blob.name).readall()
                for line in data.splitlines() if blob.name.endswith(".ndjson") else [data]:
                    if line.strip():
                        yield json.loads(line)
        except AzureError as exc:
            raise StorageUnavailableError(
                f"reading AuditEvents failed: {type(exc).__name__}"
            ) from exc

    def _append_only(self, name: str, body: bytes, content_type: str) -> None:
        try:
            self._clients.container(Container.AUDIT).upload_blob(
                name,
                body,
                overwrite=False,
                content_settings=ContentSettings(content_type=content_type),
            )
        except ResourceExistsError:
            pass  # written by an earlier attempt: an audit record is never replaced
        except AzureError as exc:
            raise StorageUnavailableError(
                f"writing AuditEvents failed: {type(exc).__name__}"
            ) from exc


def _day(event: dict[str, Any]) -> str:
    return str(event["recorded"])[:10].replace("-", "/")
