"""Orders and results: ServiceRequest (ORC/OBR), DiagnosticReport (OBR), Observation
(OBX), Specimen (SPM). OBX-2 chooses Observation.value[x]."""

from __future__ import annotations

import base64
import re
from typing import Any

from ...context import BundleBuilder, ConversionContext
from ...ids import authority_system, local_system, resource_id
from ..datatypes import (
    address,
    codeable_concept,
    contact_point,
    dtm,
    ends_before_start,
    quantity_value,
)
from ..message import Segment
from ..terminology import (
    OBSERVATION_STATUS,
    UCUM_SPELLINGS,
    code_system_uri,
    published_coding,
    v2_table_system,
    v3_coding,
)
from .people import organization, organization_named, practitioner, practitioners

__all__ = [
    "diagnostic_report",
    "obr_specimen",
    "observation",
    "order_numbers",
    "service_request",
    "specimen",
]

_UCUM = "http://unitsofmeasure.org"
_REPORT_STATUS = {
    "F": "final",
    "C": "corrected",
    "A": "partial",
    "P": "preliminary",
    "R": "partial",
    "S": "partial",
    "I": "registered",
    "O": "registered",
    "X": "cancelled",
    # Y (no order on record for this test) and Z (no record of this patient) report no
    # result at all: unknown, never final.
}
_ORDER_STATUS = {
    "NW": "active",
    "OK": "active",
    "SC": "active",
    "CA": "revoked",
    "OC": "revoked",
    "DC": "revoked",
    "CR": "revoked",
    "CM": "completed",
    "HD": "on-hold",
    "OH": "on-hold",
    "RP": "active",
    "XO": "active",
    "IP": "active",
    "ER": "entered-in-error",
}
_SN = re.compile(
    r"^(?P<cmp><=|>=|<|>|=)?(?P<n1>[+-]?\d*\.?\d+)?(?P<sep>[-+/:])?(?P<n2>[+-]?\d*\.?\d+)?\Z"
)


def order_numbers(orc: Segment | None, obr: Segment | None) -> tuple[str | None, str | None]:
    """(placer, filler) order numbers: OBR-2/3, else ORC-2/3 (EI.1 with EI.2 namespace),
    as keys for ids (the identifiers written keep EI.1 as sent)."""

    def ei(seg: Segment | None, n: int) -> str | None:
        if seg is None or not seg.get(n, 1):
            return None
        ns = seg.get(n, 2) or seg.get(n, 3)
        return f"{ns}:{seg.get(n, 1)}" if ns else seg.get(n, 1)

    return ei(obr, 2) or ei(orc, 2), ei(obr, 3) or ei(orc, 3)


def _order_key(
    ctx: ConversionContext, orc: Segment | None, obr: Segment | None, message_key: str, index: int
) -> str:
    """An order is its placer and filler numbers (either alone when only one was sent)
    and its service (OBR-4); with no number, its place in the message."""
    placer, filler = order_numbers(orc, obr)
    service = (obr.get(4, 1) if obr is not None else None) or ""
    if placer or filler:  # with the service: one order may hold several tests (OML)
        return f"{ctx.partner}|order|{placer or ''}|{filler or ''}|{service}"
    return f"{ctx.partner}|message|{message_key}|{index}"


def _identifiers(
    orc: Segment | None, obr: Segment | None, ctx: ConversionContext
) -> list[dict[str, Any]]:
    found = []
    for n, code in ((2, "PLAC"), (3, "FILL")):  # OBR-2/3, else ORC-2/3
        seg = obr if obr is not None and obr.get(n, 1) else orc
        if seg is None or not seg.get(n, 1):
            continue
        # EI.1 is the number as sent; EI.2-4 (namespace, universal id, its type) say whose.
        system = authority_system(seg.get(n, 2), seg.get(n, 3), seg.get(n, 4), ctx.partner)
        found.append(
            {
                "type": {"coding": [published_coding(v2_table_system("0203"), code)]},
                "system": system or f"urn:fhir-intake:partner:{ctx.partner}:order",
                "value": seg.get(n, 1),
            }
        )
    return found


