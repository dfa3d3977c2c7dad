"""What consent rules read from resources, and the keys a reference names a patient by."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.consent import Code
from shared.consent.resources import describe_resource, patient_keys, resolve_actor_references

OBS = {
    "resourceType": "Observation",
    "id": "o1",
    "meta": {
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]
    },
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "laboratory",
                }
            ]
        }
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "2093-3"}]},
    "subject": {
        "reference": "Patient/p1",
        "identifier": {"system": "urn:oid:1.2.3", "value": "M1"},
    },
    "performer": [{"reference": "Organization/lab"}],
    "effectiveDateTime": "2026-03-01T06:45:00+01:00",
}


def test_describe_an_observation() -> None:
    item = describe_resource(OBS, UTC)
    assert item.resource_type == "Observation" and item.reference == "Observation/o1"
    assert Code("http://loinc.org", "2093-3") in item.codes
    assert {c.code for c in item.codes} == {"2093-3", "laboratory"}
    assert {c.code for c in item.security_labels} == {"PSY"}
    assert item.span == (datetime(2026, 3, 1, 5, 45, tzinfo=UTC),) * 2
    assert item.references == {"Patient/p1", "Organization/lab"}
    assert item.authors == {"Organization/lab"}


def test_a_period_gives_a_span_from_start_to_end() -> None:
    encounter = {
        "resourceType": "Encounter",
        "period": {"start": "2026-03-01", "end": "2026-03-03"},
    }
    start, end = describe_resource(encounter, UTC).span or (None, None)
    assert start == datetime(2026, 3, 1, tzinfo=UTC)
    assert end is not None and end.date().isoformat() == "2026-03-03"


def test_patient_keys_come_from_reference_and_identifier() -> None:
    assert patient_keys(OBS["subject"]) == {"Patient/p1", "urn:oid:1.2.3|M1"}
    assert patient_keys({"reference": "Patient/9/_history/2"}) == {"Patient/9"}
    assert patient_keys({"reference": "Group/1"}) == set()
    assert patient_keys({"identifier": {"value": "7"}}) == {"|7"}


def test_an_absolute_url_is_a_patient_on_another_server_never_a_key_of_ours() -> None:
    # The review's CRITICAL-1: the last two segments of a URL became Patient/<victim>.
    assert patient_keys({"reference": "https://x.example/fhir/Patient/9/_history/2"}) == set()
    assert patient_keys({"reference": "Patient/9\n"}) == set()


def test_actor_references_get_the_identifier_of_a_resource_we_hold() -> None:
    org = {
        "resourceType": "Organization",
        "id": "org1",
        "identifier": [
            {"system": "urn:fhir-intake:partner:p1:cs:LOCAL", "value": "7"},
            {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
        ],
    }
    consent = {
        "resourceType": "Consent",
        "provision": {
            "actor": [{"reference": {"reference": "Organization/org1"}}],
            "provision": [{"actor": [{"reference": {"reference": "Practitioner/unknown"}}]}],
        },
    }
    resolved = resolve_actor_references(consent, {"Organization/org1": org})
    root = resolved["provision"]["actor"][0]["reference"]
    assert root == {
        "reference": "Organization/org1",
        "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
    }
    nested = resolved["provision"]["provision"][0]["actor"][0]["reference"]
    assert nested == {"reference": "Practitioner/unknown"}  # not held: left as it is
    assert "identifier" not in consent["provision"]["actor"][0]["reference"]  # input untouched
