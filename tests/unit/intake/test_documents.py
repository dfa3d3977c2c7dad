"""C-CDA documents in a dropped file: one document, or a zip file's members, each within
the record limit and the file's inflation budget."""

from __future__ import annotations

import io
import zipfile

from shared.intake.documents import DocumentLimits, documents
from shared.normalize.errors import IssueCode
from tests.support.ccda_documents import document

LIMITS = DocumentLimits(record_bytes=64 * 1024, inflated_bytes=1024 * 1024, ratio=100)


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return out.getvalue()


def _run(
    data: bytes, zipped: bool, limits: DocumentLimits = LIMITS
) -> tuple[list[int], list[tuple[str, IssueCode]]]:
    refused: list[tuple[str, IssueCode]] = []
    found = documents(
        iter([data[i : i + 1000] for i in range(0, len(data), 1000)]),
        lambda where, _text, code: refused.append((where, code)),
        zipped=zipped,
        limits=limits,
    )
    return [number for _, number in found], refused


def test_one_document_and_a_zip_of_them() -> None:
    assert _run(document().encode(), zipped=False) == ([1], [])
    data = _zip({"a.xml": document().encode(), "x.txt": b"hello", "b.xml": document().encode()})
    assert _run(data, zipped=True) == ([1, 3], [("member 2", IssueCode.NOT_SUPPORTED)])


def test_a_file_over_the_record_limit_is_not_held() -> None:
    assert _run(b"<" * (LIMITS.record_bytes + 1), zipped=False) == (
        [],
        [("file", IssueCode.TOO_LONG)],
    )


def test_a_zip_bomb_stops_at_the_ratio() -> None:
    big = document().encode() + b" " * 60_000  # compresses ~1000:1
    data = _zip({f"{n}.xml": big for n in range(40)})
    numbers, refused = _run(data, zipped=True, limits=DocumentLimits(64 * 1024, 10**9, 20))
    assert refused[-1][1] is IssueCode.TOO_COSTLY
    assert len(numbers) * len(big) <= 20 * len(data)


def test_a_member_lying_about_its_size_is_read_no_further_than_the_limit() -> None:
    body = document().encode() + b" " * (LIMITS.record_bytes * 2)
    data = bytearray(_zip({"a.xml": body}))
    # Rewrite the declared uncompressed size (local header and central directory) as 1 KiB.
    size = len(body).to_bytes(4, "little")
    data = bytearray(bytes(data).replace(size, (1024).to_bytes(4, "little")))
    numbers, refused = _run(bytes(data), zipped=True)
    assert numbers == []
    assert refused and refused[0][0] == "member 1"


def test_not_a_zip_is_a_report_line() -> None:
    assert _run(b"PK\x03\x04 broken", zipped=True) == ([], [("file", IssueCode.INVALID)])


def test_a_corrupt_deflate_member_is_a_report_line_and_the_rest_goes_on() -> None:
    good = document().encode()
    data = bytearray(_zip({"a.xml": good, "b.xml": good}))
    start = data.index(b"a.xml") + len("a.xml") + 40  # inside a.xml's deflate stream
    data[start : start + 40] = bytes(40)
    numbers, refused = _run(bytes(data), zipped=True)
    assert numbers == [2]
    assert refused == [("member 1", IssueCode.INVALID)]
