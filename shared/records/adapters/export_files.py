"""Bulk export state and files on Azure Storage: a job row per request, NDJSON blobs
written block by block so memory stays flat whatever the size of the record."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import BlobBlock, ContainerClient, ContentSettings

from shared.normalize import json_codec
from shared.platform.errors import StorageUnavailableError
from shared.platform.storage import is_table_key

from ..models import ExportJob

__all__ = ["BlobNdjsonWriter", "ExportFiles", "TableExportJobs", "read_export_file"]

BLOCK_BYTES = 4 * 1024 * 1024


class TableExportJobs:
    """Export jobs in the ``exportjobs`` table, one row per (partner, job id)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def save(self, job: ExportJob) -> None:
        """Create or replace a job's row.

        Raises:
            StorageUnavailableError: storage failed.
        """
        try:
            self._table.upsert_entity(
                {"PartitionKey": job.partner, "RowKey": job.id, "job": job.to_json()},
                mode=UpdateMode.REPLACE,
            )
        except AzureError as exc:
            raise StorageUnavailableError(
                f"saving an export job failed: {type(exc).__name__}"
            ) from exc

    def advance(self, job: ExportJob) -> bool:
        """Replace a job's row only if nobody changed it since ``job`` was read (its
        etag); False if somebody did (a cancel, or another runner of the same slice).

        Raises:
            StorageUnavailableError: storage failed.
        """
        try:
            self._table.update_entity(
                {"PartitionKey": job.partner, "RowKey": job.id, "job": job.to_json()},
                mode=UpdateMode.REPLACE,
                etag=job.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except AzureError as exc:
            raise StorageUnavailableError(
                f"saving an export job failed: {type(exc).__name__}"
            ) from exc
        return True

    def get(self, partner: str, job_id: str) -> ExportJob | None:
        """A partner's job, or None.

        Raises:
            StorageUnavailableError: storage failed.
        """
        if not (is_table_key(partner) and is_table_key(job_id)):
            return None  # an id from a URL that no row can have
        try:
            row = self._table.get_entity(partner, job_id)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StorageUnavailableError(
                f"reading an export job failed: {type(exc).__name__}"
            ) from exc
        job = ExportJob.from_json(str(row["job"]))
        job.etag = str(row.metadata["etag"])
        return job


class BlobNdjsonWriter:
    """One NDJSON blob written as staged blocks; nothing is visible until ``close``."""

    def __init__(
        self, container: ContainerClient, name: str, block_bytes: int = BLOCK_BYTES
    ) -> None:
        self._blob = container.get_blob_client(name)
        self._block_bytes = block_bytes
        self._buffer = bytearray()
        self._blocks: list[BlobBlock] = []
        self.count = 0

    def write(self, resource: dict[str, Any]) -> None:
        """Append one resource as a line.

        Raises:
            StorageUnavailableError: storage failed.
        """
        self._buffer += json_codec.dumps(resource).encode() + b"\n"
        self.count += 1
        if len(self._buffer) >= self._block_bytes:
            self._stage()

    def _stage(self) -> None:
        block_id = base64.b64encode(f"{len(self._blocks):08d}".encode()).decode()
        try:
            self._blob.stage_block(block_id, bytes(self._buffer))
        except AzureError as exc:
            raise StorageUnavailableError(
                f"writing an export failed: {type(exc).__name__}"
            ) from exc
        self._blocks.append(BlobBlock(block_id=block_id))
        self._buffer.clear()

    def close(self) -> None:
        """Commit what was written.

        Raises:
            StorageUnavailableError: storage failed.
        """
        if self.count == 0:
            return  # nothing to keep: no empty file
        if self._buffer:
            self._stage()
        try:
            self._blob.commit_block_list(
                self._blocks,
                content_settings=ContentSettings(content_type="application/fhir+ndjson"),
            )
        except AzureError as exc:
            raise StorageUnavailableError(
                f"writing an export failed: {type(exc).__name__}"
            ) from exc


def read_export_file(container: ContainerClient, name: str) -> Iterator[bytes] | None:
    """The chunks of an export file, or None if it does not exist.

    Raises:
        StorageUnavailableError: storage failed.
    """
    try:
        downloader = container.download_blob(name)
    except ResourceNotFoundError:
        return None
    except AzureError as exc:
        raise StorageUnavailableError(f"reading an export failed: {type(exc).__name__}") from exc
    return iter(downloader.chunks())


class ExportFiles:
    """Where an export writes: its NDJSON files in ``exports``, its audit in ``audit``."""

    def __init__(self, exports: ContainerClient, audit: ContainerClient) -> None:
        self._exports = exports
        self._audit = audit

    def export_file(self, name: str) -> BlobNdjsonWriter:
        """A new export file (replaces one of the same name when committed)."""
        return BlobNdjsonWriter(self._exports, name)

    def audit_file(self, name: str) -> BlobNdjsonWriter:
        """A new NDJSON blob of AuditEvents."""
        return BlobNdjsonWriter(self._audit, name)
