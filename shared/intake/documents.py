"""C-CDA documents in a dropped file: the file itself, or each document in a zip file.

A document is read whole (the converter needs the tree), so every read is bounded: a
file or member over the record limit is reported and skipped; a zip file is read up to
the same limit, and its members' inflated total is held to the decompression limit and
ratio that hold for gzip drops (a zip bomb stops there, reported, the rest sent). A
member that is not a ClinicalDocument is reported by its number, never its name's
content beyond the number (file names can carry patient names).
"""

from __future__ import annotations

import io
import lzma
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shared.normalize.ccda import is_clinical_document
from shared.normalize.errors import IssueCode

__all__ = ["MAX_MEMBERS", "DocumentLimits", "documents"]

MAX_MEMBERS = 10_000


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """The drop limits, as they apply to documents."""

    record_bytes: int  # one document (INTAKE_DROP_MAX_RECORD_BYTES)
    inflated_bytes: int  # a zip file's members together (..._MAX_DECOMPRESSED_BYTES)
    ratio: int  # inflated over compressed (..._MAX_INFLATE_RATIO)


Refuse = Callable[[str, str, IssueCode], None]  # (location, text, code) into the report


def _read_bounded(stream: Iterator[bytes], limit: int) -> bytes | None:
    parts, size = [], 0
    for block in stream:
        size += len(block)
        if size > limit:
            return None
        parts.append(block)
    return b"".join(parts)


def documents(
    stream: Iterator[bytes], refuse: Refuse, *, zipped: bool, limits: DocumentLimits
) -> Iterator[tuple[bytes, int]]:
    """(document bytes, its number) for each document; what is refused goes to ``refuse``."""
    data = _read_bounded(stream, limits.record_bytes)
    if data is None:
        refuse(
            "file",
            f"the file is over {limits.record_bytes} bytes (INTAKE_DROP_MAX_RECORD_BYTES)",
            IssueCode.TOO_LONG,
        )
        return
    if not zipped:
        yield data, 1
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        refuse("file", "not a readable zip file", IssueCode.INVALID)
        return
    budget = min(limits.inflated_bytes, limits.ratio * max(len(data), 1))
    for number, member in enumerate(members[:MAX_MEMBERS], start=1):
        where = f"member {number}"
        if member.file_size > budget:  # the declared size alone is past the file's budget
            refuse(
                where,
                "the zip file inflates past the limits; the rest is left out",
                IssueCode.TOO_COSTLY,
            )
            return
        if member.file_size > limits.record_bytes:
            refuse(where, "the document is over INTAKE_DROP_MAX_RECORD_BYTES", IssueCode.TOO_LONG)
            continue
        try:
            with archive.open(member) as opened:  # read no further than the sizes allow
                body = opened.read(min(limits.record_bytes, budget) + 1)
        except (
            zipfile.BadZipFile,
            NotImplementedError,
            RuntimeError,
            OSError,
            EOFError,
            zlib.error,
            lzma.LZMAError,
        ):
            refuse(where, "the member cannot be read (corrupt or encrypted)", IssueCode.INVALID)
            continue
        budget -= len(body)
        if len(body) > limits.record_bytes or budget < 0:  # it lied about its size
            refuse(
                where,
                "the zip file inflates past the limits; the rest is left out",
                IssueCode.TOO_COSTLY,
            )
            return
        if not is_clinical_document(body):
            refuse(
                where, "not a C-CDA document (no ClinicalDocument root)", IssueCode.NOT_SUPPORTED
            )
            continue
        yield body, number
    if len(members) > MAX_MEMBERS:
        refuse("file", f"only the first {MAX_MEMBERS} members were read", IssueCode.TOO_COSTLY)
