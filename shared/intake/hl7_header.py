"""The HL7 v2 header read at the door, so an ACK never says AA for a message we refuse.

Every channel (HTTP, MLLP) reads the MSH of a single message before storing it: no MSH,
an empty MSH-9 or MSH-10, or a type we do not convert is refused there with an AE and an
ERR segment, instead of an AA followed by a rejection nobody sees. MSH-15/16 say whether
the sender asked for enhanced-mode acknowledgements, MSH-18 which character set the ACK
must be written in. A batch (FHS/BHS) is checked message by message when it is converted.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from enum import StrEnum

from shared.normalize.errors import NormalizationError
from shared.normalize.hl7v2 import parse_message
from shared.normalize.hl7v2.converter import unconverted_type_reason
from shared.normalize.hl7v2.message import Delimiters, Segment

from .errors import MissingHeaderError, UnsupportedMessageTypeError

__all__ = [
    "HEADER_BYTES",
    "AckCondition",
    "MessageHeader",
    "check_header",
    "check_one_message",
    "read_header",
]

# The header lies within the first bytes; reading no further bounds a gzip body's inflation.
HEADER_BYTES = 64 * 1024
_CONTROL_ID = re.compile(r"[^\x00-\x1f\x7f]{1,199}\Z")  # what an ACK can echo in MSA-2
_BATCH = re.compile(rb"^(?:\xef\xbb\xbf)?[\x0b\r\n\t ]*(?:FHS|BHS)")


class AckCondition(StrEnum):
    """MSH-15/16, HL7 table 0155: when the sender wants an acknowledgement."""

    ALWAYS = "AL"
    NEVER = "NE"
    ERROR = "ER"  # on error or reject only
    SUCCESS = "SU"  # on success only

    def wanted(self, success: bool) -> bool:
        """Whether an ACK of this outcome is to be sent."""
        return self is AckCondition.ALWAYS or (
            (self is AckCondition.SUCCESS) if success else (self is AckCondition.ERROR)
        )


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """What the door reads of one message's MSH (no PHI: MSH carries none)."""

    segment: Segment
    message_code: str  # MSH-9.1
    control_id: str  # MSH-10, as written
    accept_ack: AckCondition | None  # MSH-15; None with MSH-16: original mode
    application_ack: AckCondition | None  # MSH-16

    @property
    def delimiters(self) -> Delimiters:
        """The message's encoding characters, which its ACK uses too."""
        return self.segment.message.delimiters

    @property
    def charset(self) -> str:
        """The codec the message was read in (by its BOM and MSH-18), which its ACK is
        written in, so what the ACK echoes comes back byte for byte."""
        return self.segment.message.charset

    @property
    def enhanced(self) -> bool:
        """Enhanced acknowledgement mode: MSH-15 or MSH-16 is valued."""
        return self.accept_ack is not None or self.application_ack is not None


def _condition(value: str | None) -> AckCondition | None:
    try:
        return AckCondition((value or "").strip().upper()) if value and value.strip() else None
    except ValueError:
        return AckCondition.ALWAYS  # an unknown value: acknowledge rather than stay silent


def read_header(body: bytes, content_encoding: str | None = None) -> MessageHeader | None:
    """The header of the message ``body`` starts with (gzip read when so encoded), or
    None when the body does not start with a readable MSH segment."""
    head = body[:HEADER_BYTES]
    if (content_encoding or "").strip().lower() in {"gzip", "x-gzip"}:
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, HEADER_BYTES)
        except zlib.error:
            return None
    head = head.lstrip(b"\xef\xbb\xbf\x0b\r\n \t")
    line = head.split(b"\r", 1)[0] if b"\r" in head else head.split(b"\n", 1)[0]
    try:
        msh = parse_message(line).msh
    except NormalizationError:
        return None
    return MessageHeader(
        segment=msh,
        message_code=(msh.get(9, 1) or "").strip(),
        control_id=msh.raw(10),
        accept_ack=_condition(msh.get(15)),
        application_ack=_condition(msh.get(16)),
    )


def check_header(data: bytes, *, refuse_unmapped: bool = True) -> MessageHeader | None:
    """The header of a single message, checked as the door checks it; None for a batch
    or a stream of several messages, whose messages are checked one by one when converted.

    Raises:
        MissingHeaderError: no MSH segment first, or MSH-9 or MSH-10 empty.
        UnsupportedMessageTypeError: a type we do not convert, when ``refuse_unmapped``.
    """
    if _BATCH.match(data):
        return None
    header = read_header(data)
    if header is None:
        raise MissingHeaderError(
            "the message does not start with an MSH segment (MSH|^~\\&|...)", "MSH"
        )
    if data.count(b"\rMSH") + data.count(b"\nMSH") > 0:
        return None
    if not header.message_code:
        raise MissingHeaderError("the message type (MSH-9) is empty", "MSH-9")
    if not header.control_id.strip():
        raise MissingHeaderError("the message control id (MSH-10) is empty", "MSH-10")
    if not _CONTROL_ID.match(header.control_id):
        raise MissingHeaderError(
            "the message control id (MSH-10) is over 199 characters or holds control "
            "characters, so no ACK could name it",
            "MSH-10",
            "102",
        )
    refused = unconverted_type_reason(header.message_code)
    if refused and refuse_unmapped:
        raise UnsupportedMessageTypeError(refused, "MSH-9")
    return header


def check_one_message(data: bytes) -> None:
    """An MLLP frame carries one message: its ACK answers for that one alone.

    Raises:
        MissingHeaderError: a batch header, or a second MSH segment, in the frame.
    """
    if _BATCH.match(data) or b"\rMSH" in data or b"\nMSH" in data:
        raise MissingHeaderError(
            "one MLLP frame carries one message: this one holds a batch or a second MSH; "
            "send each message in its own frame, or batches as uploads",
            "MSH",
        )
