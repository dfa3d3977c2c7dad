"""DocumentReference from TXA (MDM), with the OBX text as its content, and Appointment
from SCH (SIU)."""

from __future__ import annotations

import base64
from typing import Any

from ...context import BundleBuilder, ConversionContext
from ...ids import resource_id
from ..datatypes import codeable_concept, dtm, ends_before_start
from ..message import Segment
from .people import location, practitioner, practitioners

__all__ = ["appointment", "document_reference"]

_DOC_STATUS = {
    "AU": "current",
    "LA": "current",
    "DO": "current",
    "IP": "current",
    "IN": "current",
    "PA": "current",
    "DI": "current",
    "OB": "superseded",
    "CA": "entered-in-error",
    "RE": "superseded",
}
_APPOINTMENT_STATUS = {
    "BOOKED": "booked",
    "COMPLETE": "fulfilled",
    "CANCELLED": "cancelled",
    "DC": "cancelled",
    "DELETED": "entered-in-error",
    "NOSHOW": "noshow",
    "OVERBOOK": "booked",
    "PENDING": "pending",
    "STARTED": "arrived",
    "WAITLIST": "waitlist",
    "BLOCKED": "booked",
}


def document_reference(
    txa: Segment,
    texts: list[str],
    patient: dict[str, str],
    encounter: dict[str, str] | None,
    ctx: ConversionContext,
    out: BundleBuilder,
    key: str,
) -> dict[str, str]:
    """TXA: .2 document type, .4 activity time, .12 unique document number, .17 status."""
    number = txa.get(12, 1)
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": resource_id(ctx.partner, "DocumentReference", number or key),
        "status": _DOC_STATUS.get((txa.get(17) or "").upper(), "current"),
        "subject": patient,
        "content": [{"attachment": {"contentType": "text/plain; charset=utf-8"}}],
    }
    text = "\n".join(texts)
    if text:  # a notification without content (T01, T03) has no text; "" is not base64Binary
        resource["content"][0]["attachment"]["data"] = base64.b64encode(text.encode()).decode()
    if number:
        resource["masterIdentifier"] = {
            "system": f"urn:fhir-intake:partner:{ctx.partner}:document",
            "value": number,
        }
    kind = codeable_concept(txa, 2, ctx=ctx)
    if kind:
        resource["type"] = kind
    when = dtm(txa.get(4, 1), ctx.local_zone)
    if when and len(when) > 10:
        resource["date"] = when
    authors = practitioners(txa, 9, ctx, out)
    if authors:
        resource["author"] = authors
    if encounter:
        resource["context"] = {"encounter": [encounter]}
    return out.add(resource)


def appointment(
    sch: Segment,
    patient: dict[str, str] | None,
    resources: list[Segment],
    ctx: ConversionContext,
    out: BundleBuilder,
    key: str,
    start: str | None,
    end: str | None,
) -> dict[str, str]:
    """SCH: .1/.2 appointment ids, .7 reason, .8 type, .25 filler status; AIS/AIL/AIP the
    service, place and people taking part."""
    ident = sch.get(2, 1) or sch.get(1, 1)
    participants: list[dict[str, Any]] = []
    if patient:
        participants.append({"actor": patient, "status": "accepted"})
    service = None
    for seg in resources:
        if seg.name == "AIS":
            service = service or codeable_concept(seg, 3, ctx=ctx)
        elif seg.name == "AIL":
            place = location(seg, 3, ctx, out)
            if place:
                participants.append({"actor": place, "status": "accepted"})
        elif seg.name == "AIP":
            person = practitioner(seg, 3, 1, ctx, out)
            if person:
                participants.append({"actor": person, "status": "accepted"})
    if not participants:
        participants.append({"status": "needs-action", "type": [{"text": "unspecified"}]})
    status = _APPOINTMENT_STATUS.get((sch.get(25) or "").upper().replace(" ", ""), "booked")
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": resource_id(ctx.partner, "Appointment", ident or key),
        "status": status,
        "participant": participants,
    }
    if ident:
        resource["identifier"] = [
            {"system": f"urn:fhir-intake:partner:{ctx.partner}:appointment", "value": ident}
        ]
    reason = codeable_concept(sch, 7, ctx=ctx)
    if reason:
        resource["reasonCode"] = [reason]
    kind = codeable_concept(sch, 8, ctx=ctx)
    if kind:
        resource["appointmentType"] = kind
    if service:
        resource["serviceType"] = [service]
    if start and end and len(start) > 10 and len(end) > 10 and not ends_before_start(start, end):
        resource["start"], resource["end"] = start, end
    elif status not in {"proposed", "cancelled", "waitlist"} and not (start and end):
        resource["status"] = "proposed" if status == "booked" else status
    return out.add(resource)
