"""The consent index on Azure Storage: Consent bodies in blobs, patient keys in a table.

One table row per (patient key, consent): the partition is a hash of the key (keys are
identifiers, which are PHI and may hold characters a key cannot), the row key the
consent id. Looking patients up is one partition query per key plus one blob read per
consent, several in flight at once; nothing is cached, so a changed consent counts from
the next decision on. A version older than the one kept (``Consent.dateTime``) does not
replace it. Bodies go through ``json_codec``, so a decimal in an extension keeps its
digits and never breaks the write.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import ContainerClient, ContentSettings

from shared.normalize import json_codec
from shared.platform.concurrency import each

from ..errors import ConsentUnavailableError
from ..periods import parse_span

__all__ = ["TableConsentIndex", "key_partition"]

_T = TypeVar("_T")


def key_partition(key: str) -> str:
    """The table partition of a patient key (a hash: no identifier in a table key)."""
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def _date(value: str | None) -> datetime | None:
    try:
        return parse_span(value, UTC)[0] if value else None
    except ValueError:
        return None


class TableConsentIndex:
    """``ConsentSource`` on a table (``consentindex``) and a container (``consents``)."""

    def __init__(
        self, table: TableClient, container: ContainerClient, concurrency: int = 8
    ) -> None:
        self._table = table
        self._container = container
        self._concurrency = max(1, concurrency)

    def _ids(self, key: str) -> set[str]:
        rows = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": key_partition(key)}, select=["RowKey"]
        )
        return {row["RowKey"] for row in rows}

    def _body(self, consent_id: str) -> dict[str, Any] | None:
        try:
            data = self._container.download_blob(f"{consent_id}.json").readall()
        except ResourceNotFoundError:
            return None  # indexed, then deleted: nothing to apply
        return dict(json_codec.loads(data))

    def _map(self, work: Callable[[str], _T], items: list[str]) -> list[_T]:
        return each(work, items, self._concurrency)

    def find(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        return self.find_many([frozenset(keys)])[frozenset(keys)]

    def find_many(
        self, key_sets: Iterable[frozenset[str]]
    ) -> dict[frozenset[str], list[dict[str, Any]]]:
        """Like ``find`` for many patients at once: one query per distinct key and one
        read per distinct consent, run ``concurrency`` at a time (a batch of a thousand
        patients is a thousand round trips; in parallel they cost a fraction)."""
        wanted = list(dict.fromkeys(key_sets))
        keys = sorted({k for key_set in wanted for k in key_set})
        try:
            ids_by_key = dict(zip(keys, self._map(self._ids, keys), strict=True))
            consent_ids = sorted({i for ids in ids_by_key.values() for i in ids})
            bodies = dict(zip(consent_ids, self._map(self._body, consent_ids), strict=True))
        except AzureError as exc:
            raise ConsentUnavailableError(
                f"reading the consent index failed: {type(exc).__name__}"
            ) from exc
        found: dict[frozenset[str], list[dict[str, Any]]] = {}
        for key_set in wanted:
            ids = sorted({i for k in key_set for i in ids_by_key[k]})
            found[key_set] = [b for b in (bodies[i] for i in ids) if b is not None]
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
                json_codec.dumps(consent).encode(),
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

    def remove(self, consent: dict[str, Any], keys: Iterable[str]) -> None:
        """Forget a Consent: its body and its rows under ``keys`` (erasure).

        Raises:
            ConsentUnavailableError: the index did not answer.
        """
        consent_id = str(consent["id"])
        try:
            for key in sorted(set(keys)):
                with contextlib.suppress(ResourceNotFoundError):
                    self._table.delete_entity(key_partition(key), consent_id)
            with contextlib.suppress(ResourceNotFoundError):
                self._container.delete_blob(f"{consent_id}.json")
        except AzureError as exc:
            raise ConsentUnavailableError(
                f"removing from the consent index failed: {type(exc).__name__}"
            ) from exc
