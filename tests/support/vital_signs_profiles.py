"""R4's vital-signs profiles read from their StructureDefinitions (the npm package
``hl7.fhir.r4.examples``, which ``make setup`` installs), to check Observations against
them independently of the product's own ``shared/normalize/vital_signs.py``.

An Observation is held to a profile when its code has the LOINC code the profile fixes
(as the official validator does); 59408-5, pulse oximetry, to the oxygen-saturation one.
Checked: every element the profiles require (min 1), their fixed codes (category and
code slices), the value's type and its Quantity's fixed system, code and units, and
the profiles' invariants vs-1, vs-2 and vs-3.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from tests.conftest import REPO

PACKAGE = REPO / "node_modules" / "hl7.fhir.r4.examples"
_PROFILES = ("bmi", "bodyheight", "bodytemp", "bodyweight", "bp", "headcircum", "heartrate")
_PROFILES += ("oxygensat", "resprate", "vitalspanel")
_ALSO = {"59408-5": "2708-6"}  # a code the validator holds to another code's profile
_LOINC = "http://loinc.org"


def available() -> bool:
    """Whether the package is installed."""
    return (PACKAGE / "StructureDefinition-vitalsigns.json").is_file()


def _read(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PACKAGE / name).read_text(encoding="utf-8"))
    return data


def _value_set_codes(url: str) -> frozenset[str]:
    name = url.split("|")[0].rsplit("/", 1)[1]
    vs = _read(f"ValueSet-{name}.json")
    return frozenset(c["code"] for inc in vs["compose"]["include"] for c in inc.get("concept", []))


@cache
def _profiles() -> dict[str, list[dict[str, Any]]]:
    """LOINC code -> the differential elements of its profile and of the base profile."""
    base = _read("StructureDefinition-vitalsigns.json")["differential"]["element"]
    found: dict[str, list[dict[str, Any]]] = {}
    for name in _PROFILES:
        elements = _read(f"StructureDefinition-{name}.json")["differential"]["element"]
        code = next(
            e["fixedCode"]
            for e in elements
            if e["id"].startswith("Observation.code.coding:") and e["id"].endswith(".code")
        )
        found[code] = elements + base
    return found


def _codes(concepts: list[dict[str, Any]], system: str) -> set[str]:
    return {
        c.get("code") for cc in concepts for c in cc.get("coding", []) if c.get("system") == system
    }


def _present(observation: dict[str, Any], element: str) -> bool:
    if element.endswith("[x]"):
        stem = element[:-3]
        return any(k.startswith(stem) for k in observation)
    return element in observation


def violations(observation: dict[str, Any]) -> list[str]:
    """What in ``observation`` breaks the vital-signs profile its code calls for."""
    codes = _codes([observation.get("code", {})], _LOINC)
    held = {_ALSO.get(c, c) for c in codes} & set(_profiles())
    found: list[str] = []
    for code in sorted(held):
        found += _check(observation, code, _profiles()[code])
    return found


def _quantity(code: str, element: dict[str, Any], quantity: dict[str, Any]) -> list[str]:
    found = []
    leaf = element["id"].rsplit(".", 1)[1]
    fixed = element.get("fixedUri") or element.get("fixedCode")
    if element.get("min", 0) >= 1 and leaf not in quantity:
        found.append(f"{code}: valueQuantity.{leaf} is required")
    if fixed and quantity.get(leaf) != fixed:
        found.append(f"{code}: valueQuantity.{leaf} must be {fixed}")
    binding = element.get("binding", {}).get("valueSet")
    if binding and quantity.get(leaf) not in _value_set_codes(binding):
        found.append(f"{code}: valueQuantity.{leaf} is outside {binding}")
    return found


def _check(observation: dict[str, Any], code: str, elements: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    quantity = observation.get("valueQuantity")
    categories = {
        c.get("code") for cc in observation.get("category", []) for c in cc.get("coding", [])
    }
    codes = _codes([observation.get("code", {})], _LOINC)
    for e in elements:
        path, fixed = e["id"], e.get("fixedUri") or e.get("fixedCode")
        required = e.get("min", 0) >= 1
        if path.count(".") == 1 and required and ":" not in path:
            if not _present(observation, path.split(".")[1]):
                found.append(f"{code}: {path} is required")
        elif path.endswith(".code") and fixed and path.startswith("Observation.category:"):
            if fixed not in categories:
                found.append(f"{code}: category {fixed} is required")
        elif path.endswith(".code") and fixed and path.startswith("Observation.code.coding:"):
            if fixed not in codes:
                found.append(f"{code}: code {fixed} is required")
        elif path.startswith("Observation.valueQuantity.") and quantity is not None:
            found += _quantity(code, e, quantity)
        elif path == "Observation.valueQuantity":
            others = [k for k in observation if k.startswith("value") and k != "valueQuantity"]
            if others:
                found.append(f"{code}: the value must be a Quantity, not {others[0]}")
    effective = observation.get("effectiveDateTime")
    if isinstance(effective, str) and len(effective) < 8:  # vs-1, as the profile writes it
        found.append(f"{code}: vs-1 effectiveDateTime is not precise to the day")
    has_value = any(k.startswith("value") for k in observation) or "dataAbsentReason" in observation
    if not (observation.get("component") or observation.get("hasMember") or has_value):  # vs-2
        found.append(f"{code}: vs-2 needs a value or a dataAbsentReason")
    for component in observation.get("component", []):  # vs-3
        if (
            not any(k.startswith("value") for k in component)
            and "dataAbsentReason" not in component
        ):
            found.append(f"{code}: vs-3 a component needs a value or a dataAbsentReason")
    return found