def service_request(
    orc: Segment | None,
    obr: Segment | None,
    patient: dict[str, str],
    ctx: ConversionContext,
    out: BundleBuilder,
    message_key: str,
    index: int,
) -> dict[str, str] | None:
    """A ServiceRequest for an order (ORC, with OBR-4 as its code)."""
    code = codeable_concept(obr, 4, ctx=ctx) if obr is not None else None
    if code is None and orc is None:
        return None
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": resource_id(
            ctx.partner, "ServiceRequest", _order_key(ctx, orc, obr, message_key, index)
        ),
        "status": _ORDER_STATUS.get((orc.get(5) or orc.get(1) or "") if orc else "", "unknown"),
        "intent": "order",
        "subject": patient,
    }
    if orc is not None and orc.get(5) is None and (orc.get(1) or "") in _ORDER_STATUS:
        resource["status"] = _ORDER_STATUS[orc.get(1) or ""]
    identifiers = _identifiers(orc, obr, ctx)
    if identifiers:
        resource["identifier"] = identifiers
    if code:
        resource["code"] = code
    authored = dtm(orc.get(9, 1), ctx.local_zone) if orc is not None else None
    if authored and len(authored) > 10:
        resource["authoredOn"] = authored
    requester = (practitioner(orc, 12, 1, ctx, out) if orc is not None else None) or (
        practitioner(obr, 16, 1, ctx, out) if obr is not None else None
    )
    facility = _ordering_facility(orc, ctx, out) if orc is not None else None
    if facility:  # ORC-21: the requester is the provider in the ordering facility's role
        role: dict[str, Any] = {
            "resourceType": "PractitionerRole",
            "id": resource_id(
                ctx.partner,
                "PractitionerRole",
                (requester or {}).get("reference", ""),
                facility["reference"],
            ),
            "organization": facility,
        }
        if requester:
            role["practitioner"] = requester
        requester = out.add(role)
    if requester:
        resource["requester"] = requester
    return out.add(resource)


def _ordering_facility(
    orc: Segment, ctx: ConversionContext, out: BundleBuilder
) -> dict[str, str] | None:
    """ORC-21 ordering facility (XON), with ORC-22 its address and ORC-23 its phones."""
    facility = organization(orc, 21, 1, ctx, out)
    if facility is None:
        return None
    held = out.get(facility)
    if held is not None:
        where = [a for a in (address(orc, 22, r) for r in range(1, orc.repetitions(22) + 1)) if a]
        phones = [
            c for c in (contact_point(orc, 23, r) for r in range(1, orc.repetitions(23) + 1)) if c
        ]
        if where:
            held.setdefault("address", where)
        if phones:
            held.setdefault("telecom", phones)
    return facility


def _timing(
    name: str, start: str | None, end: str | None, out: BundleBuilder, where: str, warning: str
) -> dict[str, Any]:
    """A FHIR ``{name}[x]`` choice: ``{name}Period`` when an end was sent (an end before
    its start is dropped with ``warning``), ``{name}DateTime`` for a start alone."""
    if ends_before_start(start, end):
        out.warn(where, warning)
        end = None
    if end:
        return {f"{name}Period": {k: v for k, v in (("start", start), ("end", end)) if v}}
    return {f"{name}DateTime": start} if start else {}


