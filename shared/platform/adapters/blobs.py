"""Payload blobs by logical reference (``BlobRef``), on Azure Blob Storage."""

from __future__ import annotations

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import ContentSettings

from ..envelope import BlobRef
from ..errors import IntakeError, StorageUnavailableError
from ..names import Container
from ..storage import StorageClients

__all__ = ["BlobPayloadStore", "PayloadMissingError"]


class PayloadMissingError(IntakeError):
    """The blob an envelope points at does not exist."""


class BlobPayloadStore:
    """Reads and writes payloads; errors become ours, retryable where storage is down."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    def read(self, ref: BlobRef) -> tuple[bytes, dict[str, str], str | None]:
        """The blob's bytes, metadata and content type.

        Raises:
            PayloadMissingError: no such blob (permanent).
            StorageUnavailableError: storage failed (retryable).
        """
        blob = self._clients.container(Container(ref.container)).get_blob_client(ref.name)
        try:
            downloader = blob.download_blob()
            data = downloader.readall()
        except ResourceNotFoundError as exc:
            raise PayloadMissingError(f"blob {ref.container}/{ref.name} does not exist") from exc
        except AzureError as exc:
            raise StorageUnavailableError(
                f"reading a payload failed: {type(exc).__name__}"
            ) from exc
        props = downloader.properties
        settings = props.content_settings
        return data, dict(props.metadata or {}), settings.content_type if settings else None

    def write(
        self,
        container: Container,
        name: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> BlobRef:
        """Write (or overwrite: stage outputs are deterministic) a blob.

        Raises:
            StorageUnavailableError: storage failed (retryable).
        """
        try:
            result = (
                self._clients.container(container)
                .get_blob_client(name)
                .upload_blob(
                    data,
                    overwrite=True,
                    metadata=metadata,
                    content_settings=ContentSettings(content_type=content_type),
                )
            )
        except AzureError as exc:
            raise StorageUnavailableError(
                f"writing a payload failed: {type(exc).__name__}"
            ) from exc
        return BlobRef(
            container=container.value, name=name, etag=str(result.get("etag") or "") or None
        )

    def delete(self, container: Container, name: str) -> bool:
        """Delete a blob (and its snapshots); False if there was none.

        Raises:
            StorageUnavailableError: storage failed (retryable).
        """
        try:
            self._clients.container(container).delete_blob(name, delete_snapshots="include")
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise StorageUnavailableError(f"deleting a blob failed: {type(exc).__name__}") from exc
        return True

    def delete_prefix(self, container: Container, prefix: str) -> int:
        """Delete every blob whose name starts with ``prefix``; how many.

        Raises:
            StorageUnavailableError: storage failed (retryable).
        """
        try:
            names = [
                b.name
                for b in self._clients.container(container).list_blobs(name_starts_with=prefix)
            ]
        except AzureError as exc:
            raise StorageUnavailableError(f"listing blobs failed: {type(exc).__name__}") from exc
        return sum(self.delete(container, name) for name in names)
