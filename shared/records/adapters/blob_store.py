"""Resources and their history on Azure Storage: version blobs, an index row, a
compartment row.

- ``fhir/{type}/{id}/_history/{vid}.json``: every version, never overwritten in place.
- ``resources`` table, ``(type, id)``: the current version, the highest version handed
  out, source time, content hash (and recent ones), patient, deleted, and the ETag.
- ``compartments`` table, ``(patient id, type|id)``: which resources are in a patient's
  compartment, for searches by patient and ``$everything``.
- ``identifiers`` table, ``(hash of system|value, Patient|id)``: Patients by identifier.

A write claims its version id and makes it current in one ETag-conditional write of
the index row (two writers can never get the same id; a lost race re-reads and
re-plans), then writes the version blob, then the compartment row. A late arrival
claims its id first and is remembered only after its blob is written. A crash between
row and blob is finished by the queue's retry: the same ingestion finds its own version
current and writes what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, TransactionOperation, UpdateMode
from azure.storage.blob import ContainerClient, ContentSettings

from shared.normalize import json_codec
from shared.platform.errors import StorageUnavailableError

from ..errors import ResourceConflictError
from ..models import Change, CurrentVersion, IngestionRef, WriteOutcome
from ..versions import RECENT_HASHES, content_hash, plan_write

__all__ = ["BlobResourceStore", "version_blob"]

_ATTEMPTS = 12  # each round lets at least one writer win; beyond, the queue retries


def version_blob(resource_type: str, resource_id: str, version: int) -> str:
    """Where one version of a resource lives in ``fhir``."""
    return f"{resource_type}/{resource_id}/_history/{version}.json"


@contextlib.contextmanager
def _storage(what: str) -> Iterator[None]:
    """Storage errors inside become ``StorageUnavailableError`` (retryable)."""
    try:
        yield
    except AzureError as exc:
        raise StorageUnavailableError(f"{what} failed: {type(exc).__name__}") from exc


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


def _identifier_key(system: str, value: str) -> str:
    """The table partition of an identifier (a hash: identifiers are PHI)."""
    return hashlib.sha256(f"{system}|{value}".encode()).hexdigest()[:40]


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
        patient=row.get("patient") or None,
        deleted=bool(row.get("deleted")),
        correlation_id=str(row.get("correlation") or ""),
        etag=str(row.metadata["etag"]),
        updated=datetime.fromisoformat(row["updated"]) if row.get("updated") else None,
    )


class BlobResourceStore:
    """The record store on a container and two tables."""

    def __init__(
        self,
        resources: TableClient,
        compartments: TableClient,
        identifiers: TableClient,
        container: ContainerClient,
        clock: Any = None,
    ) -> None:
        self._rows = resources
        self._compartments = compartments
        self._identifiers = identifiers
        self._blobs = container
        self._clock = clock or (lambda: datetime.now(UTC))

    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None:
        """The index row of a resource, or None.

        Raises:
            StorageUnavailableError: storage failed.
        """
        with _storage("reading the record"):
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
        with _storage("reading a version"):
            try:
                blob = self._blobs.download_blob(version_blob(resource_type, resource_id, version))
                data = blob.readall()
            except ResourceNotFoundError:
                return None
        return dict(json_codec.loads(data))

    def compartment(
        self, patient_id: str, resource_type: str, after: str | None = None
    ) -> Iterator[str]:
        """Ids of a patient's resources of one type, in id order, after ``after``.

        Raises:
            StorageUnavailableError: storage failed.
        """
        low = f"{resource_type}|{after}" if after else f"{resource_type}|"
        query = "PartitionKey eq @p and RowKey gt @low and RowKey lt @high"
        with _storage("reading a compartment"):
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
        with _storage("listing types"):
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
        with _storage("listing resources"):
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
        with _storage("recording an ingestion"):
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

    def unlink(self, patient_id: str, other_id: str) -> None:
        """Record that two Patient records are not one person (both ways).

        Raises:
            StorageUnavailableError: storage failed.
        """
        with _storage("recording an unlink"):
            for one, two in ((patient_id, other_id), (other_id, patient_id)):
                self._compartments.upsert_entity({"PartitionKey": one, "RowKey": f"~unlink|{two}"})

    def unlinked(self, patient_id: str) -> set[str]:
        """The Patient records an unlink request separated from this one.

        Raises:
            StorageUnavailableError: storage failed.
        """
        with _storage("reading unlinks"):
            rows = self._marked(patient_id, "~unlink|")
            return {str(r["RowKey"]).removeprefix("~unlink|") for r in rows}

    def _marked(self, patient_id: str, prefix: str) -> Iterator[TableEntity]:
        """A patient's partition rows whose key starts with ``prefix`` (``~unlink|``,
        ``~ingestion|``: they sort after every ``Type|id`` row)."""
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
        with _storage("reading ingestions"):
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
        with _storage("reading a compartment"):
            rows = self._compartments.query_entities(
                query, parameters={"p": patient_id, "low": after or ""}, select=["RowKey"]
            )
            for row in rows:
                yield str(row["RowKey"])

    def patients_with_identifier(self, system: str, value: str) -> list[str]:
        """Ids of Patients that carry (or carried) an identifier, in id order.

        Raises:
            StorageUnavailableError: storage failed.
        """
        with _storage("reading identifiers"):
            rows = self._identifiers.query_entities(
                "PartitionKey eq @p", parameters={"p": _identifier_key(system, value)}
            )
            return sorted(str(r["RowKey"]).split("|", 1)[1] for r in rows)

    def index_identifiers(self, patients: Iterable[Mapping[str, Any]]) -> None:
        """Make Patients findable by each of their identifiers (rows are idempotent; a
        stale one is harmless: searches check the current version).

        Raises:
            StorageUnavailableError: storage failed.
        """
        with _storage("indexing identifiers"):
            for patient in patients:
                for identifier in patient.get("identifier") or ():
                    if identifier.get("system") and identifier.get("value"):
                        self._identifiers.upsert_entity(
                            {
                                "PartitionKey": _identifier_key(
                                    identifier["system"], identifier["value"]
                                ),
                                "RowKey": f"Patient|{patient['id']}",
                            }
                        )

    def erase(self, resource_type: str, resource_id: str) -> int:
        """Delete every version of a resource and its index row (erasure); versions deleted.

        Raises:
            StorageUnavailableError: storage failed.
        """
        prefix = f"{resource_type}/{resource_id}/_history/"
        with _storage("erasing a resource"):
            names = [b.name for b in self._blobs.list_blobs(name_starts_with=prefix)]
            for name in names:
                with contextlib.suppress(ResourceNotFoundError):
                    self._blobs.delete_blob(name, delete_snapshots="include")
            with contextlib.suppress(ResourceNotFoundError):
                self._rows.delete_entity(resource_type, resource_id)
        return len(names)

    def forget_patient(self, patient_id: str, identifiers: Iterable[tuple[str, str]]) -> None:
        """Delete a patient's identifier rows and compartment partition (last in erasure:
        the compartment is what a re-run of an interrupted erasure starts from).

        Raises:
            StorageUnavailableError: storage failed.
        """
        apart = self.unlinked(patient_id)
        with _storage("forgetting a patient"):
            for other in apart:  # the other side of an unlink names this patient
                with contextlib.suppress(ResourceNotFoundError):
                    self._compartments.delete_entity(other, f"~unlink|{patient_id}")
            for system, value in identifiers:
                with contextlib.suppress(ResourceNotFoundError):
                    self._identifiers.delete_entity(
                        _identifier_key(system, value), f"Patient|{patient_id}"
                    )
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
        with _storage("listing versions"):
            names = [b.name for b in self._blobs.list_blobs(name_starts_with=prefix)]
        found = [n.removeprefix(prefix).removesuffix(".json") for n in names]
        return sorted(int(v) for v in found if v.isdigit())

    def put(
        self,
        resource: Mapping[str, Any],
        source_time: datetime,
        patient: str | None,
        delete: bool = False,
        correlation_id: str = "",
    ) -> Change:
        """Store a resource (or, with ``delete``, a deletion of it) made at ``source_time``,
        as part of ingestion ``correlation_id``.

        Raises:
            ResourceConflictError: other writers kept winning (retryable).
            StorageUnavailableError: storage failed (retryable).
        """
        kind, ident = str(resource["resourceType"]), str(resource["id"])
        digest = content_hash({"resourceType": kind, "id": ident} if delete else resource)
        made = (source_time, correlation_id)
        with _storage("writing the record"):
            for attempt in range(_ATTEMPTS):
                # Most writes in a batch are new: try creating before reading (one round
                # trip saved); if the resource exists the create fails and we read.
                change = self._attempt(
                    resource,
                    kind,
                    ident,
                    digest,
                    made,
                    patient,
                    delete,
                    attempt == 0 and not delete,
                )
                if change is not None:
                    return change
                if attempt:  # lost a race: step aside a little, at random, before re-reading
                    time.sleep(random.uniform(0, 0.01 * attempt))
        raise ResourceConflictError(f"{kind}/{ident}: concurrent writers did not settle")

    def _attempt(
        self,
        resource: Mapping[str, Any],
        kind: str,
        ident: str,
        digest: str,
        made: tuple[datetime, str],
        patient: str | None,
        delete: bool,
        assume_new: bool = False,
    ) -> Change | None:
        """One try; None when another writer got in between (or ``assume_new`` was wrong)."""
        source_time, correlation_id = made
        current = None if assume_new else self.current(kind, ident)
        outcome = plan_write(current, digest, source_time, delete)
        if outcome is WriteOutcome.UNCHANGED:
            version = current.version if current else 0
            ours = current is not None and current.correlation_id == correlation_id
            if ours and version and current is not None:
                # A retry of the message that wrote it: finish a write a crash cut short.
                self._ensure_blob(resource, kind, ident, current, delete)
            return Change(
                kind,
                ident,
                version,
                outcome,
                version_blob(kind, ident, version),
                patient,
                current.correlation_id if current else "",
                compartment=current.patient if ours and current and not current.deleted else None,
            )
        version = (current.latest if current else 0) + 1
        now = self._clock()
        if outcome is WriteOutcome.OUT_OF_ORDER:
            assert current is not None
            if not self._claim(current, kind, ident, {"latest": version}):
                return None
            self._upload(resource, kind, ident, version, now, outcome, made, delete)
            self._remember(kind, ident, digest)
        else:
            row = {
                "latest": version,
                "version": version,
                "source_time": source_time.isoformat(),
                "updated": now.isoformat(),
                "hash": digest,
                "recent": json.dumps(_recent(current)),
                "patient": patient or "",
                "deleted": delete,
                "correlation": correlation_id,
            }
            if not self._claim(current, kind, ident, row):
                return None
            self._upload(resource, kind, ident, version, now, outcome, made, delete)
            before = current.patient if current and not current.deleted else None
            if before and (before != patient or delete):
                self._leave_compartment(kind, ident, before)
        listed = patient if outcome is not WriteOutcome.OUT_OF_ORDER and not delete else None
        return Change(
            kind,
            ident,
            version,
            outcome,
            version_blob(kind, ident, version),
            patient,
            correlation_id,
            compartment=listed,
        )

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
        resource: Mapping[str, Any],
        kind: str,
        ident: str,
        version: int,
        now: datetime,
        outcome: WriteOutcome,
        made: tuple[datetime, str],
        delete: bool,
    ) -> None:
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
                "source_time": made[0].isoformat(),
                "correlation": made[1],
            },
            content_settings=ContentSettings(content_type="application/fhir+json"),
        )

    def _ensure_blob(
        self,
        resource: Mapping[str, Any],
        kind: str,
        ident: str,
        current: CurrentVersion,
        delete: bool,
    ) -> None:
        blob = self._blobs.get_blob_client(version_blob(kind, ident, current.version))
        try:
            blob.get_blob_properties()
        except ResourceNotFoundError:
            outcome = WriteOutcome.DELETED if delete else WriteOutcome.UPDATED
            made = (current.source_time, current.correlation_id)
            self._upload(
                resource, kind, ident, current.version, self._clock(), outcome, made, delete
            )

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
        """A resource deleted or moved to another patient leaves its old compartment."""
        with contextlib.suppress(ResourceNotFoundError):
            self._compartments.delete_entity(patient.split("/", 1)[1], f"{kind}|{ident}")

    def list_in_compartments(
        self, changes: Iterable[Change], ingestion: IngestionRef | None = None
    ) -> None:
        """Add each change's resource to its patient's compartment, and the ingestion to
        each of those patients, one transaction per patient and 100 rows.

        Raises:
            StorageUnavailableError: storage failed (retryable; the rows are idempotent).
        """
        by_patient: dict[str, list[Change]] = {}
        for change in changes:
            if change.compartment:
                by_patient.setdefault(change.compartment.split("/", 1)[1], []).append(change)
        with _storage("writing compartments"):
            for patient, listed in by_patient.items():
                rows = {c.reference: c for c in listed}  # one operation per row in a batch
                operations = [
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
                if ingestion is not None:
                    operations.append(
                        (TransactionOperation.UPSERT, _ingestion_row(patient, ingestion))
                    )
                for start in range(0, len(operations), 100):
                    self._compartments.submit_transaction(operations[start : start + 100])
