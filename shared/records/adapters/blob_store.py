"""Resources and their history on Azure Storage: version blobs, an index row, compartment
rows.

- ``fhir/{type}/{id}/_history/{vid}.json``: every version, never overwritten in place;
  its metadata names the patients whose data it was and the partner that sent it.
- ``resources`` table, ``(type, id)``: the current version, the highest version handed
  out, source time, content hash (and recent ones), patients, deleted, the source
  partner (every version of a resource is that partner's: another partner's write is
  refused as ``foreign``), and the ETag.
- ``compartments`` table, ``(patient id, type|id)``: which resources are in a patient's
  compartment, for searches by patient and ``$everything``; the partition also holds a
  ``~source|<partner>`` row (who sent the patient's data) and the rows the person index
  keeps (``adapters/person_index.py``: links, relationships, unlinks).

A write claims its version id and makes it current in one ETag-conditional write of
the index row (two writers can never get the same id; a lost race re-reads and
re-plans), then writes the version blob, then the compartment row. A late arrival
claims its id first and is remembered only after its blob is written. A crash between
row and blob is finished by the queue's retry: the same ingestion finds its own version
current and writes what is missing.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, TransactionOperation, UpdateMode
from azure.storage.blob import ContainerClient, ContentSettings

from shared.normalize import json_codec
from shared.platform.storage import storage_errors

from ..errors import ResourceConflictError
from ..models import (
    Change,
    CurrentVersion,
    IngestionRef,
    StoredVersion,
    WriteOutcome,
    version_blob,
)
from ..versions import RECENT_HASHES, content_hash, plan_write

__all__ = ["BlobResourceStore", "source_row"]

_ATTEMPTS = 12  # each round lets at least one writer win; beyond, the queue retries


def _ingestion_row(patient: str, ingestion: IngestionRef) -> dict[str, Any]:
    return {
        "PartitionKey": patient,
        "RowKey": ingestion.row_key,
        "partner": ingestion.partner,
        "correlation": ingestion.correlation_id,
        "raw": ingestion.raw,
        "normalized": ingestion.normalized,
        "quarantine": ingestion.quarantine,
        "patients": ingestion.patients,
    }


def source_row(patient_id: str, partner: str) -> dict[str, Any]:
    """The row that says ``partner`` sent data of a patient (in its compartment partition)."""
    return {"PartitionKey": patient_id, "RowKey": f"~source|{partner}", "partner": partner}


def _patients(row: Mapping[str, Any]) -> tuple[str, ...]:
    listed = row.get("patients")
    if listed:
        return tuple(json.loads(listed))
    return (str(row["patient"]),) if row.get("patient") else ()


def _recent(current: CurrentVersion | None) -> list[str]:
    """Hashes to remember after ``current`` stops being current."""
    if current is None:
        return []
    return [h for h in (current.content_hash, *current.recent_hashes) if h][:RECENT_HASHES]


def _current(row: TableEntity) -> CurrentVersion:
    return CurrentVersion(
        version=int(row["version"]),
        latest=int(row["latest"]),
        source_time=datetime.fromisoformat(row["source_time"]),
        content_hash=row["hash"],
        recent_hashes=tuple(json.loads(row.get("recent") or "[]")),
        patients=_patients(row),
        deleted=bool(row.get("deleted")),
        correlation_id=str(row.get("correlation") or ""),
        etag=str(row.metadata["etag"]),
        updated=datetime.fromisoformat(row["updated"]) if row.get("updated") else None,
        source=str(row.get("source") or ""),
        received=datetime.fromisoformat(row["received"]) if row.get("received") else None,
    )


class BlobResourceStore:
    """The record store on a container and two tables."""

    def __init__(
        self,
        resources: TableClient,
        compartments: TableClient,
        container: ContainerClient,
        clock: Any = None,
    ) -> None:
        self._rows = resources
        self._compartments = compartments
        self._blobs = container
        self._clock = clock or (lambda: datetime.now(UTC))
        # Per resource type, how often a write found the resource there already (a moving
        # average): Observations are nearly always new, the Organizations and
        # Practitioners every message names nearly never are.
        self._existing: dict[str, float] = {}

    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None:
        """The index row of a resource, or None.

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("reading the record"):
            try:
                return _current(self._rows.get_entity(resource_type, resource_id))
            except ResourceNotFoundError:
                return None

    def read_version(
        self, resource_type: str, resource_id: str, version: int
    ) -> dict[str, Any] | None:
        """One version of a resource, or None.

        Raises:
            StorageUnavailableError: storage failed.
        """
        stored = self.stored(resource_type, resource_id, version)
        return stored.resource if stored is not None else None

    def stored(self, resource_type: str, resource_id: str, version: int) -> StoredVersion | None:
        """One version with the patients it belonged to and its sender (the blob's
        metadata, which comes with the download), or None.

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("reading a version"):
            try:
                blob = self._blobs.download_blob(version_blob(resource_type, resource_id, version))
                data = blob.readall()
            except ResourceNotFoundError:
                return None
        metadata = blob.properties.metadata or {}
        listed = metadata.get("patients")
        patients = tuple(p for p in listed.split(",") if p not in ("", "-")) if listed else None
        return StoredVersion(dict(json_codec.loads(data)), patients, metadata.get("source", ""))

    def compartment(
        self, patient_id: str, resource_type: str, after: str | None = None
    ) -> Iterator[str]:
        """Ids of a patient's resources of one type, in id order, after ``after``.

        Raises:
            StorageUnavailableError: storage failed.
        """
        low = f"{resource_type}|{after}" if after else f"{resource_type}|"
        query = "PartitionKey eq @p and RowKey gt @low and RowKey lt @high"
        with storage_errors("reading a compartment"):
            rows = self._compartments.query_entities(
                query,
                parameters={"p": patient_id, "low": low, "high": f"{resource_type}|~"},
                select=["RowKey"],
            )
            for row in rows:
                yield str(row["RowKey"]).split("|", 1)[1]

    def resource_types(self) -> list[str]:
        """Every resource type the record holds (a scan of the index's partition keys).

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("listing types"):
            rows = self._rows.list_entities(select=["PartitionKey"])
            return sorted({str(r["PartitionKey"]) for r in rows})

    def current_rows(
        self, resource_type: str, after: str = ""
    ) -> Iterator[tuple[str, CurrentVersion]]:
        """Every resource of a type with its index row, in id order from the first id
        past ``after``, page by page (memory stays flat).

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("listing resources"):
            rows = self._rows.query_entities(
                "PartitionKey eq @t and RowKey gt @after",
                parameters={"t": resource_type, "after": after},
            )
            for row in rows:
                yield str(row["RowKey"]), _current(row)

    def record_ingestion(self, patient_ids: Iterable[str], ingestion: IngestionRef) -> None:
        """Note an ingestion with patients none of whose data was stored (consent denied
        it), so erasing them still finds the payloads.

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("recording an ingestion"):
            for patient in sorted(set(patient_ids)):
                self._compartments.upsert_entity(_ingestion_row(patient, ingestion))

    def current_patient(self, patient_id: str) -> dict[str, Any] | None:
        """The current version of a Patient, or None.

        Raises:
            StorageUnavailableError: storage failed.
        """
        row = self.current("Patient", patient_id)
        if row is None or row.deleted or row.version == 0:
            return None
        return self.read_version("Patient", patient_id, row.version)

    def _marked(self, patient_id: str, prefix: str) -> Iterator[TableEntity]:
        """A patient's partition rows whose key starts with ``prefix`` (``~ingestion|``:
        they sort after every ``Type|id`` row)."""
        return iter(
            self._compartments.query_entities(
                "PartitionKey eq @p and RowKey ge @low and RowKey lt @high",
                parameters={"p": patient_id, "low": prefix, "high": f"{prefix}~"},
            )
        )

    def ingestions_of(self, patient_id: str) -> list[IngestionRef]:
        """The ingestions noted for a patient.

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("reading ingestions"):
            rows = self._marked(patient_id, "~ingestion|")
            return [
                IngestionRef(
                    partner=str(r["partner"]),
                    correlation_id=str(r["correlation"]),
                    raw=str(r.get("raw") or ""),
                    normalized=str(r.get("normalized") or ""),
                    quarantine=str(r.get("quarantine") or ""),
                    patients=int(r.get("patients") or 1),
                )
                for r in rows
            ]

    def compartment_all(self, patient_id: str, after: str | None = None) -> Iterator[str]:
        """``Type|id`` of all of a patient's resources, in that order, after ``after``.

        Raises:
            StorageUnavailableError: storage failed.
        """
        query = "PartitionKey eq @p and RowKey gt @low and RowKey lt '~'"
        with storage_errors("reading a compartment"):
            rows = self._compartments.query_entities(
                query, parameters={"p": patient_id, "low": after or ""}, select=["RowKey"]
            )
            for row in rows:
                yield str(row["RowKey"])

    def erase(self, resource_type: str, resource_id: str) -> int:
        """Delete every version of a resource and its index row (erasure); versions deleted.

        Raises:
            StorageUnavailableError: storage failed.
        """
        prefix = f"{resource_type}/{resource_id}/_history/"
        with storage_errors("erasing a resource"):
            names = [b.name for b in self._blobs.list_blobs(name_starts_with=prefix)]
            for name in names:
                with contextlib.suppress(ResourceNotFoundError):
                    self._blobs.delete_blob(name, delete_snapshots="include")
            with contextlib.suppress(ResourceNotFoundError):
                self._rows.delete_entity(resource_type, resource_id)
        return len(names)

    def forget_patient(self, patient_id: str) -> None:
        """Delete a patient's compartment partition (last in erasure: the compartment is
        what a re-run of an interrupted erasure starts from; the person index forgets its
        rows first).

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("forgetting a patient"):
            rows = self._compartments.query_entities(
                "PartitionKey eq @p", parameters={"p": patient_id}, select=["RowKey"]
            )
            for row in list(rows):
                with contextlib.suppress(ResourceNotFoundError):
                    self._compartments.delete_entity(patient_id, str(row["RowKey"]))

    def versions(self, resource_type: str, resource_id: str) -> list[int]:
        """The version ids that have a blob, oldest first.

        Raises:
            StorageUnavailableError: storage failed.
        """
        prefix = f"{resource_type}/{resource_id}/_history/"
        with storage_errors("listing versions"):
            names = [b.name for b in self._blobs.list_blobs(name_starts_with=prefix)]
        found = [n.removeprefix(prefix).removesuffix(".json") for n in names]
        return sorted(int(v) for v in found if v.isdigit())

    def put(
        self,
        resource: Mapping[str, Any],
        source_time: datetime,
        patients: tuple[str, ...],
        delete: bool = False,
        correlation_id: str = "",
        source: str = "",
        received: datetime | None = None,
    ) -> Change:
        """Store partner ``source``'s resource (or, with ``delete``, a deletion of it) made
        at ``source_time`` and received at ``received``, as part of ingestion
        ``correlation_id``; ``patients`` are the ``Patient/<id>`` whose data it is.

        A resource another partner sent is not touched: the change says ``foreign``.

        Raises:
            ResourceConflictError: other writers kept winning (retryable).
            StorageUnavailableError: storage failed (retryable).
        """
        kind, ident = str(resource["resourceType"]), str(resource["id"])
        digest = content_hash({"resourceType": kind, "id": ident} if delete else resource)
        write = _Write(
            resource,
            kind,
            ident,
            digest,
            source_time,
            correlation_id,
            patients,
            delete,
            source,
            received,
        )
        with storage_errors("writing the record"):
            guess_new = not delete and self._existing.get(kind, 0.0) < 0.5
            for attempt in range(_ATTEMPTS):
                # A resource of a type that is mostly new is created without reading first
                # (one round trip saved); if it exists the create fails and we read. A type
                # that mostly exists is read first (a failed create saved).
                change = self._attempt(write, assume_new=attempt == 0 and guess_new)
                if attempt == 0 and not delete:
                    existed = change is None or (
                        not guess_new and change.outcome is not WriteOutcome.CREATED
                    )
                    self._existing[kind] = 0.8 * self._existing.get(kind, 0.0) + 0.2 * existed
                if change is not None:
                    return change
                if attempt:  # lost a race: step aside a little, at random, before re-reading
                    time.sleep(random.uniform(0, 0.01 * attempt))
        raise ResourceConflictError(f"{kind}/{ident}: concurrent writers did not settle")

    def _attempt(self, write: _Write, assume_new: bool = False) -> Change | None:
        """One try; None when another writer got in between (or ``assume_new`` was wrong)."""
        kind, ident = write.kind, write.ident
        current = None if assume_new else self.current(kind, ident)
        if current is not None and current.source != write.source:
            return write.change(current.version, WriteOutcome.FOREIGN, current.correlation_id)
        outcome = plan_write(current, write.digest, write.source_time, write.delete, write.received)
        if outcome is WriteOutcome.UNCHANGED:
            version = current.version if current else 0
            ours = current is not None and current.correlation_id == write.correlation_id
            if ours and version and current is not None:
                # A retry of the message that wrote it: finish a write a crash cut short.
                self._ensure_blob(write, current)
            listed = current.patients if ours and current and not current.deleted else ()
            return write.change(version, outcome, current.correlation_id if current else "", listed)
        version = (current.latest if current else 0) + 1
        now = self._clock()
        if outcome is WriteOutcome.OUT_OF_ORDER:
            assert current is not None
            if not self._claim(current, kind, ident, {"latest": version}):
                return None
            self._upload(write, version, now, outcome)
            self._remember(kind, ident, write.digest)
            return write.change(version, outcome, write.correlation_id)
        row = {
            "latest": version,
            "version": version,
            "source_time": write.source_time.isoformat(),
            "received": write.received.isoformat() if write.received else "",
            "updated": now.isoformat(),
            "hash": write.digest,
            "recent": json.dumps(_recent(current)),
            "patient": write.patients[0] if write.patients else "",
            "patients": json.dumps(list(write.patients)),
            "deleted": write.delete,
            "correlation": write.correlation_id,
            "source": write.source,
        }
        if not self._claim(current, kind, ident, row):
            return None
        self._upload(write, version, now, outcome)
        before = current.patients if current and not current.deleted else ()
        for patient in before:
            if write.delete or patient not in write.patients:
                self._leave_compartment(kind, ident, patient)
        listed = () if write.delete else write.patients
        return write.change(version, outcome, write.correlation_id, listed)

    def _claim(
        self, current: CurrentVersion | None, kind: str, ident: str, row: dict[str, Any]
    ) -> bool:
        """Write the index row if nobody else did since we read it (the version id in it
        is then ours alone); False if another writer was first."""
        entity = {"PartitionKey": kind, "RowKey": ident, **row}
        try:
            if current is None:
                self._rows.create_entity(entity)
            else:
                self._rows.update_entity(
                    entity,
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            return False
        return True

    def _upload(
        self,
        write: _Write,
        version: int,
        now: datetime,
        outcome: WriteOutcome,
        made: tuple[datetime, str] | None = None,
    ) -> None:
        kind, ident, delete, resource = write.kind, write.ident, write.delete, write.resource
        source_time, correlation = made or (write.source_time, write.correlation_id)
        body: dict[str, Any] = {"resourceType": kind, "id": ident} if delete else dict(resource)
        body["meta"] = {
            **({} if delete else (resource.get("meta") or {})),
            "versionId": str(version),
            "lastUpdated": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        self._blobs.upload_blob(
            version_blob(kind, ident, version),
            json_codec.dumps(body).encode(),
            overwrite=True,  # the version id was claimed in the index row: ours alone
            metadata={
                "event": outcome.value,
                "source_time": source_time.isoformat(),
                "correlation": correlation,
                "patients": ",".join(write.patients) or "-",  # "-": not patient data
                "source": write.source,
            },
            content_settings=ContentSettings(content_type="application/fhir+json"),
        )

    def _ensure_blob(self, write: _Write, current: CurrentVersion) -> None:
        blob = self._blobs.get_blob_client(version_blob(write.kind, write.ident, current.version))
        try:
            blob.get_blob_properties()
        except ResourceNotFoundError:
            outcome = WriteOutcome.DELETED if write.delete else WriteOutcome.UPDATED
            made = (current.source_time, current.correlation_id)
            self._upload(write, current.version, self._clock(), outcome, made)

    def _remember(self, kind: str, ident: str, digest: str) -> None:
        """Note a history-only content, so a resend of it is recognised."""
        for _ in range(_ATTEMPTS):
            current = self.current(kind, ident)
            if current is None or digest in current.recent_hashes:
                return
            try:
                self._rows.update_entity(
                    {
                        "PartitionKey": kind,
                        "RowKey": ident,
                        "recent": json.dumps([digest, *current.recent_hashes][:RECENT_HASHES]),
                    },
                    mode=UpdateMode.MERGE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
                return
            except ResourceModifiedError:
                continue

    def _leave_compartment(self, kind: str, ident: str, patient: str) -> None:
        """A resource deleted or moved off a patient leaves that patient's compartment."""
        with contextlib.suppress(ResourceNotFoundError):
            self._compartments.delete_entity(patient.split("/", 1)[1], f"{kind}|{ident}")

    def list_in_compartments(
        self, changes: Iterable[Change], ingestion: IngestionRef | None = None
    ) -> None:
        """Add each change's resource to its patients' compartments, with the partner that
        sent it (``~source|<partner>``) and the ingestion, one transaction per patient and
        100 rows.

        Raises:
            StorageUnavailableError: storage failed (retryable; the rows are idempotent).
        """
        by_patient: dict[str, list[Change]] = {}
        for change in changes:
            for compartment in change.compartments:
                by_patient.setdefault(compartment.split("/", 1)[1], []).append(change)
        with storage_errors("writing compartments"):
            for patient, listed in by_patient.items():
                rows = {c.reference: c for c in listed}  # one operation per row in a batch
                operations: list[tuple[TransactionOperation, dict[str, Any]]] = [
                    (
                        TransactionOperation.UPSERT,
                        {
                            "PartitionKey": patient,
                            "RowKey": f"{c.resource_type}|{c.resource_id}",
                            "type": c.resource_type,
                        },
                    )
                    for c in rows.values()
                ]
                for partner in sorted({c.source for c in listed if c.source}):
                    operations.append((TransactionOperation.UPSERT, source_row(patient, partner)))
                if ingestion is not None:
                    operations.append(
                        (TransactionOperation.UPSERT, _ingestion_row(patient, ingestion))
                    )
                for start in range(0, len(operations), 100):
                    self._compartments.submit_transaction(operations[start : start + 100])


@dataclass(frozen=True, slots=True)
class _Write:
    """One write asked of the store."""

    resource: Mapping[str, Any]
    kind: str
    ident: str
    digest: str
    source_time: datetime
    correlation_id: str
    patients: tuple[str, ...]
    delete: bool
    source: str
    received: datetime | None = None

    def change(
        self,
        version: int,
        outcome: WriteOutcome,
        correlation_id: str,
        compartments: tuple[str, ...] = (),
    ) -> Change:
        return Change(
            self.kind,
            self.ident,
            version,
            outcome,
            version_blob(self.kind, self.ident, version),
            self.patients,
            correlation_id,
            compartments=compartments,
            source=self.source,
        )
