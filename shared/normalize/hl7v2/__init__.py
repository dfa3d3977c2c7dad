"""HL7 v2: parsing (this package), and mapping to FHIR R4."""

from __future__ import annotations

from .escapes import unescape
from .message import NULL, Delimiters, Message, Segment, location
from .parser import decode, parse_message, split_messages

__all__ = [
    "NULL",
    "Delimiters",
    "Message",
    "Segment",
    "decode",
    "location",
    "parse_message",
    "split_messages",
    "unescape",
]
