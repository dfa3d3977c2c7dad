"""Splitting dropped files into records, block by block (synthetic samples)."""

from __future__ import annotations

import gzip
import json

import pytest

from shared.intake.drops import DropError, DropReport, _inflate, _records, parse_blob_created
from shared.normalize.models import PayloadFormat


def _blocks(data: bytes, size: int = 7) -> list[bytes]:
    """The file in small blocks, so records cross block boundaries."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def _split(fmt: PayloadFormat, data: bytes) -> tuple[list[bytes], DropReport]:
    report = DropReport(file="f", partner="p")
    return [record for record, _ in _records(fmt, iter(_blocks(data)), report)], report


def test_ndjson_lines_across_blocks() -> None:
    records, _ = _split(PayloadFormat.FHIR, b'\xef\xbb\xbf{"a": 1}\n\n{"b": "x\\ny"}\r\n{"c": 3}')
    assert [json.loads(r) for r in records] == [{"a": 1}, {"b": "x\ny"}, {"c": 3}]


def test_a_bundle_document_is_one_record() -> None:
    bundle = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": []}, indent=2).encode()
    records, _ = _split(PayloadFormat.FHIR, bundle)
    assert [json.loads(r)["resourceType"] for r in records] == ["Bundle"]


def test_hl7_batch_with_framing_and_headers() -> None:
    one = "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|{n}|P|2.5\rPID|1||M{n}\r"
    data = (
        "FHS|^~\\&\rBHS|^~\\&\r\x0b"
        + one.format(n=1)
        + "\x1c\r\x0b"
        + one.format(n=2)
        + "\x1c\rBTS|2\rFTS|1\r"
    ).encode()
    records, _ = _split(PayloadFormat.HL7V2, data)
    assert [r.decode().split("|")[9] for r in records] == ["1", "2"]
    assert all(r.endswith(b"\r") and b"\x0b" not in r for r in records)


def test_csv_rows_keep_quoted_newlines() -> None:
    records, _ = _split(PayloadFormat.CSV, b'id,note\n1,"line one\nline two"\n2,plain\n')
    assert records == [b"id,note\n", b'1,"line one\nline two"\n', b"2,plain\n"]


def test_gzip_is_inflated_block_by_block() -> None:
    data = b"".join(b'{"n": %d}\n' % i for i in range(1000))
    assert b"".join(_inflate(iter(_blocks(gzip.compress(data), 64)))) == data


def test_bad_lines_are_reported_by_number_not_raised() -> None:
    records, report = _split(PayloadFormat.FHIR, b'{"a": 1}\n{"b": "\xff\xfe"}\nnot json\n')
    assert records == [b'{"a": 1}\n']
    assert [
        (r["location"], r["outcome"]["issue"][0]["diagnostics"][:10]) for r in report.rejected
    ] == [("line 2", "not UTF-8:"), ("line 3", "not valid ")]


def test_event_grid_events_are_read() -> None:
    event = {
        "eventType": "Microsoft.Storage.BlobCreated",
        "subject": "/blobServices/default/containers/ingest-drop/blobs/p1/a/b.ndjson",
        "data": {"eTag": "0x1"},
    }
    parsed = parse_blob_created(json.dumps([event]).encode())
    assert (parsed.container, parsed.name, parsed.etag) == ("ingest-drop", "p1/a/b.ndjson", "0x1")


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b'{"eventType": "Microsoft.Storage.BlobDeleted"}',
        b'{"eventType": "Microsoft.Storage.BlobCreated", "subject": "/x"}',
    ],
)
def test_other_messages_are_refused(body: bytes) -> None:
    with pytest.raises(DropError):
        parse_blob_created(body)
