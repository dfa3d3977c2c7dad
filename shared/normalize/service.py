"""One entry point for every format: detect what a payload is, convert it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .ccda.converter import convert_ccda
from .ccda.xml_safety import is_clinical_document
from .checks import check_bundle
from .context import BundleBuilder, ConversionContext
from .csv_mapping import convert_csv, load_mapping
from .errors import Issue, IssueCode, NormalizationError
from .fhir_json import convert_fhir_json
from .hl7v2.converter import convert_hl7v2
from .hl7v2.parser import MAX_MESSAGE_BYTES, decode, split_messages
from .models import Conversion, PayloadFormat, Rejection

__all__ = ["CONTENT_TYPES", "XML_CONTENT_TYPES", "convert_payload", "detect_format"]

CONTENT_TYPES = {
    "x-application/hl7-v2+er7": PayloadFormat.HL7V2,
    "application/hl7-v2": PayloadFormat.HL7V2,
    "application/hl7-v2+er7": PayloadFormat.HL7V2,
    "application/fhir+json": PayloadFormat.FHIR,
    "application/json": PayloadFormat.FHIR,
    "application/x-ndjson": PayloadFormat.FHIR,
    "application/fhir+ndjson": PayloadFormat.FHIR,
    "application/ndjson": PayloadFormat.FHIR,
    "text/csv": PayloadFormat.CSV,
    "application/cda+xml": PayloadFormat.CCDA,
}
XML_CONTENT_TYPES = frozenset({"text/xml", "application/xml"})  # C-CDA when the root says so


def detect_format(data: bytes, content_type: str | None = None) -> PayloadFormat:
    """The payload's format, from its content type or else its first bytes.

    Raises:
        NormalizationError: neither says what the payload is.
    """
    media = content_type.split(";")[0].strip().lower() if content_type else ""
    known = CONTENT_TYPES.get(media)
    if known:
        return known
    if media in XML_CONTENT_TYPES or data[:64].lstrip(b"\xef\xbb\xbf\r\n\t ").startswith(b"<"):
        if is_clinical_document(data):
            return PayloadFormat.CCDA
        raise NormalizationError.at(
            None,
            "XML is accepted only as a C-CDA document (a ClinicalDocument root in urn:hl7-org:v3)",
            IssueCode.NOT_SUPPORTED,
        )
    head = data[:1024].lstrip(b"\xef\xbb\xbf\x0b\r\n\t ")
    if head.startswith((b"MSH", b"FHS", b"BHS")):
        return PayloadFormat.HL7V2
    if head.startswith((b"{", b"[")):
        return PayloadFormat.FHIR
    first_line = head.split(b"\n", 1)[0]
    if b"," in first_line or b";" in first_line or b"\t" in first_line:
        return PayloadFormat.CSV
    raise NormalizationError.at(
        None,
        "cannot tell the format: send HL7 v2 (starting with MSH), "
        "FHIR JSON, C-CDA XML or CSV, or name it in Content-Type",
        IssueCode.NOT_SUPPORTED,
    )


def _is_batch(data: bytes) -> bool:
    head = data[:16].lstrip(b"\xef\xbb\xbf\x0b\r\n\t ")
    return head.startswith((b"FHS", b"BHS")) or data.count(b"MSH") > 1


def _too_large(text: str) -> bool:
    """Whether one message of a batch is over the limit a message sent alone has."""
    return len(text) > MAX_MESSAGE_BYTES // 4 and len(text.encode("utf-8")) > MAX_MESSAGE_BYTES


def _once_each(issues: list[Issue]) -> tuple[Issue, ...]:
    """A batch's issues with the repeats folded into one, counted: a thousand messages
    that each leave PID-10 out give one issue, not a thousand."""
    counts: dict[Issue, int] = {}
    for issue in issues:
        counts[issue] = counts.get(issue, 0) + 1
    return tuple(
        issue
        if count == 1
        else dataclasses.replace(issue, diagnostics=f"{issue.diagnostics} ({count} messages)")
        for issue, count in counts.items()
    )


def _convert_hl7_stream(data: bytes, ctx: ConversionContext) -> Conversion:
    if not _is_batch(data):
        return convert_hl7v2(data, ctx)
    text, _, _ = decode(data)  # the first header's MSH-18 decides for the whole stream
    messages = split_messages(text)
    if len(messages) == 1 and not _too_large(messages[0]):
        # One message after all ("MSH" was text, or a batch header around one): its own
        # bytes keep the character set its MSH-18 names.
        header_first = not data.lstrip(b"\xef\xbb\xbf\x0b\r\n\t ").startswith((b"FHS", b"BHS"))
        return convert_hl7v2(data if header_first else messages[0], ctx)
    out = BundleBuilder()
    rejected: list[Rejection] = []
    issues: list[Issue] = []
    kinds: list[str] = []
    for number, text in enumerate(messages, start=1):
        if _too_large(text):
            issue = Issue(IssueCode.TOO_LONG, f"the message is over {MAX_MESSAGE_BYTES} bytes")
            rejected.append(Rejection(location=f"message {number}", issues=(issue,)))
            continue
        try:
            one = convert_hl7v2(text, ctx)
        except NormalizationError as exc:
            rejected.append(Rejection(location=f"message {number}", issues=exc.issues))
            continue
        kinds.append(one.message_type)
        issues.extend(one.issues)
        for entry in one.bundle["entry"]:
            out.add(entry["resource"])
    if not out.resources:
        raise NormalizationError([i for r in rejected for i in r.issues])
    return Conversion(
        bundle=out.bundle(),
        issues=_once_each(issues + out.issues),
        rejected=tuple(rejected),
        message_type=f"HL7 v2 batch of {len(messages)}",
        records=len(messages),
    )


def convert_payload(
    data: bytes,
    ctx: ConversionContext,
    fmt: PayloadFormat | None = None,
    *,
    content_type: str | None = None,
    mapping: str | None = None,
    mappings_dir: Path | None = None,
) -> Conversion:
    """Convert any supported payload to a FHIR R4 transaction Bundle.

    Raises:
        NormalizationError: the payload (or every record in it) cannot be converted.
    """
    fmt = fmt or detect_format(data, content_type)
    if fmt is PayloadFormat.HL7V2:
        result = _convert_hl7_stream(data, ctx)
    elif fmt is PayloadFormat.FHIR:
        result = convert_fhir_json(data, ctx)
    elif fmt is PayloadFormat.CCDA:
        result = convert_ccda(data, ctx, strict=ctx.ccda_strict)
    elif not mapping:
        raise NormalizationError.at(
            "mapping", "a CSV payload needs a mapping name (?mapping=...)", IssueCode.REQUIRED
        )
    else:
        result = convert_csv(data, load_mapping(mapping, mappings_dir), ctx)
    check_bundle(result.bundle)
    return result
