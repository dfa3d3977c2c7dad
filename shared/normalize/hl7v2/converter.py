"""HL7 v2 message to a FHIR R4 transaction Bundle.

Segments are read in order, keeping the message structure as context: OBX belongs to
the OBR before it, NTE to the segment before it, RXR to its RXA, SPM to its order. A
segment we do not map is reported (never silently dropped); a Z-segment is kept
verbatim on the Provenance, which also points at the raw payload and the source
message id. A message type this module does not convert (an ACK, a query, master
files) is refused with that reason, never stored as an empty Bundle. Times sent without
an offset are the sender's local time (HL7 v2): read in the partner's configured zone,
else at the offset MSH-7 carries, else as UTC with a warning. Issues name the field
(``PID-8``) and the rule ("is not in table 0001"), never the value: they are kept in
the ingestion's status, which ``$purge`` does not erase, and the partner has its message.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import tzinfo
from typing import Any

from ..context import BundleBuilder, ConversionContext
from ..errors import IssueCode, NormalizationError
from ..models import Conversion
from ..provenance import add_provenance
from ..vital_signs import conform_vital_signs
from .datatypes import dtm, utc_offset
from .message import Message, Segment
from .parser import parse_message
from .resources.clinical import allergy, condition, coverage, procedure
from .resources.documents import appointment, document_reference
from .resources.encounter import encounter
from .resources.immunization import immunization
from .resources.patient import merge_patients, patient, related_person
from .resources.people import organization
from .resources.results import (
    diagnostic_report,
    obr_specimen,
    observation,
    service_request,
    specimen,
)

__all__ = ["CONVERTED_TYPES", "convert_hl7v2", "convert_message", "unconverted_type_reason"]

# MSH-9.1 message codes whose content this converter maps. Anything else (ACK, QRY, QBP,
# RSP, MFN, pharmacy administrations, ...) carries nothing it would keep, or would be
# mislabelled: refused with the reason instead.
CONVERTED_TYPES = frozenset(
    {"ADT", "BAR", "DFT", "MDM", "OMG", "OML", "OMP", "ORM", "ORU", "OUL", "PPR", "RDE", "RDS"}
    | {"REF", "SIU", "VXU"}
)

_NEEDS_PATIENT = {"ADT", "ORU", "VXU", "MDM", "ORM", "OML", "RDE", "OMG", "OUL", "BAR", "DFT"}
# Segments whose content is read as part of another, or that carry nothing to keep.
_CONSUMED = {
    "MSH",
    "EVN",
    "PD1",
    "PV2",
    "SFT",
    "TQ1",
    "TQ2",
    "ROL",
    "PRT",
    "ARV",
    "IN2",
    "IN3",
    "RGS",
    "AIG",
    "AIS",
    "AIL",
    "AIP",
    "RXR",
    "DSC",
    "CTD",
}


def unconverted_type_reason(code: str | None) -> str | None:
    """Why a message of MSH-9.1 ``code`` is refused, or None when it is converted."""
    if not code:
        return "the message type (MSH-9) is empty"
    if code.upper() in CONVERTED_TYPES:
        return None
    return (
        "unsupported message type: this service converts "
        f"{', '.join(sorted(CONVERTED_TYPES))} messages (MSH-9.1)"
    )


_SENT_OFFSET = re.compile(r"[+-][0-9]{4}\Z")


def _local_zone(message: Message, ctx: ConversionContext, out: BundleBuilder) -> tzinfo:
    """The zone this message's times without an offset are read in (see the module)."""
    if ctx.zone is not None:
        return ctx.zone
    sent = _SENT_OFFSET.search(message.msh.get(7, 1) or "")
    offset = utc_offset(sent[0]) if sent else None
    if offset is not None:
        return offset
    out.warn(
        "MSH-7",
        "times without an offset are read as UTC: the partner has no time zone configured "
        "and MSH-7 carries no offset",
    )
    return ctx.local_zone


