"""Observations with a vital-sign LOINC code made to meet R4's vital-signs profiles.

R4 requires an Observation whose code is one of the vital signs (heart rate, body
temperature, blood pressure, ...) to conform to that sign's profile
(hl7.org/fhir/R4/observation-vitalsigns.html): a ``vital-signs`` category, an effective
time precise to the day, a value or a ``dataAbsentReason`` (vs-2), the sign's own LOINC
code, and a Quantity in the UCUM units the profile allows. HL7 v2 and CSV senders give
the code and the value, rarely the category: this adds what follows from the code
(the category, 2708-6 beside pulse oximetry's 59408-5, the unit's text, "unknown" as
the reason for a missing value, a value of another type moved to a note with the
reason ``error``, and, for an observation sent without a time, a period that ends when
the message was sent) and reports what only the sender can put right.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

__all__ = ["VITAL_SIGNS", "conform_vital_signs"]

_LOINC = "http://loinc.org"
_UCUM = "http://unitsofmeasure.org"
_CATEGORY = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "vital-signs",
    "display": "Vital Signs",
}
_ABSENT = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"}
    ]
}
_ERROR = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "error"}
    ]
}
_LENGTH = frozenset({"cm", "[in_i]"})
# LOINC code -> the UCUM codes its profile allows (empty: no Quantity fixed, a panel).
VITAL_SIGNS: dict[str, frozenset[str]] = {
    "85353-1": frozenset(),  # vital signs panel
    "85354-9": frozenset(),  # blood pressure panel (systolic and diastolic as components)
    "9279-1": frozenset({"/min"}),  # respiratory rate
    "8867-4": frozenset({"/min"}),  # heart rate
    "2708-6": frozenset({"%"}),  # oxygen saturation
    "59408-5": frozenset({"%"}),  # SpO2 by pulse oximetry: the oxygensat profile
    "8310-5": frozenset({"Cel", "[degF]"}),  # body temperature
    "8302-2": _LENGTH,  # body height
    "9843-4": _LENGTH,  # head circumference
    "29463-7": frozenset({"kg", "[lb_av]", "g"}),  # body weight
    "39156-5": frozenset({"kg/m2"}),  # BMI
    "8480-6": frozenset({"mm[Hg]"}),  # systolic
    "8462-4": frozenset({"mm[Hg]"}),  # diastolic
    "8478-0": frozenset({"mm[Hg]"}),  # mean blood pressure
}
_OXYGEN_SATURATION = {
    "system": _LOINC,
    "code": "2708-6",
    "display": "Oxygen saturation in Arterial blood",
}


def _text(value: Any) -> str:
    """A value of any FHIR type as the text a person reads (for the note it moves to)."""
    if not isinstance(value, dict):
        return str(value)
    if "coding" in value or "text" in value:
        codes = " ".join(str(c.get("code")) for c in value.get("coding", []) if c.get("code"))
        return str(value.get("text") or codes)
    if "value" in value:
        return " ".join(
            str(x) for x in (value.get("comparator"), value["value"], value.get("unit")) if x
        )
    parts = [
        (k, value[k])
        for k in ("low", "high", "numerator", "denominator", "start", "end")
        if k in value
    ]
    separator = (
        {"low": " - ", "numerator": "/", "start": " to "}.get(parts[0][0], " ") if parts else " "
    )
    return separator.join(_text(v) for _, v in parts)


def _sent_value(observation: dict[str, Any]) -> str:
    key = next(k for k in observation if k.startswith("value"))
    return _text(observation.pop(key))


_BP = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_SYSTOLIC = {"system": _LOINC, "code": "8480-6", "display": "Systolic blood pressure"}
_DIASTOLIC = {"system": _LOINC, "code": "8462-4", "display": "Diastolic blood pressure"}


def _blood_pressure_components(observation: dict[str, Any]) -> bool:
    """A blood pressure panel sent as one value (120/80, a ratio or text) becomes the
    systolic and diastolic components its profile requires; False when it cannot."""
    ratio = observation.get("valueRatio")
    if ratio and "value" in ratio.get("numerator", {}) and "value" in ratio.get("denominator", {}):
        pair = (ratio["numerator"]["value"], ratio["denominator"]["value"])
    else:
        found = _BP.match(str(observation.get("valueString", "")))
        if not found:
            return False
        pair = (Decimal(found[1]), Decimal(found[2]))
    for key in [k for k in observation if k.startswith("value")]:
        del observation[key]
    observation["component"] = [
        {
            "code": {"coding": [dict(code)]},
            "valueQuantity": {"value": value, "unit": "mmHg", "system": _UCUM, "code": "mm[Hg]"},
        }
        for code, value in ((_SYSTOLIC, pair[0]), (_DIASTOLIC, pair[1]))
    ]
    return True


def _conform(observation: dict[str, Any], sent: str | None) -> list[str]:
    """Make one Observation conform where its code says it must; what cannot be made."""
    codings = observation.get("code", {}).get("coding", [])
    signs = [
        c["code"] for c in codings if c.get("system") == _LOINC and c.get("code") in VITAL_SIGNS
    ]
    if not signs:
        return []
    problems: list[str] = []
    categories = observation.setdefault("category", [])
    if not any(
        c.get("system") == _CATEGORY["system"] and c.get("code") == "vital-signs"
        for concept in categories
        for c in concept.get("coding", [])
    ):
        categories.append({"coding": [dict(_CATEGORY)]})
    if "59408-5" in signs and "2708-6" not in signs:
        codings.append(dict(_OXYGEN_SATURATION))
    allowed = frozenset().union(*(VITAL_SIGNS[code] for code in signs))
    has_value = any(key.startswith("value") for key in observation)
    if "85354-9" in signs and has_value and not observation.get("component"):
        if _blood_pressure_components(observation):
            problems.append("a blood pressure sent as one value: written as its components")
            has_value = False
        else:  # the panel takes components only: the value as sent is kept as a note
            observation.setdefault("note", []).append(
                {"text": f"value as sent: {_sent_value(observation)}"}
            )
            observation["component"] = [
                {"code": {"coding": [dict(code)]}, "dataAbsentReason": _ERROR}
                for code in (_SYSTOLIC, _DIASTOLIC)
            ]
            problems.append("a blood pressure value that is no pair of numbers; kept as a note")
            has_value = False
    if allowed and has_value and "valueQuantity" not in observation:
        # The profile takes a Quantity only: the value as sent is kept as a note.
        observation.setdefault("note", []).append(
            {"text": f"value as sent: {_sent_value(observation)}"}
        )
        observation["dataAbsentReason"] = _ERROR
        problems.append("the value of a vital sign is not a quantity; kept as a note")
        has_value = False
    if not (has_value or observation.get("component") or observation.get("hasMember")):
        observation.setdefault("dataAbsentReason", _ABSENT)
    effective = observation.get("effectiveDateTime") or observation.get("effectivePeriod")
    if not effective and sent:
        # Observed no later than the message was sent: all that is known, and true.
        observation["effectivePeriod"] = {"end": sent}
        problems.append("a vital sign without an observation time: taken as before the message")
    elif not effective:
        problems.append("a vital sign without an observation time")
    elif isinstance(effective, str) and len(effective) < 10:
        problems.append("a vital sign's observation time is less precise than a day")
    quantity = observation.get("valueQuantity")
    if allowed and quantity is not None:
        if quantity.get("system") != _UCUM or quantity.get("code") not in allowed:
            units = ", ".join(sorted(allowed))
            problems.append(f"a vital sign in units its profile does not allow ({units})")
        elif "unit" not in quantity:
            quantity["unit"] = quantity["code"]
    return problems


def conform_vital_signs(
    resources: Iterable[dict[str, Any]],
    warn: Callable[[str, str], None],
    sent: str | None = None,
) -> None:
    """Add to vital-sign Observations what their profiles require and follows from their
    codes; ``warn(location, text)`` for what only the sender can give. ``sent``: when the
    message was sent (MSH-7), the latest an observation without a time can have been."""
    found: dict[str, tuple[str, int]] = {}  # problem -> (first Observation, how many)
    for resource in resources:
        if resource.get("resourceType") == "Observation":
            for problem in _conform(resource, sent):
                first, count = found.get(problem, (f"Observation/{resource.get('id')}", 0))
                found[problem] = (first, count + 1)
    for problem, (first, count) in found.items():
        warn(first, problem if count == 1 else f"{problem} ({count} Observations)")
