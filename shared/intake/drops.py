"""Batch files dropped into ``ingest-drop/{partner}/{path}``: streamed, split into chunks
of records, each chunk stored in ``raw`` and sent to ``normalize``.

A file counts as its folder's partner's only when ``uploads.UploadService.admit`` says
so (an upload issued to that partner under this name, or a folder the deployment
trusts); any other file is reported in ``quarantine/drops/`` and never read.

Memory stays flat whatever the file size: the blob is read in chunks, inflated on the
fly when gzip (at most 1 MiB at a time), and split line by line (NDJSON, HL7 v2 batches,
CSV with the mapping in the blob's metadata). A Bundle JSON file is read whole. Two limits
keep a hostile file from holding a worker: a record (a line, a message, a row, a whole
JSON document) over ``INTAKE_DROP_MAX_RECORD_BYTES`` is reported by its line and skipped
without being held, the others go on; a gzip file that inflates past
``INTAKE_DROP_MAX_DECOMPRESSED_BYTES``, or past ``INTAKE_DROP_MAX_INFLATE_RATIO`` times its
own size (a bomb), stops there: it is reported and quarantined, what was sent stays sent.
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
from azure.storage.blob import BlobClient, BlobType, ContentSettings, StorageStreamDownloader

from shared.normalize import json_codec
from shared.normalize.ccda import is_clinical_document
from shared.normalize.csv_mapping import load_mapping
from shared.normalize.errors import IssueCode, NormalizationError
from shared.normalize.ids import NAMESPACE
from shared.normalize.models import PayloadFormat
from shared.pipeline.journey import IngestionLog, StageReport
from shared.platform.envelope import Envelope
from shared.platform.errors import IntakeError, StorageUnavailableError
from shared.platform.names import Container, Queue, Table
from shared.platform.storage import StorageClients

from .documents import DocumentLimits, documents
from .models import AdmissionBasis
from .uploads import UploadService

__all__ = [
    "DropError",
    "DropEvent",
    "DropProcessor",
    "DropReport",
    "DropTooLargeError",
    "DropUnreadableError",
    "decode_drop",
    "parse_blob_created",
]

log = logging.getLogger(__name__)
_INFLATE_BLOCK = 1024 * 1024  # the most one step of gzip inflation holds
_HEAD_BYTES = 16  # what is kept of a line over the limit: enough to see an HL7 MSH
_SUBJECT = re.compile(
    r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<name>.+)\Z"
)
_HL7_FRAME_BYTES = re.compile(rb"[\x0b\x1c]")
_SUFFIX = {
    PayloadFormat.FHIR: "ndjson",
    PayloadFormat.HL7V2: "hl7",
    PayloadFormat.CSV: "csv",
    PayloadFormat.CCDA: "xml",
}
_ZIP = b"PK\x03\x04"
_DOCUMENT_SUFFIXES = (".xml", ".ccda", ".cda", ".zip")


class DropError(IntakeError):
    """A blob-created message is not an event we can act on (permanent)."""


class DropUnreadableError(IntakeError):
    """A drop's bytes cannot be read to the end: a corrupt or truncated gzip, bytes after
    it, nesting too deep (permanent: reported and quarantined, no retry)."""


class DropTooLargeError(IntakeError):
    """A gzip drop inflates past its limit (permanent: reported and quarantined, no retry)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file inflates past {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class DropEvent:
    """The blob an Event Grid ``BlobCreated`` event names."""

    container: str
    name: str
    etag: str


def decode_drop(body: bytes) -> DropEvent | None:
    """The drop a ``blob-created`` message announces, or None (logged) for an event that
    names no blob of ours: nothing of a partner's is in it, so it is not kept."""
    try:
        return parse_blob_created(body)
    except DropError as exc:
        # The reason may quote a blob name (a partner may name files after patients).
        log.error(
            "drop: unusable event (%s)",
            type(exc).__name__,
            extra={"stage": "drop", "outcome": "ignored", "reason": str(exc)},  # hashed
        )
        return None


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


def _inflate(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """gzip inflated at most ``_INFLATE_BLOCK`` bytes at a time, so a block of a bomb never
    becomes hundreds of MiB in memory, and at most ``limit`` bytes in all. Members written
    one after another (``cat a.gz b.gz``, as RFC 1952 allows) are read one after another;
    zero bytes after the last are padding.

    Raises:
        DropTooLargeError: the file inflates past ``limit``.
        DropUnreadableError: corrupt, truncated, or other bytes after the gzip data.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    carry = b""  # the start of a next member's header, split across blocks

    def counted(out: bytes) -> bytes:
        nonlocal total
        total += len(out)
        if total > limit:
            raise DropTooLargeError(limit)
        return out

    try:
        for chunk in chunks:
            data, carry = carry + chunk, b""
            while data:
                if inflater.eof:
                    if data == b"\x1f":
                        carry = data
                        break
                    if not data.startswith(b"\x1f\x8b"):
                        if data.strip(b"\x00"):
                            raise DropUnreadableError("the file has bytes after its gzip data")
                        break
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out = inflater.decompress(data, _INFLATE_BLOCK)
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                if out:
                    yield counted(out)
            while not inflater.eof:  # a full block may leave output inside zlib: ask again
                out = inflater.decompress(b"", _INFLATE_BLOCK)
                if not out:
                    break
                yield counted(out)
    except zlib.error as exc:
        raise DropUnreadableError("the gzip data is corrupt") from exc
    if not inflater.eof or carry:
        raise DropUnreadableError("the gzip file is truncated")


def _detect(name: str, head: bytes) -> PayloadFormat:
    lowered = name.lower().removesuffix(".gz")
    start = head.lstrip(b"\xef\xbb\xbf\x0b\r\n\t ")
    if lowered.endswith((".ndjson", ".jsonl", ".json")) or start.startswith((b"{", b"[")):
        return PayloadFormat.FHIR
    if lowered.endswith((".hl7", ".er7")) or start.startswith((b"MSH", b"FHS", b"BHS")):
        return PayloadFormat.HL7V2
    if lowered.endswith((".csv", ".tsv")):
        return PayloadFormat.CSV
    if (
        lowered.endswith(_DOCUMENT_SUFFIXES)
        or start.startswith(_ZIP)
        or is_clinical_document(start)
    ):
        return PayloadFormat.CCDA
    raise DropError("cannot tell the file's format from its name or first bytes")


class DropProcessor:
    """Processes one dropped file."""

    def __init__(
        self,
        clients: StorageClients,
        status: IngestionLog,
        uploads: UploadService,
        *,
        max_record_bytes: int,
        max_decompressed_bytes: int,
        max_inflate_ratio: int,
        chunk_records: int = 1000,
        chunk_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        """Args:
        max_record_bytes: the most one record may be (``INTAKE_DROP_MAX_RECORD_BYTES``).
        max_decompressed_bytes: the most a gzip file may inflate to
            (``INTAKE_DROP_MAX_DECOMPRESSED_BYTES``).
        max_inflate_ratio: the most a gzip file may inflate to, as a multiple of its own
            size (``INTAKE_DROP_MAX_INFLATE_RATIO``): a bomb stops after a few MB.
        """
        self._clients = clients
        self._status = status
        self._uploads = uploads
        self._checkpoints = clients.table_client(Table.CHECKPOINTS)
        self._max_record = max_record_bytes
        self._max_inflated = max_decompressed_bytes
        self._max_ratio = max_inflate_ratio
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
        try:
            self._split(downloader, event, partner, drop_id, report)
        except DropTooLargeError as exc:
            # Deterministic: a retry would stop at the same byte, so the file is done with
            # (the caller checkpoints it as such); the chunks sent before stay sent.
            rule = (
                "INTAKE_DROP_MAX_DECOMPRESSED_BYTES"
                if exc.limit == self._max_inflated
                else f"INTAKE_DROP_MAX_INFLATE_RATIO: {self._max_ratio} times its "
                f"{downloader.size} bytes"
            )
            report.rejected.append(
                _issue("file", f"{exc} ({rule}); the rest is left out", IssueCode.TOO_COSTLY)
            )
            report.status = "partial" if report.records else "rejected"
            self._quarantine(event, report)
        except DropUnreadableError as exc:  # the same bytes on a retry: done with, too
            report.rejected.append(_issue("file", f"{exc}; the rest is left out"))
            report.status = "partial" if report.records else "rejected"
            self._quarantine(event, report)

    def _split(
        self,
        downloader: StorageStreamDownloader[bytes],
        event: DropEvent,
        partner: str,
        drop_id: str,
        report: DropReport,
    ) -> None:
        metadata = downloader.properties.metadata or {}
        chunks: Iterator[bytes] = iter(downloader.chunks())
        first = next(chunks, b"")
        stream = _prepend(first, chunks)
        if first[:2] == b"\x1f\x8b":
            stream = _inflate(stream, min(self._max_inflated, self._max_ratio * downloader.size))
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
        if fmt is PayloadFormat.CCDA:
            groups = documents(
                stream,
                lambda where, text, code: report.rejected.append(_issue(where, text, code)),
                zipped=head.startswith(_ZIP),
                limits=DocumentLimits(self._max_record, self._max_inflated, self._max_ratio),
            )
        else:
            groups = _records(fmt, stream, report, max_record_bytes=self._max_record, ndjson=ndjson)
        for number, (payload, count) in enumerate(self._chunked(fmt, groups), start=1):
            report.records += count
            report.chunks = number
            ingestion = str(uuid.uuid5(NAMESPACE, f"drop|{drop_id}|{number}"))
            report.ingestions.append(ingestion)
            if number <= report.resumed_from_chunk:
                continue  # sent before a crash
            self._send_chunk(partner, drop_id, number, ingestion, fmt, payload, mapping, count)
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
        if fmt is PayloadFormat.CCDA:  # a document is an ingestion of its own
            yield from ((record, 1) for record, _ in groups)
            return
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
            "ccda": "application/cda+xml",
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
                labels={"blob": name, "channel": "drop"},  # where the chunk is, as HTTP's
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


def _issue(location: str, text: str, code: IssueCode = IssueCode.INVALID) -> dict[str, Any]:
    return {
        "location": location,
        "outcome": {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": code.value,
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


@dataclass(frozen=True, slots=True)
class _Overlong:
    """A line over the record limit, skipped as it was read: only its first bytes are kept
    (an HL7 reader must see whether it starts a message) and how many ``"`` it had (a CSV
    reader must know whether it ends inside a quoted field), never the rest."""

    head: bytes
    quotes: int = 0


_Line = bytes | _Overlong


def _ending(line: bytes) -> int:
    """How many bytes of ``line`` are its line ending (``\r\n``, ``\n``, ``\r`` or none)."""
    if line.endswith(b"\r\n"):
        return 2
    return 1 if line.endswith((b"\n", b"\r")) else 0


def _lines(blocks: Iterable[bytes], limit: int) -> Iterator[_Line]:
    """The lines of a stream of blocks with their endings, split where a text reader with
    universal newlines splits (``\n``, ``\r\n``, ``\r``); a line whose content is over
    ``limit`` bytes comes as an ``_Overlong`` and is never held whole.

    Linear in the input: a line that spans blocks is kept as a list of parts and joined
    once, and each block is split once (``bytes.splitlines`` splits on exactly those three).
    """
    parts: list[bytes] = []  # the line so far, when it began in an earlier block
    held = 0  # its length
    over: _Overlong | None = None  # what is kept of it once it is over the limit
    cr = False  # the line so far ends in \r at a block's end: its \n may be in the next
    for block in blocks:
        if not block:
            continue
        if cr:
            cr = False
            if block.startswith(b"\n"):
                block = block[1:]
                parts.append(b"\n")
                over = over and _overlong(over, [], b"\n")
            yield over or b"".join(parts)
            parts, held, over = [], 0, None
            if not block:
                continue
        pieces = block.splitlines(keepends=True)
        tail = pieces.pop()
        if tail.endswith(b"\n"):
            pieces.append(tail)
            tail = b""
        if pieces:
            first = 0
            if held:  # the first piece ends the line that began before this block
                piece = pieces[0]
                first = 1
                if over is None and held + len(piece) - _ending(piece) <= limit:
                    parts.append(piece)
                    yield b"".join(parts)
                else:
                    yield _overlong(over, parts, piece)
                parts, held, over = [], 0, None
            for piece in pieces[first:] if first else pieces:
                if len(piece) > limit and len(piece) - _ending(piece) > limit:
                    yield _overlong(None, [], piece)
                else:
                    yield piece
        if tail:
            cr = tail.endswith(b"\r")
            held += len(tail)
            parts.append(tail)
            if over is not None or held - cr > limit:
                over, parts = _overlong(over, parts), []
    if held:
        yield over or b"".join(parts)


def _overlong(kept: _Overlong | None, parts: list[bytes], last: bytes = b"") -> _Overlong:
    """What is kept of an over-long line: ``kept`` so far, plus its next parts."""
    head = kept.head if kept else b""
    quotes = kept.quotes if kept else 0
    for part in (*parts, last):
        if len(head) < _HEAD_BYTES:
            head += part[: _HEAD_BYTES - len(head)]
        quotes += part.count(b'"')
    return _Overlong(head, quotes)


def _records(
    fmt: PayloadFormat,
    stream: Iterator[bytes],
    report: DropReport,
    *,
    max_record_bytes: int,
    ndjson: bool = False,
) -> Iterator[tuple[bytes, int]]:
    """(record bytes, line number) for each record; CSV yields its header first. Text
    that is not UTF-8, and a record over ``max_record_bytes``, cost only the record they
    are in, which the report names by its line."""
    lines = _without_bom(_lines(stream, max_record_bytes))
    if fmt is PayloadFormat.FHIR:
        return _json_records(lines, report, ndjson, max_record_bytes)
    if fmt is PayloadFormat.HL7V2:
        return _hl7_records(lines, report, max_record_bytes)
    return _csv_records(lines, report, max_record_bytes)


def _without_bom(lines: Iterator[_Line]) -> Iterator[_Line]:
    first = next(lines, None)
    if first is None:
        return
    yield first.removeprefix(b"\xef\xbb\xbf") if isinstance(first, bytes) else first
    yield from lines


def _too_long(location: str, limit: int) -> dict[str, Any]:
    return _issue(
        location,
        f"the record is over {limit} bytes (INTAKE_DROP_MAX_RECORD_BYTES); it is left out",
        IssueCode.TOO_LONG,
    )


def _not_utf8(location: str) -> dict[str, Any]:
    return _issue(location, "not UTF-8: the record is left out")


def _json_records(
    lines: Iterator[_Line], report: DropReport, ndjson: bool, limit: int
) -> Iterator[tuple[bytes, int]]:
    """NDJSON (by name, or when the first line is a whole JSON value) line by line, a
    line that is not JSON reported by its number; else one JSON document, at most
    ``limit`` bytes."""
    numbered = enumerate(lines, start=1)
    start, first = next(
        ((n, line) for n, line in numbered if isinstance(line, _Overlong) or line.strip()),
        (0, b""),
    )
    if not start:
        return
    if ndjson or isinstance(first, _Overlong) or _is_json(first.decode("utf-8", "surrogateescape")):
        for number, line in itertools.chain([(start, first)], numbered):
            if isinstance(line, _Overlong):
                report.rejected.append(_too_long(f"line {number}", limit))
            elif line.strip() and (record := _ndjson_record(line, number, report)):
                yield record, number
        return
    parts, size = [first], len(first)
    for _, line in numbered:
        if isinstance(line, _Overlong) or size + len(line) > limit:
            report.rejected.append(
                _issue(
                    "file",
                    f"a JSON document over {limit} bytes (INTAKE_DROP_MAX_RECORD_BYTES): "
                    "send large data as NDJSON",
                    IssueCode.TOO_LONG,
                )
            )
            return
        parts.append(line)
        size += len(line)
    try:
        body = b"".join(parts).decode("utf-8")
    except UnicodeDecodeError:
        report.rejected.append(_not_utf8(f"line {start}"))
        return
    # one document on one line, so the chunk is one NDJSON record
    yield (
        ((json_codec.dumps(json_codec.loads(body)) + "\n") if _is_json(body) else body).encode(),
        start,
    )


def _ndjson_record(line: bytes, number: int, report: DropReport) -> bytes | None:
    """The line as a record ending in one ``\n``, or None and the reason in the report."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        report.rejected.append(_not_utf8(f"line {number}"))
        return None
    if not _is_json(text):
        report.rejected.append(_issue(f"line {number}", "not valid JSON; the line is left out"))
        return None
    if line.endswith(b"\n") and not line.endswith(b"\r\n"):
        return line
    return line.rstrip(b"\r\n") + b"\n"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    except RecursionError as exc:  # "[" a thousand times: no record, and no retry either
        raise DropUnreadableError("a JSON record is nested too deeply") from exc
    return True


def _hl7_records(
    lines: Iterator[_Line], report: DropReport, limit: int
) -> Iterator[tuple[bytes, int]]:
    """HL7 v2 messages, each from its MSH to the next, framing (MLLP's VT and FS) and batch
    headers dropped; a message over ``limit`` bytes is reported by its first line and its
    segments skipped up to the next MSH."""
    message: list[bytes] = []
    size = 0
    start = 0
    skipping = False
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, _Overlong):
            if _HL7_FRAME_BYTES.sub(b"", raw.head).startswith(b"MSH"):
                if message:
                    yield from _hl7_message(message, start, report)
                message, start, skipping = [], number, False
            if not skipping:
                report.rejected.append(_too_long(f"line {start if message else number}", limit))
                message, skipping = [], True
            continue
        for line in (
            _HL7_FRAME_BYTES.sub(b"", raw)
            .replace(b"\r\n", b"\n")
            .replace(b"\r", b"\n")
            .split(b"\n")
        ):
            if not line.strip() or line[:3] in {b"FHS", b"BHS", b"BTS", b"FTS"}:
                continue
            if line.startswith(b"MSH"):
                if message:
                    yield from _hl7_message(message, start, report)
                message, size, skipping = [], 0, False
            if skipping:
                continue
            if not message:
                start = number
            size += len(line) + 1
            if size > limit:
                report.rejected.append(_too_long(f"line {start}", limit))
                message, skipping = [], True
                continue
            message.append(line)
    if message:
        yield from _hl7_message(message, start, report)


