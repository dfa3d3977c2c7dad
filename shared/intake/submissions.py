"""Partner submissions over HTTP: durable before acknowledged, never processed twice.

Order of work: check the request; claim the submission in the ``idempotency`` table
(by Idempotency-Key, else by content hash within a window); store the payload in
``raw`` under a name made of partner, date and content hash; record the ingestion;
enqueue ``normalize``; mark the claim done. A crash anywhere before the answer leaves
a claim that a resend resumes with the same ingestion id, so a retry never duplicates
and what was stored is never orphaned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import re
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import ContentSettings

from shared.normalize.ccda import parse_document
from shared.normalize.csv_mapping import load_mapping
from shared.normalize.errors import NormalizationError
from shared.normalize.hl7v2.converter import unconverted_type_reason
from shared.normalize.models import PayloadFormat
from shared.normalize.service import CONTENT_TYPES, XML_CONTENT_TYPES
from shared.pipeline.journey import IngestionLog, StageReport
from shared.platform.envelope import Envelope
from shared.platform.errors import StorageUnavailableError
from shared.platform.names import Container, Queue, Table
from shared.platform.ports import AuditLog
from shared.platform.storage import StorageClients
from shared.security.audit import ingest_audit_event
from shared.security.models import Partner, Role, UnmappedTypes

from .acks import application_ack, application_outcome
from .errors import (
    EmptyBodyError,
    ForbiddenError,
    InvalidDocumentError,
    InvalidHeaderError,
    PayloadTooLargeError,
    SubmissionInProgressError,
    UnknownMappingError,
    UnsupportedMediaTypeError,
)
from .hl7_ack import encode_ack
from .hl7_header import HEADER_BYTES, check_header, read_header
from .models import Receipt, Submission

__all__ = ["SubmissionService", "Submitter", "SweepResult"]

log = logging.getLogger(__name__)
_MAPPING = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\Z")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}\Z")  # printable ASCII, no spaces
# A claim not yet done is leased to the request working on it (``lease_until``): a resend
# in that time is told to come back, since two requests storing one submission would
# enqueue it twice. Once the lease ran out (a crash), one resend (or the sweeper) takes it
# over with a conditional write, so only one of several resumes. A request that ran past
# its own lease checks it still holds it before enqueueing.
CLAIM_LEASE = timedelta(seconds=15)
MESSAGE_ID_CHARS = 199  # of MSH-10 kept on the journey: all the door accepts
_EXTENSIONS = {
    PayloadFormat.HL7V2: "hl7",
    PayloadFormat.FHIR: "json",
    PayloadFormat.CSV: "csv",
    PayloadFormat.CCDA: "xml",
}


class Submitter(Protocol):
    """Port: what the other channels (MLLP, the intake-requests queue) submit through."""

    def submit(self, partner: Partner, submission: Submission) -> Receipt:
        """Store and enqueue a submission, or return the receipt of the same one."""


@dataclass
class SweepResult:
    """What a sweep did."""

    resumed: int = 0
    dropped: int = 0


def _check_document(data: bytes) -> None:
    """A C-CDA document is read once at the door with the hardened parser, so XML that
    is unsafe, malformed or not a ClinicalDocument is a 400 now, not a quarantine later.

    Raises:
        InvalidDocumentError: the first issue the parser found.
    """
    try:
        parse_document(data)
    except NormalizationError as exc:
        first = exc.issues[0]
        raise InvalidDocumentError(first.diagnostics, first.location, first.code.value) from exc


def _decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    name = (encoding or "identity").strip().lower()
    if name == "identity":
        return body
    if name not in {"gzip", "x-gzip"}:
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported; send gzip or nothing"
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise UnsupportedMediaTypeError(f"the gzip body cannot be read: {exc}") from exc
    if len(data) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(f"the body inflates past {limit} bytes")
    if not inflater.eof:
        raise UnsupportedMediaTypeError("the gzip body is truncated")
    return data


class SubmissionService:
    """Accepts partner submissions."""

    def __init__(
        self,
        clients: StorageClients,
        status: IngestionLog,
        *,
        max_bytes: int,
        max_decompressed: int,
        dedup_window: timedelta,
        audit: AuditLog | None = None,
    ) -> None:
        self._clients = clients
        self._status = status
        self._audit = audit
        self._claims: TableClient = clients.table_client(Table.IDEMPOTENCY)
        self._max_bytes = max_bytes
        self._max_decompressed = max_decompressed
        self._window = dedup_window

    def submit(self, partner: Partner, submission: Submission) -> Receipt:
        """Store and enqueue a submission, or return the receipt of the same one.

        Raises:
            SubmissionError: the request is refused (nothing stored).
            StorageUnavailableError: storage failed; the caller may resend safely.
        """
        if Role.INGEST not in partner.roles:
            raise ForbiddenError("this partner may not submit data (role ingest)")
        if not submission.body:
            raise EmptyBodyError("the request body is empty")
        if len(submission.body) > self._max_bytes:
            raise PayloadTooLargeError(
                f"the body is over {self._max_bytes} bytes; send large files as batch "
                "uploads instead: POST /api/ingest/uploads answers a URL to PUT the file to "
                "(container ingest-drop)"
            )
        media = (submission.content_type or "").split(";")[0].strip().lower()
        fmt = CONTENT_TYPES.get(media) or (
            PayloadFormat.CCDA if media in XML_CONTENT_TYPES else None
        )
        if fmt is None:
            raise UnsupportedMediaTypeError(
                f"Content-Type {media or 'none'!r} is not supported; send "
                f"{', '.join(sorted(CONTENT_TYPES | dict.fromkeys(XML_CONTENT_TYPES)))}"
            )
        if submission.mapping is not None and not _MAPPING.match(submission.mapping):
            raise UnknownMappingError(
                "mapping: a mapping name is lowercase letters, digits and hyphens", "mapping"
            )
        if fmt is PayloadFormat.CSV:
            if not submission.mapping:
                raise UnknownMappingError("a CSV submission needs ?mapping=NAME", "mapping")
            try:
                load_mapping(submission.mapping)
            except NormalizationError as exc:
                raise UnknownMappingError(exc.issues[0].diagnostics, "mapping") from exc
        if submission.idempotency_key is not None and not _IDEMPOTENCY_KEY.match(
            submission.idempotency_key
        ):
            raise InvalidHeaderError(
                "Idempotency-Key: 1 to 255 printable ASCII characters", "Idempotency-Key"
            )
        data = _decompress(submission.body, submission.content_encoding, self._max_decompressed)
        if not data:
            raise EmptyBodyError("the body is empty once decompressed")
        note = ""
        source: dict[str, str] = {}  # the message's own ids, which the console searches by
        if fmt is PayloadFormat.HL7V2:  # refused here, the ACK still says AE, not AA
            header = check_header(
                data, refuse_unmapped=partner.unmapped_types is UnmappedTypes.REFUSE
            )
            unmapped = unconverted_type_reason(header.message_code) if header else None
            note = f"stored, not converted: {unmapped}" if unmapped else ""
            if header is not None:  # MSH-10 and MSH-9.1: ids and codes, never PHI
                source = {
                    "message_id": header.control_id[:MESSAGE_ID_CHARS],
                    "message_type": header.message_code[:16],
                }
        elif fmt is PayloadFormat.CCDA:
            _check_document(data)
        digest = hashlib.sha256(data).hexdigest()
        now = datetime.now(UTC)
        key = (
            f"key-{hashlib.sha256(submission.idempotency_key.encode()).hexdigest()}"
            if submission.idempotency_key
            else f"sha-{digest}"
        )
        blob_name = f"{partner.id}/{now:%Y/%m/%d}/{digest}.{_EXTENSIONS[fmt]}"
        started = time.monotonic()
        claim, etag = self._claim(
            partner.id, key, blob_name, now, by_content=not submission.idempotency_key
        )
        if claim.get("stored") and etag is None:
            return Receipt(claim["ingestion_id"], claim["created"], True, claim["raw_blob"], note)
        # Resuming a claim: same id; the payload is the one in hand (with an
        # Idempotency-Key the resend may differ from an attempt that never stored).
        ingestion_id, created = claim["ingestion_id"], claim["created"]
        self._store(
            blob_name,
            data,
            media,
            {
                "partner": partner.id,
                "ingestion_id": ingestion_id,
                "format": fmt.value,
                "mapping": (submission.mapping or "") if fmt is PayloadFormat.CSV else "",
                "received": created.isoformat(),
            },
        )
        self._status.record(
            partner.id,
            ingestion_id,
            StageReport(
                stage="received",
                outcome="stored",
                counts={"bytes": len(data)},
                labels={"blob": blob_name, "channel": submission.channel, **source},
                at=created,
            ),
        )
        if self._audit is not None:  # before the 202: an accepted payload is always audited
            self._audit.write(
                ingest_audit_event(partner.id, ingestion_id, blob_name, len(data), created)
            )
        if time.monotonic() - started > CLAIM_LEASE.total_seconds() / 2:
            etag = self._still_ours(partner.id, key, etag)
        if etag is not None:
            self._enqueue(partner.id, key, ingestion_id, created, blob_name, submission.traceparent)
        log.info(
            "ingest: stored",
            extra={
                "stage": "ingest",
                "partner": partner.id,
                "correlation_id": ingestion_id,
                "bytes": len(data),
                "format": fmt.value,
                "channel": submission.channel,
                "outcome": "stored",
            },
        )
        return Receipt(ingestion_id, created, False, blob_name, note)

    def _claim(
        self, partner: str, key: str, blob_name: str, now: datetime, *, by_content: bool
    ) -> tuple[dict[str, Any], str | None]:
        """The claim of this submission, and its ETag when this request holds its lease
        (None: a stored submission's claim, whose receipt is the answer).

        Raises:
            SubmissionInProgressError: another request holds the lease.
            StorageUnavailableError: storage failed.
        """
        row = {
            "PartitionKey": partner,
            "RowKey": key,
            "ingestion_id": str(uuid.uuid4()),
            "created": now,
            "raw_blob": blob_name,
            "stored": False,
            "lease_until": now + CLAIM_LEASE,
        }
        try:
            made = self._claims.create_entity(row)
            return row, str(made["etag"])
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise StorageUnavailableError(f"claiming failed: {type(exc).__name__}") from exc
        try:
            existing = self._claims.get_entity(partner, key)
        except (ResourceNotFoundError, AzureError) as exc:
            raise StorageUnavailableError(f"reading a claim failed: {type(exc).__name__}") from exc
        if not existing.get("stored"):
            return self._take_over(existing, now)
        expired = by_content and now - existing["created"] > self._window
        if not expired:
            return dict(existing), None
        try:  # the same content again after the window: a new ingestion
            renewed = self._claims.update_entity(
                row,
                mode=UpdateMode.REPLACE,
                etag=existing.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError as exc:
            raise SubmissionInProgressError(
                "the same submission is being stored by another request; resend in a moment"
            ) from exc
        except AzureError as exc:
            raise StorageUnavailableError(f"renewing a claim failed: {type(exc).__name__}") from exc
        return row, str(renewed["etag"])

    def _take_over(self, existing: Any, now: datetime) -> tuple[dict[str, Any], str]:
        """The lease of a claim not yet done, when it ran out (its holder crashed or is
        stuck); a conditional write, so of several takers only one wins.

        Raises:
            SubmissionInProgressError: the lease holds, or another taker won.
            StorageUnavailableError: storage failed.
        """
        lease = existing.get("lease_until") or existing["created"] + CLAIM_LEASE
        busy = SubmissionInProgressError(
            "the same submission is being stored by another request; resend in a moment",
            retry_after=max(1, math.ceil((lease - now).total_seconds())),
        )
        if lease > now:
            raise busy
        update = {
            "PartitionKey": existing["PartitionKey"],
            "RowKey": existing["RowKey"],
            "lease_until": now + CLAIM_LEASE,
        }
        try:
            taken = self._claims.update_entity(
                update,
                mode=UpdateMode.MERGE,
                etag=existing.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise busy from exc
        except AzureError as exc:
            raise StorageUnavailableError(f"taking a claim failed: {type(exc).__name__}") from exc
        return {**dict(existing), **update}, str(taken["etag"])

    def _still_ours(self, partner: str, key: str, etag: str | None) -> str | None:
        """Renew our lease before enqueueing after a slow request: the new ETag, or None
        when another request took the claim over (it enqueues; the payload is stored).

        Raises:
            StorageUnavailableError: storage failed, or the sweeper dropped the claim (the
                caller resends, and the stored payload is found again).
        """
        try:
            renewed = self._claims.update_entity(
                {
                    "PartitionKey": partner,
                    "RowKey": key,
                    "lease_until": datetime.now(UTC) + CLAIM_LEASE,
                },
                mode=UpdateMode.MERGE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            return None
        except (ResourceNotFoundError, AzureError) as exc:
            raise StorageUnavailableError(f"renewing a lease failed: {type(exc).__name__}") from exc
        return str(renewed["etag"])

    def _store(self, name: str, data: bytes, media: str, metadata: dict[str, str]) -> None:
        blob = self._clients.container(Container.RAW).get_blob_client(name)
        try:
            blob.upload_blob(
                data,
                overwrite=False,
                metadata=metadata,
                content_settings=ContentSettings(content_type=media),
            )
        except ResourceExistsError:
            return  # content-addressed: the same bytes are already stored
        except AzureError as exc:
            raise StorageUnavailableError(
                f"storing the payload failed: {type(exc).__name__}"
            ) from exc

    def sweep(self, grace: timedelta) -> SweepResult:
        """Finish submissions that stopped half-way (a crash between claim and enqueue).

        A claim older than ``grace`` and not done is resumed when its payload is in
        ``raw`` (status, envelope, done) and dropped when it is not: then nothing was
        stored and the caller, who got no 202, sends again.

        Raises:
            StorageUnavailableError: storage failed; the next run tries again.
        """
        cutoff = datetime.now(UTC) - grace
        result = SweepResult()
        try:
            stale = list(
                self._claims.query_entities(
                    "stored eq false and created lt @cutoff", parameters={"cutoff": cutoff}
                )
            )
            for stale_claim in stale:
                try:  # a request still at work holds the lease: leave it to it
                    claim, etag = self._take_over(stale_claim, datetime.now(UTC))
                except SubmissionInProgressError:
                    continue
                blob = self._clients.container(Container.RAW).get_blob_client(claim["raw_blob"])
                try:
                    props = blob.get_blob_properties()
                except ResourceNotFoundError:
                    with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
                        self._claims.delete_entity(
                            claim["PartitionKey"],
                            claim["RowKey"],
                            etag=etag,
                            match_condition=MatchConditions.IfNotModified,
                        )
                        result.dropped += 1
                    continue
                self._status.record(
                    claim["PartitionKey"],
                    claim["ingestion_id"],
                    StageReport(
                        stage="received",
                        outcome="stored",
                        counts={"bytes": props.size, "swept": 1},
                        labels={"blob": claim["raw_blob"]},
                        at=claim["created"],
                    ),
                )
                self._enqueue(
                    claim["PartitionKey"],
                    claim["RowKey"],
                    claim["ingestion_id"],
                    claim["created"],
                    claim["raw_blob"],
                    None,
                )
                result.resumed += 1
        except AzureError as exc:
            raise StorageUnavailableError(f"sweeping failed: {type(exc).__name__}") from exc
        return result

    def _enqueue(
        self,
        partner: str,
        key: str,
        ingestion_id: str,
        created: datetime,
        blob_name: str,
        traceparent: str | None,
    ) -> None:
        envelope = Envelope.raw_received(ingestion_id, partner, blob_name, created, traceparent)
        try:
            self._clients.queue_client(Queue.NORMALIZE).send_message(envelope.to_bytes())
            self._claims.update_entity(
                {"PartitionKey": partner, "RowKey": key, "stored": True, "raw_blob": blob_name},
                mode=UpdateMode.MERGE,
            )
        except AzureError as exc:
            raise StorageUnavailableError(f"enqueueing failed: {type(exc).__name__}") from exc

    def application_ack(self, partner: str, ingestion_id: str) -> tuple[bool, bytes | None]:
        """The application ACK of one of the partner's HL7 v2 ingestions, once
        normalization and consent are done: (known, ACK or None while pending). Unknown
        (also another partner's id, or a payload that is not one HL7 v2 message): (False,
        None).

        Raises:
            StorageUnavailableError: storage failed.
        """
        row = self._status.get(partner, ingestion_id)
        blob_name = str((row or {}).get("received_blob") or "")
        several = int((row or {}).get("normalize_records") or 1) > 1  # a batch: no one ACK
        if row is None or not blob_name.endswith(".hl7") or several:
            return False, None
        outcome = application_outcome(row)
        if outcome is None:
            return True, None
        blob = self._clients.container(Container.RAW).get_blob_client(blob_name)
        try:
            head = blob.download_blob(offset=0, length=HEADER_BYTES).readall()
        except ResourceNotFoundError:  # purged since: the journey still says what happened
            head = b""
        except AzureError as exc:
            raise StorageUnavailableError(
                f"reading a payload failed: {type(exc).__name__}"
            ) from exc
        header = read_header(head)
        return True, encode_ack(application_ack(head, header, outcome), header)

    def status(self, partner: str, ingestion_id: str) -> dict[str, Any] | None:
        """The journey of one of the partner's ingestions, or None (also for another
        partner's id: nobody learns that an id exists)."""
        row = self._status.get(partner, ingestion_id)
        return journey(row) if row else None


def journey(row: dict[str, Any]) -> dict[str, Any]:
    """The public view of an ingestion row: stages with their times, counts and issues."""
    stages: dict[str, dict[str, Any]] = {}
    for column, value in row.items():
        stage, _, field_name = column.partition("_")
        if not field_name or column in {"PartitionKey", "RowKey"}:
            continue
        entry = stages.setdefault(stage, {})
        if field_name == "issues":
            entry["issues"] = json.loads(value) if value else []
        elif column == "store_written":  # the versions written, by id
            entry["written"] = json.loads(value) if value else []
        elif isinstance(value, datetime):
            entry[field_name] = value.isoformat()
        else:
            entry[field_name] = value
    order = ["received", "normalize", "consent", "store", "notify"]
    return {
        "id": row["RowKey"],
        "partner": row["PartitionKey"],
        "stages": [
            {"stage": s, **stages[s]}
            for s in sorted(stages, key=lambda x: order.index(x) if x in order else 99)
        ],
    }
