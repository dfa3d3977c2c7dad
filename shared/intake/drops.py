"""Batch files dropped into ``ingest-drop/{partner}/{path}``: streamed, split into chunks
of records, each chunk stored in ``raw`` and sent to ``normalize``.

A file counts as its folder's partner's only when ``uploads.UploadService.admit`` says
so (an upload issued to that partner under this name, or a folder the deployment
trusts); any other file is reported in ``quarantine/drops/`` and never read.

Memory stays flat whatever the file size: the blob is read in chunks, inflated on the
fly when gzip, and split line by line (NDJSON, HL7 v2 batches, CSV with the mapping in
the blob's metadata). A Bundle JSON file is read whole, so it has a size limit.
Progress is checkpointed per chunk in the ``checkpoints`` table: after a crash the file
is read again and the chunks already sent are skipped; chunk names and ingestion ids
are derived from the file and the chunk number, so a chunk sent twice is the same
ingestion and the pipeline stores its records once. A report per file goes to
``reports/{partner}/{path}.report.json``; the drop is tagged ``intake=processed``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import logging
import re
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.storage.blob import BlobClient, BlobType, ContentSettings

from shared.normalize import json_codec
from shared.normalize.csv_mapping import load_mapping
from shared.normalize.errors import NormalizationError
from shared.normalize.ids import NAMESPACE
from shared.normalize.models import PayloadFormat
from shared.platform.envelope import Envelope
from shared.platform.errors import IntakeError, StorageUnavailableError
from shared.platform.names import Container, Queue, Table
from shared.platform.storage import StorageClients

from .models import AdmissionBasis
from .status import IngestionLog, StageReport
from .uploads import UploadService

__all__ = ["DropError", "DropEvent", "DropProcessor", "DropReport", "parse_blob_created"]

log = logging.getLogger(__name__)
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
_SUBJECT = re.compile(
    r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<name>.+)\Z"
)
_HL7_FRAME = re.compile(r"[\x0b\x1c]")
_SUFFIX = {PayloadFormat.FHIR: "ndjson", PayloadFormat.HL7V2: "hl7", PayloadFormat.CSV: "csv"}


class DropError(IntakeError):
    """A blob-created message is not an event we can act on (permanent)."""


@dataclass(frozen=True, slots=True)
class DropEvent:
    """The blob an Event Grid ``BlobCreated`` event names."""

    container: str
    name: str
    etag: str


def parse_blob_created(body: bytes) -> DropEvent:
    """Read an Event Grid event (or a one-element array of them).

    Raises:
        DropError: not JSON, not a BlobCreated event, or no blob named.
    """
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise DropError("the message is not JSON") from exc
    if isinstance(event, list) and len(event) == 1:
        event = event[0]
    if not isinstance(event, dict) or event.get("eventType") != "Microsoft.Storage.BlobCreated":
        raise DropError("not a Microsoft.Storage.BlobCreated event")
    found = _SUBJECT.match(str(event.get("subject", "")))
    if not found:
        raise DropError("the event's subject names no blob")
    return DropEvent(found["container"], found["name"], str(event.get("data", {}).get("eTag", "")))


@dataclass
class DropReport:
    """What became of one dropped file."""

    file: str
    partner: str | None
    format: str | None = None
    records: int = 0
    chunks: int = 0
    ingestions: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    status: str = "processed"
    resumed_from_chunk: int = 0

    def to_json(self) -> bytes:
        """The report file's content."""
        return json.dumps(
            {**self.__dict__, "written": datetime.now(UTC).isoformat()}, indent=2
        ).encode()