def diagnostic_report(
    obr: Segment,
    orc: Segment | None,
    patient: dict[str, str],
    encounter: dict[str, str] | None,
    order: dict[str, str] | None,
    ctx: ConversionContext,
    out: BundleBuilder,
    message_key: str,
    index: int,
) -> dict[str, Any]:
    """A DiagnosticReport for an OBR; Observations are added to ``result`` as they come."""
    code = codeable_concept(obr, 4, ctx=ctx) or {"text": "unspecified"}
    if "coding" not in code and code.get("text") == "unspecified":
        out.warn(obr.location(4), "OBR-4 (universal service identifier) is empty")
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": resource_id(
            ctx.partner, "DiagnosticReport", _order_key(ctx, orc, obr, message_key, index)
        ),
        "status": _REPORT_STATUS.get((obr.get(25) or "").upper(), "unknown"),
        "code": code,
        "subject": patient,
    }
    identifiers = _identifiers(orc, obr, ctx)
    if identifiers:
        resource["identifier"] = identifiers
    if encounter:
        resource["encounter"] = encounter
    if order:
        resource["basedOn"] = [order]
    resource |= _timing(
        "effective",
        dtm(obr.get(7, 1), ctx.local_zone),
        dtm(obr.get(8, 1), ctx.local_zone),  # OBR-8, the end of a collection
        out,
        obr.location(8),
        "the observation end is before its start (OBR-7); left out",
    )
    issued = dtm(obr.get(22, 1), ctx.local_zone)
    if issued and len(issued) > 10:
        resource["issued"] = issued
    category = codeable_concept(obr, 24, ctx=ctx, table="0074")
    if category:
        resource["category"] = [category]
    # The same order met again (a repeated OBR group) is the first report: its results
    # go there, not to a copy the Bundle does not keep.
    return out.get(out.add(resource)) or resource


def _units(
    seg: Segment, ctx: ConversionContext, n: int = 6, *, in_cq: bool = False
) -> dict[str, Any]:
    """A unit (OBX-6, or CQ.2 of field ``n`` with ``in_cq``, a CWE in subcomponents) to
    Quantity unit, system and code: UCUM where the unit is UCUM or a common spelling of a
    UCUM unit, else the sender's system (kept, never guessed)."""
    code, display, named = (
        (seg.get(n, 2, i) for i in (1, 2, 3)) if in_cq else (seg.get(n, i) for i in (1, 2, 3))
    )
    if not code:
        return {}
    unit: dict[str, Any] = {"unit": display or code}
    system = code_system_uri(named, ctx.partner, ctx.code_systems)
    ucum = UCUM_SPELLINGS.get(code.strip().lower())
    if system == _UCUM:
        unit.update(system=_UCUM, code=ucum or code)
    elif system is None:  # no coding system named: UCUM only where the spelling is certain
        if ucum:
            unit.update(system=_UCUM, code=ucum)
    elif ucum:
        unit.update(system=_UCUM, code=ucum)
    else:
        unit.update(system=system, code=code)
    return unit


_TEXT_TYPES = {"ST", "TX", "FT", "", "IS", "ID", "CX", "XCN", "XAD", "XPN", "XTN", "CP"}
# Value types read one repetition at a time; every other type is joined as text.
_TYPED = {"NM", "SN", "NR", "CWE", "CE", "CNE", "CF", "DTM", "TS", "DT", "DR", "TM", "ED", "RP"}


def _values(obx: Segment, ctx: ConversionContext, out: BundleBuilder) -> list[tuple[str, Any]]:
    """OBX-5's value(s): text repetitions join into one string; other repetitions each
    give a value (Observation.component when there is more than one)."""
    kind = (obx.get(2) or "").upper()
    count = obx.repetitions(5)
    if count == 0:
        return []
    if kind not in _TYPED:
        if kind not in _TEXT_TYPES:
            out.warn(
                obx.location(2), "the value type is not one this service converts; kept as text"
            )
        text = "\n".join(v for v in (obx.text(5, rep=r) for r in range(1, count + 1)) if v)
        return [("valueString", text)] if text else []
    values = (_value(obx, kind, ctx, out, rep) for rep in range(1, count + 1))
    return [v for v in values if v]


_TIME = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,4})?(?:[+-]\d{4})?\Z")


