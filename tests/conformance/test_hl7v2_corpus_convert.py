"""The 139 real HL7 v2 samples convert to valid FHIR R4, meaning what the reference
converter's outputs mean.

Compared by meaning, not bytes (their ids, placeholder systems and extensions are
their choices): patient identifiers, names, birth date and gender; encounter class
and period as instants; observation codes, values and units; counts of the main
resource types. Deliberate differences are listed in ALLOWED with the reason.
Skipped, with the reason, where ../shared/corpus is absent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from shared.normalize import json_codec
from shared.normalize.context import ConversionContext
from shared.normalize.hl7v2.converter import convert_hl7v2
from tests.conftest import CORPUS

BASE = CORPUS / "ms-fhir-converter"
FILES = sorted((BASE / "hl7v2").glob("*.hl7")) if (BASE / "hl7v2").is_dir() else []
EXPECTED = {p.name.removesuffix("-expected.json"): p for p in BASE.glob("expected/*/*.json")}
CTX = ConversionContext(partner="corpus", received=datetime(2026, 1, 1, tzinfo=UTC))

pytestmark = pytest.mark.skipif(not FILES, reason=f"HL7 v2 corpus not found at {BASE}")

# (sample, aspect): why our output differs from the reference converter's on purpose.
_EXPECTED_DATES = (
    "the reference puts PV2-8/PV2-9 (expected admit/discharge dates) into Encounter.period; "
    "an expected date is not an actual one, so we leave them out"
)
ALLOWED: dict[tuple[str, str], str] = {
    **{
        (name, f"encounter.period.{edge}"): _EXPECTED_DATES
        for name, edges in {
            "ADT-A04-01": ("end",),
            "ADT-A05-01": ("start", "end"),
            "ADT-A11-01": ("end",),
            "ADT-A13-02": ("end",),
            "ADT-A14-01": ("start", "end"),
            "ADT-A16-01": ("end",),
            "ADT-A16-02": ("end",),
            "ADT-A25-02": ("end",),
            "ADT-A27-01": ("start", "end"),
        }.items()
        for edge in edges
    },
    ("ADT-A41-01", "Encounter.count"): "A41 carries a PV1; we convert it as in any ADT event, "
    "the reference converts no Encounter for A41",
    ("ADT-A41-02", "Encounter.count"): "as ADT-A41-01",
}


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == kind]


def _instant(text: str | None) -> datetime | str | None:
    if text is None or len(text) <= 10:
        return text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture(scope="module")
def converted() -> dict[str, dict[str, Any]]:
    return {p.stem: convert_hl7v2(p.read_bytes(), CTX).bundle for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_converts_to_a_valid_r4_transaction(
    path: Path, converted: dict[str, dict[str, Any]]
) -> None:
    bundle = converted[path.stem]
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["type"] == "transaction"
    ids = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]]
    assert len(ids) == len(set(ids))
    assert all(
        e["request"] == {"method": "PUT", "url": f"{t}/{i}"}
        for e, (t, i) in zip(bundle["entry"], ids, strict=True)
    )
    provenance = _resources(bundle, "Provenance")
    assert len(provenance) == 1
    targets = {t["reference"] for t in provenance[0]["target"]}
    assert targets == {f"{t}/{i}" for t, i in ids if t != "Provenance"}
    # Every reference points at a resource in the bundle.
    text = json_codec.dumps(bundle)
    for kind, rid in ids:
        assert text.count(f'"{kind}/{rid}"') >= 1


def test_no_resource_id_is_shared_across_partners(converted: dict[str, dict[str, Any]]) -> None:
    """The trust model's id rule over every sample: the same message from another partner
    gives that partner's resources, none with an id of ours (ADT, ORU, VXU, MDM, SIU...)."""
    other = ConversionContext(partner="corpus-b", received=CTX.received)
    kinds: set[str] = set()
    for path in FILES:
        ours = {
            (e["resource"]["resourceType"], e["resource"]["id"])
            for e in converted[path.stem]["entry"]
        }
        theirs = convert_hl7v2(path.read_bytes(), other).bundle
        shared = ours & {
            (e["resource"]["resourceType"], e["resource"]["id"]) for e in theirs["entry"]
        }
        assert not shared, f"{path.stem}: {sorted(shared)}"
        kinds |= {kind for kind, _ in ours}
    assert {"Patient", "Practitioner", "Organization", "Encounter", "Observation"} <= kinds


def test_conversion_is_deterministic() -> None:
    for path in FILES[:20]:
        first = convert_hl7v2(path.read_bytes(), CTX).bundle
        again = convert_hl7v2(path.read_bytes(), CTX).bundle
        assert first == again


def _observed(bundle: dict[str, Any]) -> dict[str, set[Any]]:
    """LOINC codes of Observations (and their components) with their quantity values."""
    found: dict[str, set[Any]] = {}
    for obs in _resources(bundle, "Observation"):
        for part in [obs, *obs.get("component", [])]:
            for coding in part.get("code", {}).get("coding", []):
                if coding.get("system") == "http://loinc.org":
                    value = part.get("valueQuantity", {}).get("value")
                    found.setdefault(coding["code"], set()).add(value)
    return found


def _differences(name: str, ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    found: list[str] = []
    our_patients, their_patients = _resources(ours, "Patient"), _resources(theirs, "Patient")
    if their_patients and our_patients:
        mine, ref = our_patients[0], their_patients[0]
        their_ids = {i.get("value") for i in ref.get("identifier", [])}
        if not {i["value"] for i in mine.get("identifier", [])} <= their_ids:
            found.append("patient.identifier")
        their_families = {n.get("family") for n in ref.get("name", [])}
        if not {n.get("family") for n in mine.get("name", [])} <= their_families:
            found.append("patient.name")
        if mine.get("birthDate") != ref.get("birthDate"):
            found.append("patient.birthDate")
        if mine.get("gender") != ref.get("gender"):
            found.append("patient.gender")
    for kind in ("Encounter", "Immunization", "AllergyIntolerance"):
        if len(_resources(ours, kind)) != len(_resources(theirs, kind)):
            found.append(f"{kind}.count")
    our_enc, their_enc = _resources(ours, "Encounter"), _resources(theirs, "Encounter")
    if our_enc and their_enc:
        if our_enc[0]["class"].get("code") != their_enc[0].get("class", {}).get("code"):
            found.append("encounter.class")
        for edge in ("start", "end"):
            mine_t = _instant(our_enc[0].get("period", {}).get(edge))
            ref_t = _instant(their_enc[0].get("period", {}).get(edge))
            if mine_t != ref_t:
                found.append(f"encounter.period.{edge}")
    # What they converted from OBX (LOINC-coded), we convert too, with the same values.
    ours_by_code = _observed(ours)
    for code, values in _observed(theirs).items():
        if code not in ours_by_code:
            found.append("observation.missing")
        elif values - {None} and not (values - {None}) <= ours_by_code[code]:
            found.append("observation.value")
    return sorted(set(found))


@pytest.mark.parametrize(
    "path",
    [p for p in FILES if p.stem in EXPECTED],
    ids=[p.stem for p in FILES if p.stem in EXPECTED],
)
def test_means_what_the_reference_output_means(
    path: Path, converted: dict[str, dict[str, Any]]
) -> None:
    # decimals as Decimal on both sides: compared by value, not by binary float
    theirs = json_codec.loads(EXPECTED[path.stem].read_text(encoding="utf-8-sig"))
    found = _differences(path.stem, converted[path.stem], theirs)
    unexplained = [d for d in found if (path.stem, d) not in ALLOWED]
    assert not unexplained, f"{path.stem}: {unexplained}"
