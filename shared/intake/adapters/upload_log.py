"""The uploads issued, one row each in table ``uploads``: (partner, upload id), the blob
name's SHA-256 and the issue and expiry times; no name, no content."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.platform.storage import storage_errors

from ..models import Upload

__all__ = ["TableUploadLog"]


class TableUploadLog:
    """``UploadLog`` on Azure Table storage; rows are written once and never changed."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def record(self, upload: Upload) -> None:
        """Keep an issued upload.

        Raises:
            StorageUnavailableError: storage failed (the caller gets no URL).
        """
        with storage_errors("recording an upload"):
            self._table.create_entity(
                {
                    "PartitionKey": upload.partner,
                    "RowKey": upload.id,
                    "name_sha256": upload.name_sha256,
                    "issued": upload.issued,
                    "expires": upload.expires,
                }
            )

    def get(self, partner: str, upload_id: str) -> Upload | None:
        """The upload with this id issued to this partner, or None.

        Raises:
            StorageUnavailableError: storage failed (retryable).
        """
        with storage_errors("reading an upload"):
            try:
                row = self._table.get_entity(partner, upload_id)
            except ResourceNotFoundError:
                return None
        return Upload(
            id=str(row["RowKey"]),
            partner=str(row["PartitionKey"]),
            name_sha256=str(row["name_sha256"]),
            issued=row["issued"],
            expires=row["expires"],
        )