def _value(
    obx: Segment, kind: str, ctx: ConversionContext, out: BundleBuilder, rep: int
) -> tuple[str, Any] | None:
    """One repetition of a typed OBX-5 value."""
    if obx.is_null(5, rep=rep):
        return None
    if kind == "NM":
        number = quantity_value(obx.get(5, rep=rep))
        if number is None and obx.get(5, rep=rep) is None:
            return None
        if number is None:
            out.warn(obx.location(5), "OBX-2 is NM but the value is not a number; kept as text")
            return "valueString", obx.get(5, rep=rep)
        return "valueQuantity", {"value": number, **_units(obx, ctx)}
    if kind == "SN":
        return _structured_numeric(obx, ctx, out, rep)
    if kind in {"CWE", "CE", "CNE", "CF"}:
        concept = codeable_concept(obx, 5, rep, ctx=ctx)
        return ("valueCodeableConcept", concept) if concept else None
    if kind == "DR":  # a date range: DR.1 start, DR.2 end
        start, end = (dtm(obx.get(5, c, rep=rep), ctx.local_zone) for c in (1, 2))
        if ends_before_start(start, end):
            out.warn(obx.location(5, rep), "OBX-2 is DR but it ends before it starts; end left out")
            end = None
        period = {k: v for k, v in (("start", start), ("end", end)) if v}
        return ("valuePeriod", period) if period else None
    if kind == "NR":  # a numeric range: NR.1 low, NR.2 high
        low, high = (quantity_value(obx.get(5, c, rep=rep)) for c in (1, 2))
        if low is not None and high is not None and high < low:  # rng-2
            out.warn(
                obx.location(5, rep), "OBX-2 is NR but its low is above its high; kept as text"
            )
            return "valueString", f"{obx.get(5, 1, rep=rep)}-{obx.get(5, 2, rep=rep)}"
        units = _units(obx, ctx)
        bounds = {
            k: {"value": v, **units} for k, v in (("low", low), ("high", high)) if v is not None
        }
        return ("valueRange", bounds) if bounds else None
    if kind in {"DTM", "TS", "DT"}:
        moment = dtm(obx.get(5, 1, rep=rep), ctx.local_zone)
        if moment is None:
            text = obx.get(5, rep=rep)
            return ("valueString", text) if text else None
        return "valueDateTime", moment
    if kind == "TM":
        text = obx.get(5, rep=rep)
        found = _TIME.match(text or "")
        hours, minutes, seconds = (int(found[i] or 0) for i in (1, 2, 3)) if found else (99, 0, 0)
        if hours > 23 or minutes > 59 or seconds > 59:
            out.warn(obx.location(5, rep), "OBX-2 is TM but the value is not a time; kept as text")
            return ("valueString", text) if text else None
        return "valueTime", f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return None  # ED, RP: carried by DiagnosticReport.presentedForm / DocumentReference


def _structured_numeric(
    obx: Segment, ctx: ConversionContext, out: BundleBuilder, rep: int
) -> tuple[str, Any] | None:
    """SN: .1 comparator, .2 number, .3 separator (- range, / or : ratio), .4 second number."""
    comparator, first, sep, second = (obx.get(5, i, rep=rep) for i in (1, 2, 3, 4))
    units = _units(obx, ctx)
    n1, n2 = quantity_value(first), quantity_value(second)
    if sep == "-" and n1 is not None and n2 is not None and n2 >= n1:
        return "valueRange", {"low": {"value": n1, **units}, "high": {"value": n2, **units}}
    if sep in {"/", ":"} and n1 is not None and n2 is not None:
        return "valueRatio", {"numerator": {"value": n1}, "denominator": {"value": n2}}
    if n1 is not None:
        quantity: dict[str, Any] = {"value": n1, **units}
        if comparator in {"<", "<=", ">", ">="}:
            quantity["comparator"] = comparator
        return "valueQuantity", quantity
    text = "".join(x for x in (comparator, first, sep, second) if x)
    out.warn(
        obx.location(5, rep), "OBX-2 is SN but the value is not a structured number; kept as text"
    )
    return ("valueString", text) if text else None


# Table 0191 (type of data) to MIME top-level types; table 0291 subtypes are MIME's own.
_MIME_TYPE = {"AP": "application", "IM": "image", "AU": "audio", "TEXT": "text", "VI": "video"}
_MIME_SUBTYPE = {"OCTET-STREAM": "octet-stream", "JPEG": "jpeg", "TIFF": "tiff", "PNG": "png"}
_MIME = re.compile(r"^[a-z]+/[a-z0-9.+-]+\Z")


