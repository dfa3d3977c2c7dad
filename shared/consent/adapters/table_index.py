"""The consent index on Azure Storage: Consent bodies in blobs, patient keys in a table.

One table row per (patient key, consent): the partition is a hash of the key (keys are
identifiers, which are PHI and may hold characters a key cannot), the row key the
consent id. Looking a patient up is one partition query per key plus one blob read per
consent; nothing is cached, so a changed consent counts from the next decision on.
A version older than the one kept (``Consent.dateTime``) does not replace it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import ContainerClient, ContentSettings

from ..errors import ConsentUnavailableError
from ..periods import parse_span

__all__ = ["TableConsentIndex", "key_partition"]


def key_partition(key: str) -> str:
    """The table partition of a patient key (a hash: no identifier in a table key)."""
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def _date(value: str | None) -> Any:
    try:
        return parse_span(value, UTC)[0] if value else None
    except ValueError:
        return None


class TableConsentIndex:
    """``ConsentSource`` on a table (``consentindex``) and a container (``consents``)."""

    def __init__(self, table: TableClient, container: ContainerClient) -> None:
        self._table = table
        self._container = container

    def find(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        ids: set[str] = set()
        try:
            for key in sorted(set(keys)):
                partition = key_partition(key)
                rows = self._table.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"]
                )
                ids.update(row["RowKey"] for row in rows)
            found = []
            for consent_id in sorted(ids):
                try:
                    data = self._container.download_blob(f"{consent_id}.json").readall()
                except ResourceNotFoundError:
                    continue  # indexed, then deleted: nothing to apply
                found.append(json.loads(data))
        except AzureError as exc:
            raise ConsentUnavailableError(
                f"reading the consent index failed: {type(exc).__name__}"
            ) from exc
        return found

    def put(self, consent: dict[str, Any], keys: Iterable[str]) -> bool:
        consent_id = str(consent["id"])
        blob = self._container.get_blob_client(f"{consent_id}.json")
        try:
            try:
                kept = _date(blob.get_blob_properties().metadata.get("datetime"))
            except ResourceNotFoundError:
                kept = None
            incoming = _date(consent.get("dateTime"))
            if kept is not None and (incoming is None or incoming < kept):
                return False
            blob.upload_blob(
                json.dumps(consent).encode(),
                overwrite=True,
                metadata={"datetime": str(consent.get("dateTime") or "")},
                content_settings=ContentSettings(content_type="application/fhir+json"),
            )
            for key in sorted(set(keys)):
                self._table.upsert_entity(
                    {
                        "PartitionKey": key_partition(key),
                        "RowKey": consent_id,
                        "status": str(consent.get("status") or ""),
                    },
                    mode=UpdateMode.REPLACE,
                )
        except AzureError as exc:
            raise ConsentUnavailableError(
                f"writing the consent index failed: {type(exc).__name__}"
            ) from exc
        return True
