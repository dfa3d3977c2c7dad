"""Parses HL7 v2 (2.3 to 2.8) messages as real feeds send them.

Accepted: a UTF-8 byte-order mark; CR, LF or CRLF segment endings (when the message
uses CR, a lone LF is text inside a field, unless a segment id and the field separator
follow it: senders that mix endings put a segment there, and reading it as text would
fold the segment into the one before); MLLP framing; any encoding characters
declared in MSH-1/MSH-2, including v2.7's fifth (truncation) character; the
character set named in MSH-18. Rejected, with the position and the reason: no MSH,
an MSH whose delimiters cannot be read, a line that is not a segment. Texts name the
position and the rule, never the characters found (a garbled MSH can hold a name); a
character set named is one of table 0211's, matched exactly.
"""

from __future__ import annotations

import re

from ..errors import NormalizationError
from .message import Delimiters, Message, Segment

__all__ = ["MAX_MESSAGE_BYTES", "decode", "message_code", "parse_message", "split_messages"]

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_MLLP_START, _MLLP_END = "\x0b", "\x1c"
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}\Z")
_HEADERS = {"MSH", "FHS", "BHS"}
# Segment ids of v2.x (2.3 to 2.8) and Z-segments: after a lone LF in a CR-ended message,
# only one of these starts a segment (a report line that begins "HIV|" or "CBC " does not).
_SEGMENT_IDS = (
    "ACC ADD ADJ AFF AIG AIL AIP AIS AL1 APR ARQ ARV AUT BHS BLC BLG BPO BPX BTS BTX BUI "
    "CDM CDO CER CM0 CM1 CM2 CNS CON CSP CSR CSS CTD CTI DB1 DG1 DMI DON DPS DRG DSC DSP "
    "ECD ECR EDU EQP EQU ERR EVN FAC FHS FT1 FTS GOL GP1 GP2 GT1 IAM IAR IIM ILT IN1 IN2 "
    "IN3 INV IPC IPR ISD ITM IVC IVT LAN LCC LCH LDP LOC LRL MFA MFE MFI MRG MSA MSH NCK "
    "NDS NK1 NPU NSC NST NTE OBR OBX ODS ODT OM1 OM2 OM3 OM4 OM5 OM6 OM7 ORC ORG OVR PAC "
    "PCE PCR PD1 PDA PDC PEO PES PID PKG PMT PR1 PRA PRB PRC PRD PRT PSG PSH PSL PSS PTH "
    "PV1 PV2 PYE QAK QID QPD QRD QRF QRI RCP RDF RDT REL RF1 RFI RGS RMI ROL RQ1 RQD RXA "
    "RXC RXD RXE RXG RXO RXR RXV SAC SCD SCH SCP SDD SFT SGH SGT SHP SID SLT SPM STF STZ "
    "TCC TCD TQ1 TQ2 TXA UAC UB1 UB2 URD URS VAR VND"
)
# ``^~\\&``: the standard encoding characters with the escape doubled, as a string
# literal escaped twice writes them (seen in engines' configurations and test suites).
_DOUBLED_ESCAPE = "^~\\\\&"
# MSH-18 values (HL7 table 0211) to Python codecs.
_CHARSETS = {
    "": None,
    "ASCII": "ascii",
    "8859/1": "iso8859-1",
    "8859/2": "iso8859-2",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "WINDOWS-1252": "cp1252",
}


def _declared_charset(head: str) -> str:
    """MSH-18's value, read from the first line before the message is decoded."""
    if len(head) < 4:
        return ""
    fields = head.split(head[3], 18)
    return (
        fields[17].split(head[4] if len(head) > 4 else "^")[0].strip().upper()
        if len(fields) > 17
        else ""
    )


def decode(data: bytes) -> tuple[str, str, list[str]]:
    """Bytes to text, honouring a BOM and MSH-18.

    Returns:
        The text, the codec used and any warnings.

    Raises:
        NormalizationError: MSH-18 names a character set the bytes are not in.
    """
    warnings: list[str] = []
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8", warnings
        except UnicodeDecodeError as exc:
            raise NormalizationError.at(
                None,
                f"the message starts with a UTF-8 byte-order mark but byte {exc.start + 3} "
                "is not valid UTF-8",
            ) from exc
    head = (
        data[:4096]
        .decode("latin-1")
        .lstrip(_MLLP_START + "\r\n ")
        .split("\r", 1)[0]
        .split("\n", 1)[0]
    )
    declared = _declared_charset(head) if head.startswith("MSH") else ""
    codec = _CHARSETS.get(declared)
    if declared and codec is None:
        warnings.append("the character set MSH-18 names is not supported; read as UTF-8")
    if codec and codec != "ascii":
        try:
            return data.decode(codec), codec, warnings
        except UnicodeDecodeError as exc:
            raise NormalizationError.at(
                "MSH-18", f"the message declares {declared} but byte {exc.start} is not valid in it"
            ) from exc
    try:
        return data.decode("utf-8"), "utf-8", warnings
    except UnicodeDecodeError:
        warnings.append(
            "the message is not valid UTF-8 and names no character set; read as Windows-1252"
        )
        return data.decode("cp1252", errors="replace"), "cp1252", warnings