def _attachment(obx: Segment, out: BundleBuilder, rep: int = 1) -> dict[str, str] | None:
    """OBX-5 ED: .2 type of data, .3 subtype, .4 encoding, .5 data, as an Attachment with
    a real MIME type and valid base64 (text sent as A is encoded here)."""
    data = obx.get(5, 5, rep=rep)
    if not data:
        return None
    kind, subtype = (obx.get(5, 2, rep=rep) or "").strip(), (obx.get(5, 3, rep=rep) or "").strip()
    media = next((m.lower() for m in (kind, subtype) if _MIME.match(m.lower())), None)
    if media is None and kind.upper() in _MIME_TYPE and subtype:
        sub = _MIME_SUBTYPE.get(subtype.upper(), subtype.lower())
        candidate = f"{_MIME_TYPE[kind.upper()]}/{sub}"
        media = candidate if _MIME.match(candidate) else None
    if media is None:
        out.warn(obx.location(5), "ED type of data and subtype are no MIME type; sent as octets")
        media = "application/octet-stream"
    encoding = (obx.get(5, 4, rep=rep) or "").upper()
    if encoding == "HEX":
        try:
            return {"contentType": media, "data": base64.b64encode(bytes.fromhex(data)).decode()}
        except ValueError:
            out.warn(obx.location(5), "ED data says Hex but is not; left out")
            return None
    if encoding == "BASE64":
        encoded = "".join(data.split())
        try:
            base64.b64decode(encoded, validate=True)
        except ValueError:
            out.warn(obx.location(5), "ED data says Base64 but is not; left out")
            return None
    else:
        encoded = base64.b64encode(data.encode()).decode()
    return {"contentType": media, "data": encoded}


def _performing_lab(
    obx: Segment, ctx: ConversionContext, out: BundleBuilder
) -> list[dict[str, str]]:
    """OBX-23 performing organization (XON) at OBX-24's address, else OBX-15's producer
    (CWE: id and name), and OBX-25 its medical director: performers of the result."""
    found = []
    lab = organization(obx, 23, 1, ctx, out)
    if lab is None and obx.get(15):
        lab = organization_named(obx.get(15, 2) or obx.get(15), obx.get(15), None, ctx, out)
    if lab is not None:
        place = address(obx, 24)
        kept = out.get(lab)
        if place and kept is not None:
            kept.setdefault("address", [place])
        found.append(lab)
    director = practitioner(obx, 25, 1, ctx, out)
    if director:
        found.append(director)
    return found


def _interpretation(obx: Segment, rep: int, ctx: ConversionContext) -> dict[str, Any] | None:
    """OBX-8: table 0078 abnormal flags, which v3 ObservationInterpretation took over (the
    binding's code system), where it defines the code; any other flag is the sender's."""
    flag = obx.get(8, rep=rep)
    named = obx.get(8, 3, rep=rep)
    if not flag:
        return None
    if named in (None, "HL70078"):
        known = v3_coding("ObservationInterpretation", flag)
        if known:
            return {"coding": [known]}
    concept = codeable_concept(obx, 8, rep, ctx=ctx)
    if concept and not any("system" in c for c in concept.get("coding", [])):
        concept["coding"][0]["system"] = local_system(ctx.partner, "HL70078")
    return concept