def _hl7_message(
    segments: list[bytes], start: int, report: DropReport
) -> Iterator[tuple[bytes, int]]:
    record = b"\r".join(segments) + b"\r"
    try:
        record.decode("utf-8")
    except UnicodeDecodeError:
        report.rejected.append(_not_utf8(f"line {start}"))
        return
    yield record, start


class _RowTooLongError(Exception):
    """A CSV row grew past the record limit (caught in ``_csv_records``, never raised out)."""


class _CsvLines:
    """Lines for ``csv.reader``, decoded (bad bytes kept as surrogates, so the record they
    are in can be reported), that stop a row as soon as it is over the limit."""

    def __init__(self, lines: Iterator[_Line], limit: int) -> None:
        self._lines = lines
        self._limit = limit
        self._row_bytes = 0
        self._quotes = 0  # odd: the row so far ends inside a quoted field

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        if isinstance(line, _Overlong):
            self._quotes += line.quotes
            raise _RowTooLongError
        self._row_bytes += len(line)
        self._quotes += line.count(b'"')
        if self._row_bytes - _ending(line) > self._limit:
            raise _RowTooLongError
        return line.decode("utf-8", "surrogateescape")

    def next_row(self) -> None:
        """Start counting a new row."""
        self._row_bytes = self._quotes = 0

    def skip_row(self) -> None:
        """Skip what is left of a row the reader gave up on: up to the line that closes its
        quoted field (a doubled quote counts twice, so an odd count is an open field)."""
        while self._quotes % 2:
            line = next(self._lines, None)
            if line is None:
                return
            self._quotes += line.quotes if isinstance(line, _Overlong) else line.count(b'"')


def _csv_records(
    lines: Iterator[_Line], report: DropReport, limit: int
) -> Iterator[tuple[bytes, int]]:
    """CSV rows (a quoted field may hold line breaks), re-written one per line; a row over
    ``limit`` bytes, or with a field over the csv module's field limit, is reported by its
    row number and the rows after it go on."""
    source = _CsvLines(lines, limit)
    reader = csv.reader(source)
    for number in itertools.count(1):
        source.next_row()
        try:
            row = next(reader)
        except StopIteration:
            return
        except _RowTooLongError:
            report.rejected.append(_too_long(f"line {number}", limit))
            source.skip_row()
            continue
        except csv.Error as exc:  # a field over csv.field_size_limit(); it names no content
            report.rejected.append(
                _issue(f"line {number}", f"not readable as CSV ({exc}); the row is left out")
            )
            source.skip_row()
            continue
        if not any(cell.strip() for cell in row):
            continue
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(row)
        try:
            yield out.getvalue().encode("utf-8"), number
        except UnicodeEncodeError:
            report.rejected.append(_not_utf8(f"line {number}"))
