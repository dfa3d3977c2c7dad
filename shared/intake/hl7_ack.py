"""HL7 v2 acknowledgements, so interface engines keep working unchanged.

AA once the message is durably stored; AR when we refuse it (size, type, no MSH); AE
when it cannot be stored now. The ACK mirrors the incoming header (sender and receiver
swapped, same version and delimiters) and carries the reason in MSA-3 and ERR.

Only the header is read, and nothing from it is echoed unchecked: a crafted MSH-9 or
MSH-12 once unescaped to ``\\rMSA|AA|...`` put a forged MSA before the real one. Values
with a fixed shape (event, version) are echoed only when they have it; the others are
echoed as the message wrote them (still escaped, in the same delimiters) only when they
hold no control character and fit their field.
"""

from __future__ import annotations

import re
import uuid
import zlib
from datetime import UTC, datetime

from shared.normalize.errors import NormalizationError
from shared.normalize.hl7v2 import parse_message
from shared.normalize.hl7v2.message import Delimiters, Segment

__all__ = ["ACK_CONTENT_TYPE", "build_ack"]

ACK_CONTENT_TYPE = "x-application/hl7-v2+er7"
_DEFAULT_VERSION = "2.5.1"
_EVENT = re.compile(r"[A-Z0-9]{3}\Z")  # MSH-9.2, table 0003
_VERSION = re.compile(r"2\.[1-9](?:\.[1-9])?\Z")  # MSH-12.1, table 0104
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The header lies within the first bytes; reading no further bounds a gzip body's inflation.
_HEAD_BYTES = 64 * 1024
_MAX_ECHO = 199  # MSH-10 (ST) and HD fields are at most this long in v2.7


def _clean(text: str | None, delimiters: Delimiters) -> str:
    """Our own text made safe for a field: no delimiters, no line breaks, no controls."""
    special = {*_encoding(delimiters), delimiters.field}
    return "".join(" " if c in special or _CONTROL.match(c) else c for c in (text or ""))[:200]


def _encoding(d: Delimiters) -> str:
    return d.component + d.repetition + d.escape + d.subcomponent + (d.truncation or "")


def _echo(raw: str) -> str:
    """A field as the message wrote it, or nothing when it is not safe to repeat."""
    return "" if len(raw) > _MAX_ECHO or _CONTROL.search(raw) else raw


def _header(body: bytes, content_encoding: str | None) -> Segment | None:
    """The message's MSH segment, read from the start of the (inflated) body only."""
    head = body[:_HEAD_BYTES]
    if (content_encoding or "").strip().lower() in {"gzip", "x-gzip"}:
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, _HEAD_BYTES)
        except zlib.error:
            return None
    head = head.lstrip(b"\xef\xbb\xbf\x0b\r\n \t")
    line = head.split(b"\r", 1)[0] if b"\r" in head else head.split(b"\n", 1)[0]
    try:
        return parse_message(line).msh
    except NormalizationError:
        return None


def build_ack(
    body: bytes,
    code: str,
    text: str | None = None,
    error_code: str = "207",
    content_encoding: str | None = None,
) -> str:
    """An ACK for ``body`` with MSA-1 ``code`` (AA, AE or AR).

    Args:
        body: the message as received (it may be unreadable, or gzip-encoded).
        code: AA, AE or AR.
        text: the reason, for MSA-3 and ERR-8 (never message content).
        error_code: HL7 table 0357 (207 application error, 100 segment sequence error, ...).
        content_encoding: the body's Content-Encoding; gzip is read to find the header.
    """
    d = Delimiters()
    sender = receiver = ("", "")
    control, event, version = "", "", _DEFAULT_VERSION
    msh = _header(body, content_encoding)
    if msh is not None:
        d = msh.message.delimiters
        sender = (_echo(msh.raw(3)), _echo(msh.raw(4)))
        receiver = (_echo(msh.raw(5)), _echo(msh.raw(6)))
        control = _echo(msh.raw(10))  # MSA-2 is MSH-10 byte for byte
        found_event = msh.get(9, 2) or ""
        event = found_event if _EVENT.match(found_event) else ""
        found_version = msh.get(12) or ""
        version = found_version if _VERSION.match(found_version) else _DEFAULT_VERSION
    sep, comp = d.field, d.component
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    fields = [
        "MSH",
        _encoding(d),
        receiver[0],
        receiver[1],
        sender[0],
        sender[1],
        now,
        "",
        f"ACK{comp}{event}{comp}ACK" if event else "ACK",
        uuid.uuid4().hex[:20],
        "P",
        version,
    ]
    reason = _clean(text, d)
    segments = [sep.join(fields), sep.join(["MSA", code, control, reason])]
    if code != "AA":
        err = ["ERR", "", "", f"{error_code}{comp}{reason[:80]}{comp}HL70357", "E"]
        segments.append(sep.join([*err, "", "", "", reason]))
    return "\r".join(segments) + "\r"
