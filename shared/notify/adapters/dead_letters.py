"""Dead-lettered deliveries as blobs: ``deadletter/{subscription}/{Type}.{id}.{version}.json``.

Each blob is the delivery with every attempt's outcome (statuses, errors, times; never
a response body or the notification itself, which is rebuilt from the record on replay).
"""

from __future__ import annotations

from datetime import datetime

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from shared.platform.errors import StorageUnavailableError

from ..models import Delivery

__all__ = ["BlobDeadLetters"]


def _name(delivery: Delivery) -> str:
    return f"{delivery.subscription}/{delivery.key.replace('|', '.')}.json"


class BlobDeadLetters:
    """``DeadLetters`` in the ``deadletter`` container."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    def put(self, delivery: Delivery, at: datetime) -> str:
        """Keep a delivery with its attempts (metadata ``dead_lettered``: when)."""
        name = _name(delivery)
        try:
            self._container.upload_blob(
                name,
                delivery.model_dump_json(indent=1).encode(),
                overwrite=True,
                metadata={"dead_lettered": at.isoformat()},
                content_settings=ContentSettings(content_type="application/json"),
            )
        except AzureError as exc:
            raise StorageUnavailableError(f"dead-lettering failed: {type(exc).__name__}") from exc
        return name

    def list(self, subscription_id: str, since: datetime | None = None) -> list[Delivery]:
        """A subscription's dead letters, oldest event first."""
        found = []
        try:
            for blob in self._container.list_blobs(
                name_starts_with=f"{subscription_id}/", include=["metadata"]
            ):
                when = (blob.metadata or {}).get("dead_lettered")
                if since is not None and when and datetime.fromisoformat(when) < since:
                    continue
                data = self._container.download_blob(blob.name).readall()
                found.append(Delivery.model_validate_json(data))
        except AzureError as exc:
            raise StorageUnavailableError(
                f"listing dead letters failed: {type(exc).__name__}"
            ) from exc
        return sorted(found, key=lambda d: d.number)

    def remove(self, delivery: Delivery) -> None:
        """Delete one dead letter; a missing one is fine."""
        try:
            self._container.delete_blob(_name(delivery))
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise StorageUnavailableError(
                f"removing a dead letter failed: {type(exc).__name__}"
            ) from exc