def _message_key(message: Message, ctx: ConversionContext) -> str:
    return f"{ctx.partner}|{message.control_id or ''}|{message.msh.get(7) or ''}"


def _following(segments: list[Segment], index: int, names: set[str]) -> Iterator[Segment]:
    for seg in segments[index + 1 :]:
        if seg.name not in names:
            return
        yield seg


def _until(segments: list[Segment], index: int, name: str) -> Iterator[Segment]:
    """The segments after ``index`` up to the next one called ``name`` (its group)."""
    for seg in segments[index + 1 :]:
        if seg.name == name:
            return
        yield seg


def _order_group(segments: list[Segment], index: int) -> Iterator[Segment]:
    """The segments of the order group an OBR at ``index`` starts (to the next order)."""
    for seg in segments[index + 1 :]:
        if seg.name in {"OBR", "ORC", "PID", "MSH"}:
            return
        yield seg


def convert_message(message: Message, ctx: ConversionContext) -> Conversion:
    """Convert a parsed message.

    Raises:
        NormalizationError: the message has no patient (PID) where its type needs one.
    """
    out = BundleBuilder()
    for where, warning in message.warnings:
        out.warn(where, warning)
    code, event, structure = message.message_type
    refused = unconverted_type_reason(code)
    if refused:
        raise NormalizationError.at(
            "MSH-9", refused, IssueCode.REQUIRED if not code else IssueCode.NOT_SUPPORTED
        )
    code = (code or "").upper()
    # Ids that hash a time keep hashing it in the partner's zone (else UTC), as before
    # MSH-7's offset was read: a resend after a change of offset updates, never duplicates.
    ctx = dataclasses.replace(ctx, zone=_local_zone(message, ctx, out), key_zone=ctx.local_zone)
    if not message.control_id:
        out.warn("MSH-10", "no message control id: a resend cannot be told from a new message")
    kind = "^".join(x for x in (code, event, structure) if x)
    key = _message_key(message, ctx)
    segments = message.segments
    pid = message.first("PID")
    if pid is None and code in _NEEDS_PATIENT:
        raise NormalizationError.at(
            "PID", f"{code} messages need a PID segment to say whose data it is", IssueCode.REQUIRED
        )
    subject = patient(pid, message.first("PD1"), ctx, out, key) if pid is not None else None
    visit: dict[str, str] | None = None
    current_order: dict[str, str] | None = None
    current_orc: Segment | None = None
    current_report: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    order_index = 0
    doc_texts: list[str] = []
    txa: Segment | None = None
    zsegments: list[str] = []
    skipped: dict[str, int] = {}
    for index, seg in enumerate(segments):
        name = seg.name
        if name == "PID":
            if seg is not pid:  # a message may carry several patients (BAR, DFT, ADT A40)
                pd1 = next(_following(segments, index, {"PD1"}), None)
                subject = patient(seg, pd1, ctx, out, f"{key}|{seg.line}")
                visit, current_order, current_orc, current_report = None, None, None, None
            last = out.get(subject) if subject else None
        elif name == "NK1" and subject:
            related_person(seg, subject, ctx, out)
        elif name == "PV1" and subject:
            pv2 = next(_following(segments, index, {"PV2"}), None)
            visit = encounter(seg, pv2, subject, event, ctx, out, key)
            last = out.get(visit)
        elif name == "MRG" and subject:
            merge_patients(seg, subject, ctx, out)
        elif name in {"AL1", "IAM"} and subject:
            allergy(seg, subject, ctx, out)
        elif name == "DG1" and subject:
            condition(seg, subject, visit, ctx, out)
        elif name == "PR1" and subject:
            procedure(seg, subject, visit, ctx, out)
        elif name == "IN1" and subject:
            coverage(seg, subject, ctx, out)
        elif name == "ORC" and subject:
            current_orc, current_report = seg, None
            order_index += 1
            obr = next(
                (
                    s
                    for s in _following(
                        segments,
                        index,
                        {
                            "TQ1",
                            "TQ2",
                            "PRT",
                            "NTE",
                            "OBR",
                            "RQD",
                            "RXO",
                            "RXE",
                            "RXC",
                            "RXR",
                            "RXA",
                        },
                    )
                    if s.name == "OBR"
                ),
                None,
            )
            current_order = service_request(seg, obr, subject, ctx, out, key, order_index)
            last = out.get(current_order) if current_order else None
        elif name == "OBR" and subject:
            if current_orc is None or current_report is not None:
                order_index += 1
            if code in {"ORM", "OML", "OMG"}:
                current_order = service_request(
                    current_orc, seg, subject, ctx, out, key, order_index
                )
                last = out.get(current_order) if current_order else None
                current_orc = None
            else:
                if current_orc is None:  # a result group without ORC: OBR is the order
                    current_order = service_request(None, seg, subject, ctx, out, key, order_index)
                current_report = diagnostic_report(
                    seg, current_orc, subject, visit, current_order, ctx, out, key, order_index
                )
                last = current_report
                if not any(s.name == "SPM" for s in _order_group(segments, index)):
                    sample = obr_specimen(seg, subject, ctx, out, current_report)
                    if sample and sample not in current_report.get("specimen", []):
                        current_report.setdefault("specimen", []).append(sample)
        elif name == "OBX" and subject:
            if txa is not None:
                text = "\n".join(
                    v for v in (seg.text(5, rep=r) for r in range(1, seg.repetitions(5) + 1)) if v
                )
                doc_texts.append(text)
                continue
            # Results of an order are keyed by the order; a loose OBX (in ADT, BAR...) by its
            # place in the message, so two loose OBX never share an id.
            report_key = (
                current_report["id"]
                if current_report
                else f"{(visit or subject)['reference']}|{key}|{seg.line}"
            )
            effective = (current_report or {}).get("effectiveDateTime")
            last = observation(seg, subject, visit, current_report, ctx, out, report_key, effective)
        elif name == "SPM" and subject:
            sample = specimen(seg, subject, ctx, out, f"{key}|{order_index}")
            if current_report is not None:
                current_report.setdefault("specimen", []).append(sample)
            last = out.get(sample)
        elif name == "RXA" and subject:
            rxr = next(_following(segments, index, {"RXR"}), None)
            shot = immunization(seg, rxr, subject, ctx, out, key)
            last = out.get(shot) if shot else None
        elif name == "TXA" and subject and code == "MDM":
            txa = seg  # in MDM, the OBX segments that follow are the document's text
        elif name == "SCH":
            group = list(_until(segments, index, "SCH"))
            resources = [s for s in group if s.name in {"AIS", "AIL", "AIP"}]
            tq1 = next((s for s in group if s.name == "TQ1"), None)
            zone = ctx.local_zone
            start = dtm(tq1.get(7, 1), zone) if tq1 else dtm(seg.get(11, 4), zone)
            end = dtm(tq1.get(8, 1), zone) if tq1 else dtm(seg.get(11, 5), zone)
            appointment(seg, subject, resources, ctx, out, key, start, end)
        elif name == "NTE":
            text = "\n".join(
                v for v in (seg.text(3, rep=r) for r in range(1, seg.repetitions(3) + 1)) if v
            )
            if text and last is not None and last["resourceType"] == "DiagnosticReport":
                # R4 DiagnosticReport has no note; comments on a report are its conclusion.
                last["conclusion"] = "\n".join(x for x in (last.get("conclusion"), text) if x)
            elif (
                text
                and last is not None
                and last["resourceType"]
                in {
                    "Observation",
                    "DiagnosticReport",
                    "ServiceRequest",
                    "Procedure",
                    "Condition",
                    "AllergyIntolerance",
                    "Immunization",
                    "Specimen",
                }
            ):
                last.setdefault("note", []).append({"text": text})
            elif text:
                out.warn(f"segment {seg.line}", "NTE follows nothing that takes a note; left out")
        elif name.startswith("Z"):
            zsegments.append(seg.message.delimiters.field.join(seg.fields))
        elif name not in _CONSUMED:
            skipped[name] = skipped.get(name, 0) + 1
    if txa is not None and subject:
        document_reference(txa, doc_texts, subject, visit, ctx, out, key)
    for name, count in sorted(skipped.items()):
        out.warn(name, f"{count} {name} segment(s) are not converted yet", IssueCode.NOT_SUPPORTED)
    conform_vital_signs(
        list(out.resources.values()), out.warn, dtm(message.msh.get(7, 1), ctx.local_zone)
    )
    _provenance(message, ctx, out, kind, key, zsegments)
    _report_unread(segments, skipped, out)
    return Conversion(
        bundle=out.bundle(),
        issues=tuple(out.issues),
        message_type=kind,
        control_id=message.control_id,
    )


