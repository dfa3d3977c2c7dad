"""HL7 v2 data types to FHIR R4 data types.

Each function takes a segment and a field position (and repetition), reads the
components it needs and returns FHIR JSON (dicts), or None when nothing was sent.
Positions cited are the standard's (v2.5.1 names; later versions keep them).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

from ..context import ConversionContext
from ..ids import authority_system, local_system
from .message import Segment
from .terminology import (
    code_system_uri,
    is_published_table,
    published_coding,
    v2_table_system,
)

__all__ = [
    "DateTimeResult",
    "address",
    "codeable_concept",
    "coding",
    "contact_point",
    "dtm",
    "ends_before_start",
    "human_name",
    "identifier",
    "local_date",
    "quantity_value",
    "utc_offset",
]

_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,4}))?(?P<tz>[+-]\d{4})?\Z",
    re.ASCII,
)

DateTimeResult = str


def utc_offset(tz: str) -> timezone | None:
    """``+HHMM``/``-HHMM`` as a fixed offset, or None when it is not one a clock can show
    (24 hours or more, 60 minutes or more)."""
    hours, minutes = int(tz[1:3]), int(tz[3:5])
    if hours > 23 or minutes > 59:
        return None
    sign = -1 if tz[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def dtm(value: str | None, zone: tzinfo) -> DateTimeResult | None:
    """A DTM/TS value (``YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]``) as a FHIR date or dateTime.

    The precision is the input's: a date stays a date (``2026-03-01``); a time gains the
    seconds FHIR requires (``T10:30:00``) and an offset: the one sent, else the zone the
    conversion reads local times in, at that local time (never the host's). Before a
    zone's standard time its offset is local mean time, with seconds (``-05:50:36``),
    which FHIR cannot write: such a time is written in UTC, the same instant. Invalid
    values (and offsets of 24 hours or more) return None.

    Args:
        value: the DTM text (TS.1 for a TS field).
        zone: the partner's time zone, for values sent without an offset.
    """
    if not value:
        return None
    found = _DTM.match(value.strip())
    if not found:
        return None
    y, mo, d, h = found["y"], found["mo"], found["d"], found["h"]
    if y == "0000":  # FHIR's years start at 0001
        return None
    try:
        if h is None:
            if d is not None:
                datetime(int(y), int(mo), int(d))
                return f"{y}-{mo}-{d}"
            if mo is not None:
                if not 1 <= int(mo) <= 12:
                    return None
                return f"{y}-{mo}"
            return y
        if d is None:
            return None
        local = datetime(
            int(y), int(mo), int(d), int(h), int(found["mi"] or 0), int(found["s"] or 0)
        )
    except ValueError:
        return None
    tz = found["tz"]
    offset = utc_offset(tz) if tz else zone
    if offset is None:
        return None
    stamp = local.replace(tzinfo=offset)
    shift = stamp.utcoffset()
    mean_time = shift is not None and shift.seconds % 60 != 0
    if mean_time:
        try:
            stamp = stamp.astimezone(UTC)
        except OverflowError:  # year 1 east of Greenwich: before the first UTC instant
            return None
    fraction = f".{found['f']}" if found["f"] else ""
    text = stamp.isoformat(timespec="seconds")
    if text.endswith("+00:00") and (not tz or mean_time):
        text = text[:-6] + "Z"
    return text[:19] + fraction + text[19:]


def local_date(value: str | None) -> str | None:
    """The date part of a DTM as the sender wrote it (``YYYY[-MM[-DD]]``): a birth or an
    expiry date is the local one, whatever instant the time of day makes it in UTC."""
    found = _DTM.match((value or "").strip())
    if not found or found["y"] == "0000":
        return None
    return dtm("".join(found[k] or "" for k in ("y", "mo", "d")), UTC)


def ends_before_start(start: str | None, end: str | None) -> bool:
    """Whether a period's end is before its start. Two times compare as instants; a date
    and anything else compare at the precision both have (FHIRPath orders values that
    differ at a shared precision: 2026-03-02 is after 2026-03-01T10:00)."""
    if not start or not end:
        return False
    if len(start) > 10 and len(end) > 10:
        return datetime.fromisoformat(end) < datetime.fromisoformat(start)
    shared = min(len(start), len(end), 10)
    return end[:shared] < start[:shared]


def coding(
    seg: Segment,
    n: int,
    rep: int = 1,
    offset: int = 0,
    *,
    ctx: ConversionContext,
    table: str | None = None,
) -> dict[str, Any] | None:
    """One coding triplet of a CWE/CE/CNE field (components 1-3, or 4-6 with offset 3);
    ``table`` is the HL7 table the field's codes are from when CWE.3 does not say."""
    # Coding.code holds no run of white space (R4's code pattern): one space keeps it.
    code = " ".join((seg.get(n, 1 + offset, rep=rep) or "").split())
    display = seg.get(n, 2 + offset, rep=rep)
    if not code:
        return None
    named = seg.get(n, 3 + offset, rep=rep) or (f"HL7{table}" if table else None)
    system = code_system_uri(named, ctx.partner, ctx.code_systems)
    if system and is_published_table(system):
        published = published_coding(system, code)
        if published is not None:  # with the table's display (the sender's is the text)
            return published
        system = local_system(ctx.partner, named or "")  # not a code the table defines
    result: dict[str, Any] = {"system": system} if system else {}
    result["code"] = code
    if display:
        result["display"] = display
    return result


def codeable_concept(
    seg: Segment, n: int, rep: int = 1, *, ctx: ConversionContext, table: str | None = None
) -> dict[str, Any] | None:
    """CWE/CE/CNE to CodeableConcept: primary and alternate codings, text from CWE.9 or .2;
    ``table``: the HL7 table of the primary code when CWE.3 does not name one."""
    primary = coding(seg, n, rep, 0, ctx=ctx, table=table)
    codings = [c for c in (primary, coding(seg, n, rep, 3, ctx=ctx)) if c]
    text = seg.get(n, 9, rep=rep) or seg.get(n, 2, rep=rep)
    if not codings and not text:
        return None
    concept: dict[str, Any] = {}
    if codings:
        concept["coding"] = codings
    if text:
        concept["text"] = text.strip()
    return concept


def identifier(
    seg: Segment, n: int, rep: int = 1, *, ctx: ConversionContext, well_known: bool = True
) -> dict[str, Any] | None:
    """CX to Identifier: CX.1 value, CX.4 assigning authority to system, CX.5 type
    (``well_known=False``: a USSSA or NPI authority as the partner's own, as ids key it)."""

    value = seg.get(n, 1, rep=rep)
    if not value:
        return None
    result: dict[str, Any] = {}
    id_type = seg.get(n, 5, rep=rep)
    if id_type:  # CX.5 as table 0203 defines it; anything else sent there is text
        known = published_coding(v2_table_system("0203"), id_type)
        result["type"] = {"coding": [known]} if known else {"text": id_type}
    system = authority_system(
        seg.get(n, 4, 1, rep=rep),
        seg.get(n, 4, 2, rep=rep),
        seg.get(n, 4, 3, rep=rep),
        ctx.partner,
        well_known=well_known,
    )
    if system:
        result["system"] = system
    result["value"] = value.strip()
    return result


# Table 0200 name types whose meaning a FHIR name use has. Left without a use: U
# (unspecified, not "old"), T (indigenous/tribal, not "temp"), P (name of a partner or
# spouse, not the patient's "usual"), A (alias), B (at birth), C (adopted), I, K, NB.
_NAME_USE = {
    "L": "official",
    "D": "usual",
    "M": "maiden",
    "N": "nickname",
    "S": "anonymous",
    "R": "official",
    "BAD": "old",
    "TEMP": "temp",
}


def human_name(
    seg: Segment, n: int, rep: int = 1, first: int = 1, use_at: int | None = None
) -> dict[str, Any] | None:
    """XPN (or the name part of XCN, starting at ``first``) to HumanName.

    XPN.1.1 family, .2 given, .3 further given, .4 suffix, .5 prefix, .6 degree and .14
    professional suffix (suffixes too), .7 name type (``use_at``: where the name type is,
    XCN.10 for an XCN).
    """
    family = seg.get(n, first, 1, rep=rep)
    given = [
        g.strip() for g in (seg.get(n, first + 1, rep=rep), seg.get(n, first + 2, rep=rep)) if g
    ]
    suffixes = [
        s
        for s in (
            seg.get(n, first + 3, rep=rep),
            seg.get(n, first + 5, rep=rep),
            None if use_at else seg.get(n, 14, rep=rep),
        )
        if s
    ]
    prefix = seg.get(n, first + 4, rep=rep)
    if not (family or given):
        return None
    name: dict[str, Any] = {}
    use = _NAME_USE.get((seg.get(n, use_at or first + 6, rep=rep) or "").upper())
    if use:
        name["use"] = use
    if family:
        name["family"] = family.strip()
    if given:
        name["given"] = given
    if prefix:
        name["prefix"] = [prefix.strip()]
    if suffixes:
        name["suffix"] = list(dict.fromkeys(suffixes))
    return name


_ADDRESS_USE = {
    "H": ("home", None),
    "B": ("work", None),
    "O": ("work", None),
    "C": ("temp", None),
    "M": (None, "postal"),
    "BA": ("old", None),
    "BR": ("home", None),
    "P": ("home", None),
    "RH": ("home", None),
}


def address(seg: Segment, n: int, rep: int = 1) -> dict[str, Any] | None:
    """XAD to Address: .1 street, .2 other, .3 city, .4 state, .5 postal code, .6 country,
    .7 address type, .9 county."""
    lines = [x.strip() for x in (seg.get(n, 1, 1, rep=rep), seg.get(n, 2, rep=rep)) if x]
    parts = {
        "city": seg.get(n, 3, rep=rep),
        "district": seg.get(n, 9, rep=rep),
        "state": seg.get(n, 4, rep=rep),
        "postalCode": seg.get(n, 5, rep=rep),
        "country": seg.get(n, 6, rep=rep),
    }
    result: dict[str, Any] = {}
    use, kind = _ADDRESS_USE.get((seg.get(n, 7, rep=rep) or "").upper(), (None, None))
    if use:
        result["use"] = use
    if kind:
        result["type"] = kind
    if lines:
        result["line"] = lines
    result.update({k: v.strip() for k, v in parts.items() if v and v.strip()})
    return result if (lines or any(parts.values())) else None


_TELECOM_USE = {
    "PRN": "home",
    "ORN": "home",
    "WPN": "work",
    "VHN": "home",
    "ASN": "temp",
    "EMR": "temp",
    "NET": None,
    "BPN": "work",
    "PRS": "mobile",
}
_TELECOM_SYSTEM = {
    "PH": "phone",
    "FX": "fax",
    "MD": "other",
    "CP": "phone",
    "BP": "pager",
    "Internet": "email",
    "X.400": "email",
    "TDD": "other",
    "TTY": "other",
    "SAT": "phone",
}


def contact_point(
    seg: Segment, n: int, rep: int = 1, default_use: str | None = None
) -> dict[str, Any] | None:
    """XTN to ContactPoint: .1 (deprecated) number, .2 use, .3 equipment, .4 email,
    .5-.8 country, area, local number, extension; .12 unformatted."""
    equipment = seg.get(n, 3, rep=rep)
    email = seg.get(n, 4, rep=rep)
    parts = [seg.get(n, i, rep=rep) for i in (5, 6, 7)]
    number = seg.get(n, 12, rep=rep) or (
        " ".join(p for p in parts if p) if any(parts) else seg.get(n, 1, rep=rep)
    )
    if seg.get(n, 8, rep=rep) and number:
        number = f"{number} x{seg.get(n, 8, rep=rep)}"
    value = email if (equipment == "Internet" or (email and not number)) else number
    if not value:
        return None
    result: dict[str, Any] = {
        "system": "email" if value == email else _TELECOM_SYSTEM.get(equipment or "PH", "phone"),
        "value": value.strip(),
    }
    sent_use = seg.get(n, 2, rep=rep)
    use = _TELECOM_USE.get(sent_use or "") if sent_use else default_use
    if equipment == "CP":
        use = "mobile"
    if use:
        result["use"] = use
    return result


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)\Z")


def quantity_value(text: str | None) -> Decimal | int | None:
    """An NM value as a FHIR decimal with the digits sent (``5.10`` stays ``5.10``), an
    integer when it has no fraction, or None when it is not a number."""
    if not text:
        return None
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    if "." in text:
        return Decimal(text if text[0].isdigit() or text[0] in "+-" else f"0{text}")
    return int(text)
