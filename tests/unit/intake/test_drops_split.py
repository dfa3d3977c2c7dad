"""Splitting dropped files into records, block by block, within the record and inflation
limits (synthetic samples: made-up resources, messages and rows, and runs of one byte)."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.intake.drops import (
    DropError,
    DropReport,
    DropTooLargeError,
    DropUnreadableError,
    _inflate,
    _lines,
    _Overlong,
    _records,
    parse_blob_created,
)
from shared.normalize.models import PayloadFormat

MIB = 1024 * 1024


def _blocks(data: bytes, size: int = 7) -> list[bytes]:
    """The file in small blocks, so records cross block boundaries."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def _split(
    fmt: PayloadFormat, data: bytes, limit: int = MIB, size: int = 7
) -> tuple[list[bytes], DropReport]:
    report = DropReport(file="f", partner="p")
    records = _records(fmt, iter(_blocks(data, size)), report, max_record_bytes=limit)
    return [record for record, _ in records], report


def _rejected(report: DropReport) -> list[tuple[str, str]]:
    """Where and why (the IssueType code) each left-out part was."""
    return [(r["location"], r["outcome"]["issue"][0]["code"]) for r in report.rejected]


def _runs(byte: bytes, count: int, size: int = MIB) -> Iterator[bytes]:
    """``count`` blocks of one byte, made as they are read (so only the reader's own
    memory is measured)."""
    for _ in range(count):
        yield byte * size


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
    assert b"".join(_inflate(iter(_blocks(gzip.compress(data), 64)), len(data))) == data