def observation(
    obx: Segment,
    patient: dict[str, str],
    encounter: dict[str, str] | None,
    report: dict[str, Any] | None,
    ctx: ConversionContext,
    out: BundleBuilder,
    key: str,
    effective_default: str | None,
) -> dict[str, Any]:
    """An Observation for an OBX, keyed by its report (or message), OBX-3 and OBX-4."""
    code = codeable_concept(obx, 3, ctx=ctx)
    if code is None:
        out.warn(obx.location(3), "OBX-3 (observation identifier) is empty")
        code = {"text": "unspecified"}
    ident = "|".join(c.get("code", "") for c in code.get("coding", [])) or code.get("text", "")
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id(
            ctx.partner, "Observation", key, ident, obx.get(4) or "", obx.get(1) or ""
        ),
        "status": OBSERVATION_STATUS.get((obx.get(11) or "").upper(), "unknown"),
        "code": code,
        "subject": patient,
    }
    if encounter:
        resource["encounter"] = encounter
    values = _values(obx, ctx, out)
    if len(values) == 1:
        resource[values[0][0]] = values[0][1]
    elif values:
        resource["component"] = [{"code": code, name: value} for name, value in values]
    elif obx.is_null(5):
        resource["dataAbsentReason"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    "code": "unknown",
                }
            ]
        }
    reference_range = obx.get(7)
    if reference_range:
        resource["referenceRange"] = [{"text": reference_range}]
    flags = [_interpretation(obx, r, ctx) for r in range(1, obx.repetitions(8) + 1)]
    if any(flags):
        resource["interpretation"] = [f for f in flags if f]
    effective = dtm(obx.get(14, 1), ctx.local_zone) or effective_default
    if effective:
        resource["effectiveDateTime"] = effective
    performers = practitioners(obx, 16, ctx, out) + _performing_lab(obx, ctx, out)
    if performers:
        resource["performer"] = performers
    method = codeable_concept(obx, 17, ctx=ctx)
    if method:
        resource["method"] = method
    kind = (obx.get(2) or "").upper()
    if kind == "ED" and report is not None:
        for rep in range(1, obx.repetitions(5) + 1):
            attachment = _attachment(obx, out, rep)
            if attachment:
                report.setdefault("presentedForm", []).append(attachment)
    elif kind == "ED" and obx.get(5, 5, rep=1):
        out.warn(obx.location(5), "an ED value with no OBR (report) to hold it; left out")
    elif kind == "RP" and obx.get(5):
        out.warn(obx.location(5), "RP (reference pointer) values are not converted")
    out.add(resource)
    if report is not None:
        report.setdefault("result", []).append({"reference": f"Observation/{resource['id']}"})
    return resource


_SPECIMEN_AVAILABLE = {"Y": "available", "N": "unavailable"}


def _specimen_quantity(seg: Segment, n: int, ctx: ConversionContext) -> dict[str, Any] | None:
    """CQ (.1 quantity, .2 units as CWE) to a SimpleQuantity, units as OBX-6's are."""
    value = quantity_value(seg.get(n, 1))
    if value is None:
        return None
    return {"value": value} | _units(seg, ctx, n, in_cq=True)


def _notes(seg: Segment, n: int) -> list[dict[str, str]]:
    found = (seg.text(n, rep=r) for r in range(1, seg.repetitions(n) + 1))
    return [{"text": t} for t in found if t]


def specimen(
    spm: Segment, patient: dict[str, str], ctx: ConversionContext, out: BundleBuilder, key: str
) -> dict[str, str]:
    """SPM, as the v2-to-FHIR IG maps it: .2 placer and filler ids, .4 type, .6 additive,
    .7 collection method, .8 source site, .12 amount, .14 description, .17 collection
    time (a period when .17.2 ends it), .18 received, .20 availability, .24 condition,
    .27 container type, .30 accession id."""
    placer, filler = spm.get(2, 1, 1), spm.get(2, 2, 1)
    ident = placer or filler
    resource: dict[str, Any] = {
        "resourceType": "Specimen",
        "id": resource_id(ctx.partner, "Specimen", ident or key, spm.get(1) or ""),
        "subject": patient,
    }
    system = f"urn:fhir-intake:partner:{ctx.partner}:specimen"
    identifiers = [
        {"type": {"coding": [published_coding(v2_table_system("0203"), code)]}, "system": system}
        | {"value": value}
        for value, code in ((placer, "PLAC"), (filler, "FILL"))
        if value
    ]
    if identifiers:
        resource["identifier"] = identifiers
    accession = spm.get(30, 1)
    if accession:
        resource["accessionIdentifier"] = {"system": system, "value": accession}
    status = _SPECIMEN_AVAILABLE.get((spm.get(20) or "").upper())
    if status:
        resource["status"] = status
    kind = codeable_concept(spm, 4, ctx=ctx)
    if kind:
        resource["type"] = kind
    received = dtm(spm.get(18, 1), ctx.local_zone)
    if received:
        resource["receivedTime"] = received
    collection: dict[str, Any] = {}
    collection |= _timing(
        "collected",
        dtm(spm.get(17, 1, 1), ctx.local_zone),
        dtm(spm.get(17, 2, 1), ctx.local_zone),
        out,
        spm.location(17),
        "the collection ends before it starts (SPM-17.1); left out",
    )
    amount = _specimen_quantity(spm, 12, ctx)
    if amount:
        collection["quantity"] = amount
    for n, element in ((7, "method"), (8, "bodySite")):
        concept = codeable_concept(spm, n, ctx=ctx)
        if concept:
            collection[element] = concept
    if collection:
        resource["collection"] = collection
    container: dict[str, Any] = {}
    for n, element in ((27, "type"), (6, "additiveCodeableConcept")):
        concept = codeable_concept(spm, n, ctx=ctx)
        if concept:
            container[element] = concept
    if container:
        resource["container"] = [container]
    conditions = [
        c
        for c in (codeable_concept(spm, 24, r, ctx=ctx) for r in range(1, spm.repetitions(24) + 1))
        if c
    ]
    if conditions:
        resource["condition"] = conditions
    notes = _notes(spm, 14)
    if notes:
        resource["note"] = notes
    return out.add(resource)