# Fields that say how a message is framed, routed and acknowledged, not what it holds:
# the header's, the Set IDs (a segment's sequence number), EVN-1 (MSH-9.2 again), and
# segments about the sending software.
_NOT_DATA = (
    {("MSH", n) for n in (1, 2, 3, 5, 6, 8, 11, 12, 13, 14, 15, 16, 17, 18)}
    | {("RXA", 1), ("RXA", 2)}  # sub-id counters
    | {("MSH", n) for n in range(19, 26)}
    | {("EVN", 1)}
)
_SET_ID_FIRST = {"PID", "PV1", "NK1", "AL1", "IAM", "DG1", "PR1", "IN1", "OBR", "OBX", "NTE"} | {
    "SPM", "TQ1", "TQ2", "ROL", "PRT", "GT1", "FT1", "RXR", "AIS", "AIL", "AIP", "AIG", "RGS"
}  # fmt: skip
_NO_DATA_SEGMENTS = {"SFT", "DSC"}


def _report_unread(segments: list[Segment], skipped: dict[str, int], out: BundleBuilder) -> None:
    """A ``not-supported`` issue per segment type listing the fields that hold a value no
    converter read (``PID-10, PID-22, OBX-15 (in 2)``), so nothing is dropped without a
    word; segments not converted at all are reported whole, Z-segments kept verbatim.
    Positions only: the values are the partner's."""
    counts: dict[str, dict[int, int]] = {}
    for seg in segments:
        name = seg.name
        if name in skipped or name in _NO_DATA_SEGMENTS or name[0] == "Z":
            continue
        for n in seg.unread():
            if (name, n) in _NOT_DATA or (n == 1 and name in _SET_ID_FIRST):
                continue
            fields = counts.setdefault(name, {})
            fields[n] = fields.get(n, 0) + 1
    for name, fields in counts.items():
        listed = ", ".join(
            f"{name}-{n}" if count == 1 else f"{name}-{n} (in {count})"
            for n, count in sorted(fields.items())
        )
        out.warn(name, f"values this conversion does not carry: {listed}", IssueCode.NOT_SUPPORTED)


def _provenance(
    message: Message,
    ctx: ConversionContext,
    out: BundleBuilder,
    kind: str,
    key: str,
    zsegments: list[str],
) -> None:
    msh = message.msh
    sender = organization(msh, 4, 1, ctx, out, hd=True) or organization(
        msh, 3, 1, ctx, out, hd=True
    )
    add_provenance(
        out,
        ctx,
        key=key,
        activity=f"converted from HL7 v2 {kind}",
        source_id=message.control_id,
        sender=sender,
        occurred=dtm(msh.get(7, 1), ctx.local_zone),
        verbatim=zsegments,
    )


def convert_hl7v2(data: bytes | str, ctx: ConversionContext) -> Conversion:
    """Parse and convert one message.

    Raises:
        NormalizationError: the message cannot be read or converted; its issues say where.
    """
    return convert_message(parse_message(data), ctx)