def _bomb(mib: int) -> bytes:
    """The security review's bomb: ``mib`` MiB of 'a', gzipped at level 9 (400 MiB: 407 KB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(packer.compress(block) for block in _runs(b"a", mib)) + packer.flush()


def test_a_bomb_inflates_a_mib_at_a_time_and_stops_at_the_limit() -> None:
    bomb = _bomb(64)
    assert len(bomb) < 70_000  # about a thousand times smaller
    inflated: list[int] = []
    with pytest.raises(DropTooLargeError) as caught:
        for block in _inflate(iter([bomb]), 100 * len(bomb)):  # the default ratio
            inflated.append(len(block))
    assert caught.value.limit == 100 * len(bomb)
    assert max(inflated) == MIB and sum(inflated) <= 100 * len(bomb)


def test_a_file_within_the_limit_is_inflated_whole() -> None:
    data = b"a" * (3 * MIB + 5)
    blocks = list(_inflate(iter([gzip.compress(data)]), len(data)))
    assert [len(b) for b in blocks] == [MIB, MIB, MIB, 5]
    with pytest.raises(DropTooLargeError):
        list(_inflate(iter([gzip.compress(data)]), len(data) - 1))


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


_PIECES = st.sampled_from([b"\n", b"\r", b"\r\n", b"x", b"yz", b'"', b"0123456789"])


@given(
    st.lists(_PIECES, max_size=80).map(b"".join),
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=0, max_value=30),
)
def test_lines_split_where_a_universal_newline_text_reader_does(
    data: bytes, size: int, limit: int
) -> None:
    # the reference: the standard library's text reader in newline="" mode
    reference: list[bytes | _Overlong] = []
    for text in io.TextIOWrapper(io.BytesIO(data), encoding="latin-1", newline=""):
        line = text.encode("latin-1")
        content = line.rstrip(b"\n").rstrip(b"\r")
        over = len(content) > limit
        reference.append(_Overlong(line[:16], line.count(b'"')) if over else line)
    assert list(_lines(iter(_blocks(data, size)), limit)) == reference


def test_a_line_over_the_limit_is_not_held_and_keeps_only_its_first_bytes() -> None:
    def blocks() -> Iterator[bytes]:
        yield b'{"a": 1}\nMSH|'
        yield from _runs(b"a", 64)  # one 64 MiB line
        yield b'\r\n{"b": 2}\n'

    tracemalloc.start()
    try:
        lines = list(_lines(blocks(), limit=MIB))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lines == [b'{"a": 1}\n', _Overlong(b"MSH|aaaaaaaaaaaa"), b'{"b": 2}\n']
    assert peak < 4 * MIB  # a few blocks, never the line


def test_the_limit_is_on_a_lines_content_not_its_ending() -> None:
    data = b"12345\r\n123456\r\n1234\r"
    assert list(_lines(iter(_blocks(data, 3)), limit=5)) == [
        b"12345\r\n",
        _Overlong(b"123456\r\n"),  # its first bytes, ending and all
        b"1234\r",
    ]


def test_ndjson_lines_over_the_limit_are_reported_and_the_others_go_on() -> None:
    big = json.dumps({"resourceType": "Binary", "data": "a" * 3000}).encode()
    data = b'{"a": 1}\n' + big + b'\n{"b": 2}\n' + big
    records, report = _split(PayloadFormat.FHIR, data, limit=2048, size=1000)
    assert [json.loads(r) for r in records] == [{"a": 1}, {"b": 2}]
    assert _rejected(report) == [("line 2", "too-long"), ("line 4", "too-long")]
    assert "INTAKE_DROP_MAX_RECORD_BYTES" in json.dumps(report.rejected)
    assert "aaaa" not in json.dumps(report.rejected)  # never the content


def test_a_long_first_line_makes_no_document_of_the_rest() -> None:
    records, report = _split(PayloadFormat.FHIR, b"[" + b"1," * 3000 + b'1]\n{"b": 2}\n', 2048)
    assert [json.loads(r) for r in records] == [{"b": 2}]
    assert _rejected(report) == [("line 1", "too-long")]


def test_a_json_document_over_the_limit_is_refused_whole() -> None:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [{"x": "y" * 100}] * 30}
    records, report = _split(PayloadFormat.FHIR, json.dumps(bundle, indent=2).encode(), 2048)
    assert records == []
    assert _rejected(report) == [("file", "too-long")]


def _message(n: int, obx: str = "OBX|1|ST|x||ok") -> str:
    return f"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|{n}|P|2.5\rPID|1||M{n}\r{obx}\r"


def test_an_hl7_message_over_the_limit_is_reported_by_its_first_line() -> None:
    data = (
        _message(1)
        + _message(2, "OBX|1|ED|pdf||" + "Q" * 3000)  # one long segment
        + _message(3, "\r".join(["NTE|1||" + "n" * 90] * 30))  # many segments
        + _message(4)
    ).encode()
    records, report = _split(PayloadFormat.HL7V2, data, limit=2048, size=500)
    assert [r.decode().split("|")[9] for r in records] == ["1", "4"]
    # lines as the text reader counted them: each segment ends a line
    assert _rejected(report) == [("line 4", "too-long"), ("line 7", "too-long")]


def test_an_hl7_msh_segment_over_the_limit_still_ends_the_message_before_it() -> None:
    data = (_message(1) + _message(2).replace("ORU^R01", "ORU^R01" + "^" * 3000)).encode()
    records, report = _split(PayloadFormat.HL7V2, data + _message(3).encode(), 2048, 500)
    assert [r.decode().split("|")[9] for r in records] == ["1", "3"]
    assert _rejected(report) == [("line 4", "too-long")]


def test_csv_rows_over_the_limit_or_the_field_limit_are_reported() -> None:
    data = b"id,note\n1,short\n2," + b"x" * 3000 + b'\n3,"' + b"y\n" * 1500 + b'"\n4,fine\n'
    records, report = _split(PayloadFormat.CSV, data, limit=2048, size=500)
    assert records[:2] == [b"id,note\n", b"1,short\n"] and records[-1] == b"4,fine\n"
    assert _rejected(report)[:2] == [("line 3", "too-long"), ("line 4", "too-long")]
    wide = b"id,note\n1," + b"z" * 200_000 + b"\n2,after\n"  # over csv's 131,072 characters
    records, report = _split(PayloadFormat.CSV, wide, limit=MIB, size=4096)
    assert records == [b"id,note\n", b"2,after\n"]
    assert _rejected(report) == [("line 2", "invalid")]


def test_a_40_mib_line_is_read_in_bounded_memory(monkeypatch: Any) -> None:
    def blocks() -> Iterator[bytes]:
        yield b'{"resourceType": "Binary", "data": "'
        yield from _runs(b"a", 40)
        yield b'"}\n{"resourceType": "Patient"}\n'

    report = DropReport(file="f", partner="p")
    tracemalloc.start()
    try:
        records = list(_records(PayloadFormat.FHIR, blocks(), report, max_record_bytes=16 * MIB))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert records == [(b'{"resourceType": "Patient"}\n', 2)]
    assert _rejected(report) == [("line 1", "too-long")]
    assert peak < 16 * MIB + 4 * MIB  # the line is held up to the limit, then let go


def test_gzip_members_one_after_another_are_read_one_after_another() -> None:
    # A hostile read: cat a.gz b.gz made the reader loop for ever (the member's end left
    # input it never gave to a new inflater).
    first, second = b'{"a":1}\n' * 300_000, b'{"b":2}\n' * 1000
    joined = gzip.compress(first) + gzip.compress(second) + b"\x00" * 64
    for size in (len(joined), 4096, 7):
        got = b"".join(_inflate(iter(_blocks(joined, size)), 1 << 30))
        assert got == first + second


_WHOLE = gzip.compress(bytes(range(256)) * 1000)
_CORRUPT = _WHOLE[:20] + b"\xff" * 50 + _WHOLE[70:]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (gzip.compress(b"x" * 10_000)[:-12], "truncated"),
        (gzip.compress(b"x" * 10_000) + b"junk", "bytes after"),
        (_CORRUPT, "corrupt"),
    ],
)
def test_unreadable_gzip_is_a_final_error_not_a_retry(data: bytes, words: str) -> None:
    with pytest.raises(DropUnreadableError, match=words):
        b"".join(_inflate(iter([data]), 1 << 30))


def test_json_nested_past_the_interpreter_is_a_final_error() -> None:
    # A hostile read: "[" a thousand times raised RecursionError, which the queue retried.
    with pytest.raises(DropUnreadableError, match="nested too deeply"):
        _split(PayloadFormat.FHIR, b"[" * 100_000 + b"\n" + b"{}\n")
