"""AuditEvents, append-only, in the ``audit`` container (one blob per event, never
overwritten: the infrastructure makes the container immutable)."""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import ContentSettings

from ..errors import StorageUnavailableError
from ..names import Container
from ..storage import StorageClients

__all__ = ["BlobAuditLog"]


class BlobAuditLog:
    """Writes FHIR AuditEvents to ``audit/AuditEvent/{yyyy}/{mm}/{dd}/{id}.json``."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    def write(self, event: dict[str, Any]) -> str:
        """Store one AuditEvent (its ``id`` and ``recorded`` name the blob); the blob name.

        A retried write of the same event finds it there and leaves it as it is.

        Raises:
            StorageUnavailableError: storage failed (retryable).
        """
        day = str(event["recorded"])[:10].replace("-", "/")
        name = f"AuditEvent/{day}/{event['id']}.json"
        try:
            self._clients.container(Container.AUDIT).upload_blob(
                name,
                json.dumps(event).encode(),
                overwrite=False,
                content_settings=ContentSettings(content_type="application/fhir+json"),
            )
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise StorageUnavailableError(
                f"writing an AuditEvent failed: {type(exc).__name__}"
            ) from exc
        return name
