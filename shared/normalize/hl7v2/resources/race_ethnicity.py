"""PID-10 race and PID-22 ethnic group as the US Core race and ethnicity extensions.

The v2-to-FHIR IG leaves both to the realm's extension and names US Core's for the US.
Each extension always keeps the sender's words (``text``, which US Core requires); a
code becomes an OMB category or a detailed coding only where it is CDC's Race and
Ethnicity code (table 0005's codes since v2.5.1, ``CDCREC``) or table 0189's H/N/U, so
a local code is never put into a value set it is not from."""

from __future__ import annotations

import re
from typing import Any

from ..message import Segment

__all__ = ["ethnicity_extension", "race_extension"]

_US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
_CDCREC = "urn:oid:2.16.840.1.113883.6.238"
_NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
_CDC_CODE = re.compile(r"\d{4}-\d\Z", re.ASCII)
_CDC_NAMES = {"CDCREC", "HL70005", "HL70189", ""}
_OMB_RACE = {
    "1002-5": "American Indian or Alaska Native",
    "2028-9": "Asian",
    "2054-5": "Black or African American",
    "2076-8": "Native Hawaiian or Other Pacific Islander",
    "2106-3": "White",
}
_OMB_ETHNICITY = {"2135-2": "Hispanic or Latino", "2186-5": "Not Hispanic or Latino"}
_TABLE_0189 = {"H": "2135-2", "N": "2186-5"}
_UNKNOWN = {"UNK": "unknown", "ASKU": "asked but unknown", "U": "unknown"}


def race_extension(pid: Segment) -> dict[str, Any] | None:
    """PID-10 (every repetition) as US Core race, or None when it is empty."""
    return _extension(pid, 10, "us-core-race", _OMB_RACE, {}, most=6)


def ethnicity_extension(pid: Segment) -> dict[str, Any] | None:
    """PID-22 (every repetition) as US Core ethnicity, or None when it is empty."""
    return _extension(pid, 22, "us-core-ethnicity", _OMB_ETHNICITY, _TABLE_0189, most=1)


def _extension(
    pid: Segment, n: int, name: str, omb: dict[str, str], table: dict[str, str], *, most: int
) -> dict[str, Any] | None:
    """``most``: how many OMB categories US Core allows (race 6, ethnicity 1); past it, or
    once a category is known, an unknown adds none (the words stay in ``text``)."""
    parts: list[dict[str, Any]] = []
    words: dict[str, None] = {}  # in order, each once: linear however many repetitions
    categories = 0
    for rep in range(1, pid.repetitions(n) + 1):
        code, display = pid.get(n, 1, rep=rep), pid.get(n, 2, rep=rep)
        named = (pid.get(n, 3, rep=rep) or "").replace(" ", "").upper()
        said = pid.get(n, 9, rep=rep) or display or code
        if said:
            words.setdefault(said)
        if not code or named not in _CDC_NAMES:
            continue
        code = table.get(code.upper(), code)
        if code in omb:  # a category past US Core's count is in the text alone
            if categories < most:
                parts.append(_coded("ombCategory", _CDCREC, code, omb[code]))
                categories += 1
        elif code.upper() in _UNKNOWN and not categories:
            flavor = "ASKU" if code.upper() == "ASKU" else "UNK"
            parts.append(_coded("ombCategory", _NULL_FLAVOR, flavor, _UNKNOWN[flavor]))
            categories += 1
        elif _CDC_CODE.match(code):
            parts.append(_coded("detailed", _CDCREC, code, display))
    if not words:
        return None
    return {
        "url": _US_CORE + name,
        "extension": [*parts, {"url": "text", "valueString": ", ".join(words)}],
    }


def _coded(url: str, system: str, code: str, display: str | None) -> dict[str, Any]:
    coding = {"system": system, "code": code} | ({"display": display} if display else {})
    return {"url": url, "valueCoding": coding}
