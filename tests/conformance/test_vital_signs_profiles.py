"""Every vital-sign Observation we produce meets R4's vital-signs profiles, read from
their StructureDefinitions (tests/support/vital_signs_profiles.py): the 139 HL7 v2
corpus messages, the shipped samples (the demo ORU, the RPM CSV export) and a message
that sends the least a sender may. Skipped, with the reason, where the corpus or the
R4 package is absent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.normalize.context import ConversionContext
from shared.normalize.models import PayloadFormat
from shared.normalize.service import convert_payload
from tests.conftest import CORPUS, REPO
from tests.support import vital_signs_profiles as profiles

CTX = ConversionContext(partner="corpus", received=datetime(2026, 1, 1, tzinfo=UTC))
CORPUS_FILES = sorted((CORPUS / "ms-fhir-converter" / "hl7v2").glob("*.hl7"))
SAMPLES = REPO / "docs" / "samples"

pytestmark = pytest.mark.skipif(
    not profiles.available(), reason=f"the R4 package is not installed at {profiles.PACKAGE}"
)


def _observations(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]


def _violations(bundle: dict[str, Any]) -> list[str]:
    return [v for o in _observations(bundle) for v in profiles.violations(o)]


@pytest.mark.skipif(not CORPUS_FILES, reason=f"HL7 v2 corpus not found under {CORPUS}")
def test_every_corpus_vital_sign_meets_its_profile() -> None:
    found = {}
    for path in CORPUS_FILES:
        bundle = convert_payload(path.read_bytes(), CTX, PayloadFormat.HL7V2).bundle
        problems = _violations(bundle)
        if problems:
            found[path.name] = problems
    assert not found


@pytest.mark.parametrize(
    ("sample", "fmt", "mapping"),
    [
        ("demo/oru-r01-heart-rate.hl7", PayloadFormat.HL7V2, None),
        ("adt-a01.hl7", PayloadFormat.HL7V2, None),
        ("rpm-vitals.csv", PayloadFormat.CSV, "rpm-vitals"),
        ("lab-results.csv", PayloadFormat.CSV, "lab-results"),
    ],
)
def test_every_sample_vital_sign_meets_its_profile(
    sample: str, fmt: PayloadFormat, mapping: str | None
) -> None:
    bundle = convert_payload((SAMPLES / sample).read_bytes(), CTX, fmt, mapping=mapping).bundle
    assert not _violations(bundle)


def test_the_least_a_sender_sends_gets_what_follows_from_the_code() -> None:
    # No category, pulse oximetry without 2708-6, a heart rate with no value.
    message = (
        "MSH|^~\\&|S|F|R|RF|20260301101500+0000||ORU^R01|C1|P|2.5.1\r"
        "PID|1||M1^^^H^MR\r"
        "OBR|1|P1|F1|85353-1^Vitals^LN|||20260301100000\r"
        "OBX|1|NM|59408-5^SpO2^LN||97|%^^UCUM|||||F\r"
        "OBX|2|NM|8867-4^Heart rate^LN||||||||F\r"
    )
    result = convert_payload(message.encode(), CTX, PayloadFormat.HL7V2)
    spo2, rate = _observations(result.bundle)
    assert "2708-6" in {c["code"] for c in spo2["code"]["coding"]}
    assert rate["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert not _violations(result.bundle)


def test_the_checker_finds_what_a_profile_forbids() -> None:
    broken = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/x"},
        "valueQuantity": {"value": 72, "system": "http://unitsofmeasure.org", "code": "bpm"},
    }
    found = profiles.violations(broken)
    assert any("category vital-signs" in v for v in found)
    assert any("effective[x] is required" in v for v in found)
    assert any("valueQuantity.code must be /min" in v for v in found)
    assert any("valueQuantity.unit is required" in v for v in found)
