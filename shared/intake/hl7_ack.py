"""HL7 v2 acknowledgements, so interface engines keep working unchanged.

AA once the message is durably stored; AR when we refuse it (size, type, no MSH); AE
when it cannot be stored now. The ACK mirrors the incoming header (sender and receiver
swapped, same version and delimiters) and carries the reason in MSA-3 and ERR.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.normalize.errors import NormalizationError
from shared.normalize.hl7v2 import parse_message

__all__ = ["ACK_CONTENT_TYPE", "build_ack"]

ACK_CONTENT_TYPE = "x-application/hl7-v2+er7"


def _clean(text: str | None, sep: str = "|") -> str:
    """A value safe to place in a field: no delimiters, no line breaks."""
    return "".join(" " if c in f"{sep}^~\\&\r\n" else c for c in (text or ""))[:200]


def build_ack(body: bytes, code: str, text: str | None = None, error_code: str = "207") -> str:
    """An ACK for ``body`` with MSA-1 ``code`` (AA, AE or AR).

    Args:
        body: the message as received (it may be unreadable).
        code: AA, AE or AR.
        text: the reason, for MSA-3 and ERR-8 (never message content).
        error_code: HL7 table 0357 (207 application error, 100 segment sequence error, ...).
    """
    sep, enc, version = "|", "^~\\&", "2.5.1"
    sender = receiver = ("", "")
    control, event = "", ""
    try:
        message = parse_message(body)
    except NormalizationError:
        message = None
    if message is not None:
        msh = message.msh
        d = message.delimiters
        sep = d.field
        enc = d.component + d.repetition + d.escape + d.subcomponent + (d.truncation or "")
        sender, receiver = (msh.raw(3), msh.raw(4)), (msh.raw(5), msh.raw(6))
        control, event = msh.get(10) or "", msh.get(9, 2) or ""
        version = msh.get(12) or version
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    fields = [
        "MSH",
        enc,
        receiver[0],
        receiver[1],
        sender[0],
        sender[1],
        now,
        "",
        f"ACK{enc[0]}{event}{enc[0]}ACK" if event else "ACK",
        uuid.uuid4().hex[:20],
        "P",
        version,
    ]
    segments = [sep.join(fields), sep.join(["MSA", code, _clean(control, sep), _clean(text, sep)])]
    if code != "AA":
        severity = "E"
        segments.append(
            sep.join(
                [
                    "ERR",
                    "",
                    "",
                    f"{error_code}{enc[0]}{_clean(text, sep)[:80]}{enc[0]}HL70357",
                    severity,
                    "",
                    "",
                    "",
                    _clean(text, sep),
                ]
            )
        )
    return "\r".join(segments) + "\r"