class _ChunkStream(io.RawIOBase):
    """A file-like view of an iterator of byte chunks (for gzip and text wrappers)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def _inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for chunk in chunks:
        data = inflater.decompress(chunk)
        if data:
            yield data
    tail = inflater.flush()
    if tail:
        yield tail


def _detect(name: str, head: bytes) -> PayloadFormat:
    lowered = name.lower().removesuffix(".gz")
    start = head.lstrip(b"\xef\xbb\xbf\x0b\r\n\t ")
    if lowered.endswith((".ndjson", ".jsonl", ".json")) or start.startswith((b"{", b"[")):
        return PayloadFormat.FHIR
    if lowered.endswith((".hl7", ".er7")) or start.startswith((b"MSH", b"FHS", b"BHS")):
        return PayloadFormat.HL7V2
    if lowered.endswith((".csv", ".tsv")):
        return PayloadFormat.CSV
    raise DropError("cannot tell the file's format from its name or first bytes")


class DropProcessor:
    """Processes one dropped file."""

    def __init__(
        self,
        clients: StorageClients,
        status: IngestionLog,
        uploads: UploadService,
        *,
        chunk_records: int = 1000,
        chunk_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._clients = clients
        self._status = status
        self._uploads = uploads
        self._checkpoints = clients.table_client(Table.CHECKPOINTS)
        self._chunk_records = chunk_records
        self._chunk_bytes = chunk_bytes

    def process(self, event: DropEvent) -> DropReport:
        """Split, store and enqueue a dropped file; resumable after a crash. A file that is
        not its folder's partner's (``UploadService.admit``), or whose partner is not
        registered, is reported in quarantine and left unread: a final answer, no retry.

        Raises:
            StorageUnavailableError: storage failed; the queue retries and the checkpoint
                keeps what was already sent.
        """
        drop = self._clients.container(Container.INGEST_DROP)
        if event.container != drop.container_name:
            raise DropError(f"events for container {event.container!r} are not for this stage")
        partner_id, _, path = event.name.partition("/")
        report = DropReport(file=event.name, partner=partner_id or None)
        blob = drop.get_blob_client(event.name)
        drop_id = hashlib.sha256(f"{event.name}|{event.etag}".encode()).hexdigest()[:32]
        try:
            properties = blob.get_blob_properties()
            admission = self._uploads.admit(
                event.name,
                drop_id,
                properties.last_modified,
                block_blob=properties.blob_type == BlobType.BLOCKBLOB,
            )
            if admission.basis is AdmissionBasis.REFUSED:
                report.status = "rejected"
                report.rejected.append(_issue("file", admission.reason))
                self._quarantine(event, report)
                log.warning(
                    "drop: refused",
                    extra={
                        "stage": "drop",
                        "partner": admission.partner,  # None: the folder names no partner
                        "upload_id": admission.upload_id,
                        "outcome": report.status,
                        "reason": admission.reason,  # our words, hashed like any string
                    },
                )
                return report
            checkpoint = self._checkpoint(partner_id, drop_id)
            if checkpoint.get("done"):
                return report  # a redelivered event for a file already processed
            report.resumed_from_chunk = int(checkpoint.get("chunks", 0))
            self._split_and_send(blob, event, partner_id, drop_id, report)
            self._checkpoints.upsert_entity(
                {
                    "PartitionKey": partner_id,
                    "RowKey": drop_id,
                    "chunks": report.chunks,
                    "done": True,
                },
                mode=UpdateMode.MERGE,
            )
            self._write_report(partner_id, path, report)
            blob.set_blob_tags({"intake": report.status})
        except ResourceNotFoundError:
            report.status = "gone"  # deleted before we got to it: nothing to do
        except AzureError as exc:
            raise StorageUnavailableError(
                f"processing a drop failed: {type(exc).__name__}"
            ) from exc
        log.info(
            "drop: %s",
            report.status,
            extra={
                "stage": "drop",
                "partner": partner_id,
                "outcome": report.status,
                "records": report.records,
                "chunks": report.chunks,
                "rejected": len(report.rejected),
            },
        )
        return report

    def _checkpoint(self, partner: str, drop_id: str) -> dict[str, Any]:
        try:
            return dict(self._checkpoints.get_entity(partner, drop_id))
        except ResourceNotFoundError:
            return {}

    def _split_and_send(
        self, blob: BlobClient, event: DropEvent, partner: str, drop_id: str, report: DropReport
    ) -> None:
        downloader = blob.download_blob()
        metadata = downloader.properties.metadata or {}
        chunks: Iterator[bytes] = iter(downloader.chunks())
        first = next(chunks, b"")
        stream = _prepend(first, chunks)
        if first[:2] == b"\x1f\x8b":
            stream = _inflate(stream)
            first_plain = next(stream, b"")
            stream = _prepend(first_plain, stream)
            head = first_plain
        else:
            head = first
        try:
            fmt = _detect(event.name, head)
        except DropError as exc:
            report.status = "rejected"
            report.rejected.append(_issue("file", str(exc)))
            return
        report.format = fmt.value
        mapping = metadata.get("mapping")
        if fmt is PayloadFormat.CSV:
            try:
                load_mapping(mapping or "")
            except NormalizationError as exc:
                report.status = "rejected"
                report.rejected.append(
                    _issue(
                        "file", exc.issues[0].diagnostics + " (set the blob's metadata 'mapping')"
                    )
                )
                return
        ndjson = event.name.lower().removesuffix(".gz").endswith((".ndjson", ".jsonl"))
        groups = _records(fmt, stream, report, ndjson=ndjson)
        number = 0
        for number, (payload, count) in enumerate(self._chunked(fmt, groups), start=1):
            report.records += count
            ingestion = str(uuid.uuid5(NAMESPACE, f"drop|{drop_id}|{number}"))
            report.ingestions.append(ingestion)
            if number <= report.resumed_from_chunk:
                continue  # sent before a crash
            self._send_chunk(partner, drop_id, number, ingestion, fmt, payload, mapping, count)
        report.chunks = number
        if report.rejected and report.records == 0:
            report.status = "rejected"
        elif report.rejected:
            report.status = "partial"

    def _chunked(
        self, fmt: PayloadFormat, groups: Iterator[tuple[bytes, int]]
    ) -> Iterator[tuple[bytes, int]]:
        header = b""
        if fmt is PayloadFormat.CSV:
            header = next(groups, (b"", 0))[0]
        batch: list[bytes] = []
        size = 0
        for record, _ in groups:
            batch.append(record)
            size += len(record)
            if len(batch) >= self._chunk_records or size >= self._chunk_bytes:
                yield header + b"".join(batch), len(batch)
                batch, size = [], 0
        if batch:
            yield header + b"".join(batch), len(batch)

    def _send_chunk(
        self,
        partner: str,
        drop_id: str,
        number: int,
        ingestion: str,
        fmt: PayloadFormat,
        payload: bytes,
        mapping: str | None,
        count: int,
    ) -> None:
        name = f"{partner}/drops/{drop_id}/{number:06d}.{_SUFFIX[fmt]}"
        content_type = {
            "fhir": "application/x-ndjson",
            "hl7v2": "x-application/hl7-v2+er7",
            "csv": "text/csv",
        }[fmt.value]
        self._clients.container(Container.RAW).get_blob_client(name).upload_blob(
            payload,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
            metadata={
                "partner": partner,
                "ingestion_id": ingestion,
                "format": fmt.value,
                "mapping": mapping or "",
                "drop": drop_id,
            },
        )
        now = datetime.now(UTC)
        self._status.record(
            partner,
            ingestion,
            StageReport(
                stage="received",
                outcome="stored",
                counts={"bytes": len(payload), "records": count},
                at=now,
            ),
        )
        envelope = Envelope.raw_received(ingestion, partner, name, now)
        self._clients.queue_client(Queue.NORMALIZE).send_message(envelope.to_bytes())
        self._checkpoints.upsert_entity(
            {"PartitionKey": partner, "RowKey": drop_id, "chunks": number, "done": False},
            mode=UpdateMode.MERGE,
        )

    def _write_report(self, partner: str, path: str, report: DropReport) -> None:
        self._clients.container(Container.REPORTS).get_blob_client(
            f"{partner}/{path}.report.json"
        ).upload_blob(
            report.to_json(),
            overwrite=True,
            content_settings=ContentSettings(content_type="application/json"),
        )

    def _quarantine(self, event: DropEvent, report: DropReport) -> None:
        self._clients.container(Container.QUARANTINE).get_blob_client(
            f"drops/{event.name}.report.json"
        ).upload_blob(report.to_json(), overwrite=True)


def _issue(location: str, text: str) -> dict[str, Any]:
    return {
        "location": location,
        "outcome": {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "invalid",
                    "diagnostics": text,
                    "location": [location],
                }
            ],
        },
    }


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _records(
    fmt: PayloadFormat, stream: Iterator[bytes], report: DropReport, *, ndjson: bool = False
) -> Iterator[tuple[bytes, int]]:
    """(record bytes, line number) for each record; CSV yields its header first. Text
    that is not UTF-8 costs only the record it is in, which the report names."""
    text = io.TextIOWrapper(
        io.BufferedReader(_ChunkStream(stream), 1024 * 1024),
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="",
    )
    if fmt is PayloadFormat.FHIR:
        records = _json_records(text, report, ndjson)
    elif fmt is PayloadFormat.HL7V2:
        records = _hl7_records(text)
    else:
        records = _csv_records(text)
    for record, line in records:
        try:
            yield record.encode("utf-8"), line
        except UnicodeEncodeError:
            report.rejected.append(_issue(f"line {line}", "not UTF-8: the record is left out"))


def _json_records(
    text: io.TextIOWrapper, report: DropReport, ndjson: bool
) -> Iterator[tuple[str, int]]:
    """NDJSON (by name, or when the first line is a whole JSON value) line by line, a
    line that is not JSON reported by its number; else one JSON document."""
    first, start = "", 0
    for start, line in enumerate(text, start=1):  # noqa: B007 - start is used after the loop
        if line.strip():
            first = line
            break
    if not first:
        return
    if ndjson or _is_json(first):
        for number, line in itertools.chain([(start, first)], enumerate(text, start=start + 1)):
            if not line.strip():
                continue
            if _is_json(line):
                yield line.rstrip("\r\n") + "\n", number
            else:
                report.rejected.append(
                    _issue(f"line {number}", "not valid JSON; the line is left out")
                )
        return
    body = first + text.read(MAX_BUNDLE_BYTES + 1)
    if len(body) > MAX_BUNDLE_BYTES:
        report.rejected.append(
            _issue(
                "file", f"a JSON document over {MAX_BUNDLE_BYTES} bytes: send large data as NDJSON"
            )
        )
        return
    # one document on one line, so the chunk is one NDJSON record
    yield (json_codec.dumps(json_codec.loads(body)) + "\n") if _is_json(body) else body, start


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _hl7_records(text: io.TextIOWrapper) -> Iterator[tuple[str, int]]:
    message: list[str] = []
    start = 0
    for number, raw in enumerate(text, start=1):
        for line in _HL7_FRAME.sub("", raw).replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if not line.strip() or line[:3] in {"FHS", "BHS", "BTS", "FTS"}:
                continue
            if line.startswith("MSH") and message:
                yield "\r".join(message) + "\r", start
                message = []
            if not message:
                start = number
            message.append(line)
    if message:
        yield "\r".join(message) + "\r", start


def _csv_records(text: io.TextIOWrapper) -> Iterator[tuple[str, int]]:
    reader = csv.reader(text)
    for number, row in enumerate(reader, start=1):
        if not any(cell.strip() for cell in row):
            continue
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(row)
        yield out.getvalue(), number