def message_code(data: bytes) -> str | None:
    """MSH-9.1 of a payload that is one message, read from its first line only ("" when
    MSH-9 is empty); None when it is not one message starting with an MSH (a batch,
    several messages, no HL7), or MSH-9 lies past the bytes read."""
    if data.count(b"MSH") > 1:  # several messages: each is checked as it is converted
        return None
    head = data[:4096].removeprefix(b"\xef\xbb\xbf").decode("latin-1")
    head = head.lstrip(_MLLP_START + "\r\n\t ")
    if not head.startswith("MSH") or len(head) < 8:
        return None
    line = head.split("\r", 1)[0] if "\r" in head else head.split("\n", 1)[0]
    fields = line.split(head[3], 9)
    if len(fields) > 8:
        return fields[8].split(head[4], 1)[0].strip()
    return "" if ("\r" in head or "\n" in head) else None


def _lines(text: str) -> list[str]:
    """Segments of a message or stream: CR (or CRLF) ends them; LF does where the text
    has no CR, or where a segment id and the field separator follow it."""
    if "\r" not in text:
        return text.split("\n")
    sep = text[3] if len(text) > 3 and text[:3] in _HEADERS else "|"
    if "\n" not in text:
        return text.split("\r")
    known = _SEGMENT_IDS.replace(" ", "|")
    return re.split(r"\r\n?|\n(?=(?:" + known + r"|Z[A-Z0-9]{2})" + re.escape(sep) + ")", text)


def _strip_framing(text: str) -> str:
    text = text.lstrip("\ufeff")
    start = text.find(_MLLP_START)
    if start >= 0 and not text[:start].strip():
        text = text[start + 1 :]
    end = text.rfind(_MLLP_END)
    if end >= 0 and not text[end + 1 :].strip():
        text = text[:end]
    return text.strip("\r\n \t\x00")


def _delimiters(header: str) -> Delimiters:
    if not header.startswith("MSH"):
        raise NormalizationError.at(
            "MSH",
            "the message does not start with an MSH segment"
            if header[:3] != "MSH"
            else "MSH is malformed",
        )
    if len(header) < 8:
        raise NormalizationError.at("MSH-2", "MSH is too short to hold the encoding characters")
    sep = header[3]
    if sep.isalnum() or sep.isspace():
        raise NormalizationError.at("MSH-1", "the field separator is a letter, digit or space")
    end = header.find(sep, 4)
    chars = header[4:] if end < 0 else header[4:end]
    if chars == _DOUBLED_ESCAPE:
        chars = "^~\\&"
    if len(chars) not in (4, 5):
        raise NormalizationError.at(
            "MSH-2", f"expected 4 encoding characters (5 from v2.7), found {len(chars)}"
        )
    if len(set(chars + sep)) != len(chars) + 1 or any(c.isalnum() or c.isspace() for c in chars):
        raise NormalizationError.at("MSH-2", "the encoding characters must be distinct punctuation")
    return Delimiters(
        sep, chars[0], chars[1], chars[2], chars[3], chars[4] if len(chars) == 5 else None
    )


def parse_message(data: bytes | str) -> Message:
    """Parse one message.

    Raises:
        NormalizationError: the message cannot be read; the issue names the position.
    """
    if isinstance(data, bytes):
        if len(data) > MAX_MESSAGE_BYTES:
            raise NormalizationError.at(None, f"the message is over {MAX_MESSAGE_BYTES} bytes")
        text, charset, decoded = decode(data)
        warnings = [("MSH-18", w) for w in decoded]
    else:
        text, charset, warnings = data, "utf-8", []
    text = _strip_framing(text)
    if not text:
        raise NormalizationError.at(None, "the message is empty")
    lines = _lines(text)
    delimiters = _delimiters(lines[0])
    if lines[0][4:9] == _DOUBLED_ESCAPE:
        warnings.append(("MSH-2", "MSH-2 doubles the escape character (^~\\\\&); read as ^~\\&"))
    message = Message(delimiters=delimiters, charset=charset, warnings=warnings)
    sep = delimiters.field
    for number, line in enumerate(lines, start=1):
        line = line.strip("\n") if "\r" in text else line
        if not line.strip():
            continue
        name = line[:3]
        if not _SEGMENT_ID.match(name) or (len(line) > 3 and line[3] != sep):
            raise NormalizationError.at(
                f"segment {number}",
                f"line {number} is not a segment: a segment starts with a three-character "
                f"id such as PID followed by {sep!r}",
            )
        if name == "MSH":
            if number != 1:
                raise NormalizationError.at(
                    f"segment {number}", "a second MSH: send one message at a time, or a batch"
                )
            parts = line.split(sep)
            fields = ["MSH", sep, parts[1], *parts[2:]]
        else:
            fields = line.split(sep)
        message.segments.append(Segment(name, fields, number, message))
    return message


def split_messages(data: bytes | str) -> list[str]:
    """Split a stream of messages (MLLP frames, FHS/BHS batches or plain concatenation)
    into one text per message; batch header and trailer segments are left out."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.lstrip("\ufeff")
    if _MLLP_START in text:
        frames = [f.strip("\r\n \x00") for f in re.split(r"\x0b|\x1c\r?", text)]
        text = "\r".join(f for f in frames if f)
    lines = _lines(text)
    messages: list[list[str]] = []
    for line in lines:
        if line[:3] in {"FHS", "BHS", "BTS", "FTS"} or not line.strip():
            continue
        if line.startswith("MSH") or not messages:
            messages.append([])
        messages[-1].append(line)
    return ["\r".join(m) for m in messages]