_OBR_SPECIMEN_FIELDS = (9, 10, 14, 15, 39)


def _sps_concept(obr: Segment, comp: int, ctx: ConversionContext) -> dict[str, Any] | None:
    """OBR-15 (SPS) component ``comp``, a CWE whose parts are subcomponents."""
    code, display, named = (obr.get(15, comp, i) for i in (1, 2, 3))
    if not code and not display:
        return None
    concept: dict[str, Any] = {"text": display} if display else {}
    if code:
        system = code_system_uri(named, ctx.partner, ctx.code_systems)
        coding = {"system": system} if system else {}
        concept["coding"] = [coding | {"code": code} | ({"display": display} if display else {})]
    return concept


def obr_specimen(
    obr: Segment,
    patient: dict[str, str],
    ctx: ConversionContext,
    out: BundleBuilder,
    report: dict[str, Any],
) -> dict[str, str] | None:
    """The specimen an OBR describes when no SPM does (the IG's OBR[Specimen]): .7/.8
    collection time, .9 volume, .10 collector, .14 received, .15 source (SPS: .1 type,
    .4 body site), .39 collector's comment; None when OBR says nothing of a specimen."""
    if not any(obr.get(n) or obr.get(n, 1, 1) for n in _OBR_SPECIMEN_FIELDS):
        return None
    resource: dict[str, Any] = {
        "resourceType": "Specimen",
        "id": resource_id(ctx.partner, "Specimen", "obr", report["id"]),
        "subject": patient,
    }
    source = _sps_concept(obr, 1, ctx)  # SPS.1 and SPS.4 are CWEs in subcomponents
    if source:
        resource["type"] = source
    received = dtm(obr.get(14, 1), ctx.local_zone)
    if received:
        resource["receivedTime"] = received
    collection: dict[str, Any] = {}
    if "effectivePeriod" in report:
        collection["collectedPeriod"] = report["effectivePeriod"]
    elif "effectiveDateTime" in report:
        collection["collectedDateTime"] = report["effectiveDateTime"]
    volume = _specimen_quantity(obr, 9, ctx)
    if volume:
        collection["quantity"] = volume
    collector = practitioner(obr, 10, 1, ctx, out)
    if collector:
        collection["collector"] = collector
    site = _sps_concept(obr, 4, ctx)
    if site:
        collection["bodySite"] = site
    if collection:
        resource["collection"] = collection
    notes = [
        {"text": t}
        for t in (
            obr.get(39, 2, rep=r) or obr.get(39, 9, rep=r) or obr.get(39, 1, rep=r)
            for r in range(1, obr.repetitions(39) + 1)
        )
        if t
    ]
    if notes:
        resource["note"] = notes
    return out.add(resource)
