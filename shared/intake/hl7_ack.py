"""HL7 v2 acknowledgements, so interface engines keep working unchanged.

Which code a message gets is ``acks.py``'s to say (AA stored, AE refused, AR not stored
for now; CA, CR, CE in enhanced mode; the application ACK's AA or AE later); this module
writes the ACK. The ACK mirrors the incoming header (sender and receiver
swapped, same version and delimiters) and carries the reason in MSA-3 and ERR.

Only the header is read, and nothing from it is echoed unchecked: a crafted MSH-9 or
MSH-12 once unescaped to ``\\rMSA|AA|...`` put a forged MSA before the real one. Values
with a fixed shape (event, version) are echoed only when they have it; the others are
echoed as the message wrote them (still escaped, in the same delimiters) only when they
hold no control character and fit their field.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime

from shared.normalize.hl7v2.message import Delimiters

from .hl7_header import MessageHeader, read_header

__all__ = ["ACK_CONTENT_TYPE", "build_ack", "encode_ack", "error_location"]

ACK_CONTENT_TYPE = "x-application/hl7-v2+er7"
_DEFAULT_VERSION = "2.5.1"
_EVENT = re.compile(r"[A-Z0-9]{3}\Z")  # MSH-9.2, table 0003
_VERSION = re.compile(r"2\.[1-9](?:\.[1-9])?\Z")  # MSH-12.1, table 0104
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:-([0-9]{1,3}))?(?:\.([0-9]{1,3}))?", re.ASCII)
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


def error_location(location: str | None, comp: str = "^") -> str:
    """ERR-2 (ERL: segment^sequence^field^repetition^component) for an issue location
    such as ``MSH-9`` or ``PID-3.4``; empty when the location is not a segment field."""
    found = _LOCATION.fullmatch(location or "")
    if not found:
        return ""
    segment, field, component = found.groups()
    parts = [segment, "1"] + ([field] if field else []) + (["1", component] if component else [])
    return comp.join(parts)


def build_ack(
    body: bytes,
    code: str,
    text: str | None = None,
    error_code: str = "207",
    content_encoding: str | None = None,
    *,
    location: str | None = None,
    reference: str = "",
    at: datetime | None = None,
    header: MessageHeader | None = None,
) -> str:
    """An ACK for ``body`` with MSA-1 ``code`` (AA, AE, AR; CA, CE, CR).

    Args:
        body: the message as received (it may be unreadable, or gzip-encoded).
        code: the acknowledgement code, HL7 table 0008.
        text: the reason, for MSA-3 and ERR-8 (never message content).
        error_code: HL7 table 0357 (207 application error, 100 segment sequence error, ...).
        content_encoding: the body's Content-Encoding; gzip is read to find the header.
        location: where the error is (``MSH-9``), for ERR-2.
        reference: what the ACK answers for (the ingestion id); with ``at`` it makes the
            ACK's own MSH-10, so a duplicate gets the original's ACK byte for byte.
        at: the ACK's time (MSH-7); now when not given.
        header: the message's header when the caller has read it already.
    """
    d = Delimiters()
    sender = receiver = ("", "")
    control, event, version, processing = "", "", _DEFAULT_VERSION, "P"
    found = header or read_header(body, content_encoding)
    msh = found.segment if found is not None else None
    if msh is not None:
        d = msh.message.delimiters
        sender = (_echo(msh.raw(3)), _echo(msh.raw(4)))
        receiver = (_echo(msh.raw(5)), _echo(msh.raw(6)))
        control = _echo(msh.raw(10))  # MSA-2 is MSH-10 byte for byte
        found_event = msh.get(9, 2) or ""
        event = found_event if _EVENT.match(found_event) else ""
        found_processing = (msh.get(11) or "").strip()  # MSH-11 is copied (ch. 2.9.2.2)
        processing = found_processing if found_processing in ("P", "T", "D") else "P"
        found_version = msh.get(12) or ""
        version = found_version if _VERSION.match(found_version) else _DEFAULT_VERSION
    sep, comp = d.field, d.component
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    seed = f"{reference}|{code}|{control}|{moment.isoformat()}"
    ack_id = hashlib.sha256(seed.encode()).hexdigest()[:20] if reference else uuid.uuid4().hex[:20]
    fields = [
        "MSH",
        _encoding(d),
        receiver[0],
        receiver[1],
        sender[0],
        sender[1],
        moment.strftime("%Y%m%d%H%M%S+0000"),
        "",
        f"ACK{comp}{event}{comp}ACK" if event else "ACK",
        ack_id,
        processing,
        version,
    ]
    if msh is not None and msh.raw(18) and not _CONTROL.search(msh.raw(18)):
        fields += ["", "", "", "", "", msh.raw(18)[:_MAX_ECHO]]  # MSH-18: its character set
    reason = _clean(text, d)
    segments = [sep.join(fields), sep.join(["MSA", code, control, reason])]
    if code not in ("AA", "CA"):
        # ERR-1 (ELD: segment^sequence^field^code) is how v2.1 to v2.4 say it, and
        # required there; v2.5 replaced it with ERR-2 and ERR-3, which come always.
        where = error_location(location, comp).split(comp)[:3]
        eld = comp.join([*where, *[""] * (3 - len(where))]) if where != [""] else comp * 2
        code_ce = d.subcomponent.join([error_code, _clean(reason[:80], d), "HL70357"])
        err = [
            "ERR",
            f"{eld}{comp}{code_ce}" if version < "2.5" else "",
            error_location(location, comp),
            f"{error_code}{comp}{reason[:80]}{comp}HL70357",
            "E",
        ]
        segments.append(sep.join([*err, "", "", "", reason]))
    return "\r".join(segments) + "\r"


def encode_ack(ack: str, header: MessageHeader | None) -> bytes:
    """The ACK's bytes in the message's character set (UTF-8 when it had no header)."""
    return ack.encode(header.charset if header else "utf-8", errors="replace")
