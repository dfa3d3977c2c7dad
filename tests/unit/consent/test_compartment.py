"""Whose data a resource is, by the R4 Patient CompartmentDefinition: every type and path
it lists, references by identifier and to contained Patients, what fails closed, and
Patient references the definition leaves out (``shared/consent/compartment.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from shared.consent.compartment import PATIENT_COMPARTMENT, place

CASES = [
    (kind, path, patient_only)
    for kind, paths in sorted(PATIENT_COMPARTMENT.items())
    for path, patient_only in paths
    if kind != "Patient"  # a Patient is its own; its link is a merge (tested below)
]


def _at(path: str, value: Any) -> dict[str, Any]:
    """A value placed at a dotted path, with a list at every step (as FHIR allows)."""
    steps = path.split(".")
    node: Any = value
    for step in reversed(steps[1:]):
        node = [{step: node}]
    return {steps[0]: node}


def test_the_table_is_the_r4_definition() -> None:
    # 67 of the 145 types the R4 4.0.1 definition lists have inclusion parameters;
    # spot-check the ones the review used.
    assert len(PATIENT_COMPARTMENT) == 67
    assert ("participant.actor", False) in PATIENT_COMPARTMENT["Appointment"]
    assert ("for", False) in PATIENT_COMPARTMENT["Task"]
    assert ("subject", False) in PATIENT_COMPARTMENT["Encounter"]
    assert ("member.entity", False) in PATIENT_COMPARTMENT["Group"]
    assert ("patient", True) in PATIENT_COMPARTMENT["AllergyIntolerance"]
    assert ("individual", True) in PATIENT_COMPARTMENT["ResearchSubject"]
    assert "Practitioner" not in PATIENT_COMPARTMENT and "Device" not in PATIENT_COMPARTMENT


@pytest.mark.parametrize(("kind", "path", "patient_only"), CASES, ids=lambda x: str(x))
def test_every_listed_path_exists_in_the_model(kind: str, path: str, patient_only: bool) -> None:
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError, AttributeError):
        pytest.skip(f"{kind} is R4 only (fhir.resources has R4B models)")
    fields = model.model_fields
    first = path.split(".")[0]
    aliases = {f.alias or name for name, f in fields.items()} | set(fields)
    assert first in aliases, f"{kind}.{first} is not an element"


@pytest.mark.parametrize(("kind", "path", "patient_only"), CASES, ids=lambda x: str(x))
def test_a_patient_at_every_listed_path_makes_it_that_patients_data(
    kind: str, path: str, patient_only: bool
) -> None:
    resource = {"resourceType": kind, "id": "x", **_at(path, {"reference": "Patient/p1"})}
    placement = place(resource)
    assert [n.reference for n in placement.named] == ["Patient/p1"]
    assert placement.undetermined is None
    by_identifier = {
        "resourceType": kind,
        "id": "x",
        **_at(path, {"identifier": {"system": "urn:oid:1.2", "value": "M1"}}),
    }
    found = place(by_identifier)
    if patient_only:  # the path points at Patients only: the identifier is the patient's
        assert [n.identifier for n in found.named] == [("urn:oid:1.2", "M1")]
    else:  # it might be anyone: fail closed unless the reference says it is a Patient
        assert found.undetermined is not None and "without a type" in found.undetermined
        typed = {
            "resourceType": kind,
            "id": "x",
            **_at(
                path, {"type": "Patient", "identifier": {"system": "urn:oid:1.2", "value": "M1"}}
            ),
        }
        assert [n.identifier for n in place(typed).named] == [("urn:oid:1.2", "M1")]


@pytest.mark.parametrize("kind", sorted(k for k in PATIENT_COMPARTMENT if k != "Patient"))
def test_a_compartment_type_that_names_no_patient_fails_closed(kind: str) -> None:
    assert place({"resourceType": kind, "id": "x"}).undetermined is not None


def test_a_non_patient_target_is_not_patient_data() -> None:
    device_data = {"resourceType": "Observation", "id": "o", "subject": {"reference": "Device/d"}}
    assert place(device_data).undetermined is None and place(device_data).named == ()
    typed = {
        "resourceType": "Task",
        "id": "t",
        "for": {"type": "Device", "identifier": {"value": "1"}},
    }
    assert place(typed).undetermined is None


@pytest.mark.parametrize(
    ("subject", "why"),
    [
        ({"reference": "https://other.example/fhir/Patient/9"}, "another server"),
        ({"reference": "https://other.example/fhir/Patient/9/_history/2"}, "another server"),
        ({"display": "Jane Smith"}, "display text only"),
        ({"reference": "#missing"}, "contained resource that is not there"),
        ({"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"}, "can place"),
        ({"type": "Patient", "identifier": {"value": "7"}}, "without system"),
    ],
)
def test_a_patient_that_cannot_be_told_fails_closed(subject: dict[str, Any], why: str) -> None:
    found = place({"resourceType": "Observation", "id": "o", "subject": subject})
    assert found.undetermined is not None and why in found.undetermined


def test_a_contained_patient_is_named_for_the_caller_to_resolve() -> None:
    contained = {"resourceType": "Patient", "id": "pat", "identifier": [{"value": "A9"}]}
    obs = {
        "resourceType": "Observation",
        "id": "o",
        "contained": [contained],
        "subject": {"reference": "#pat"},
    }
    (named,) = place(obs).named
    assert named.contained == contained and named.reference is None
    device = {**obs, "contained": [{"resourceType": "Device", "id": "pat"}]}
    assert place(device).named == () and place(device).undetermined is None


def test_patient_references_outside_the_definition_count_too() -> None:
    # R4 leaves Device.patient out of the compartment; a Device naming a patient is
    # still that patient's data here.
    device = {"resourceType": "Device", "id": "d", "patient": {"reference": "Patient/p9"}}
    assert [n.reference for n in place(device).named] == ["Patient/p9"]
    # An Observation about p1 whose focus is p2: both patients' data.
    obs = {
        "resourceType": "Observation",
        "id": "o",
        "subject": {"reference": "Patient/p1"},
        "focus": [{"reference": "Patient/p2"}],
    }
    assert [n.reference for n in place(obs).named] == ["Patient/p1", "Patient/p2"]
    organization = {"resourceType": "Organization", "id": "org", "name": "Lab"}
    assert place(organization).named == () and place(organization).undetermined is None


def test_several_patients_are_each_named_once() -> None:
    group = {
        "resourceType": "Group",
        "id": "g",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/p{i}"}} for i in (1, 2, 1)],
    }
    assert [n.reference for n in place(group).named] == ["Patient/p1", "Patient/p2"]


def test_a_patient_is_its_own_and_its_link_is_no_membership() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "link": [{"other": {"reference": "https://x.example/Patient/9"}, "type": "seealso"}],
    }
    placement = place(patient)
    assert [n.reference for n in placement.named] == ["Patient/p1"]
    assert placement.undetermined is None


@pytest.mark.parametrize(
    "reference",
    [
        "https://x.example/fhir/Patient?identifier=urn:oid:1.2|M1",  # conditional
        "https://x.example/fhir/patient/1",  # case
        "urn:example:patient/1",
    ],
)
def test_any_url_that_may_name_a_patient_fails_closed(reference: str) -> None:
    obs = {"resourceType": "Observation", "id": "o", "subject": {"reference": reference}}
    assert place(obs).undetermined is not None


def test_patient_only_elements_outside_the_compartment_and_every_contained_resource() -> None:
    # Device.patient is Reference(Patient) only: an identifier there is the patient's.
    device = {
        "resourceType": "Device",
        "id": "d",
        "patient": {"identifier": {"system": "s", "value": "7"}},
    }
    assert [n.identifier for n in place(device).named] == [("s", "7")]
    # What a contained resource names is its container's data too.
    medication = {
        "resourceType": "Medication",
        "id": "m",
        "contained": [
            {"resourceType": "Observation", "id": "x", "subject": {"reference": "Patient/p1"}}
        ],
    }
    assert [n.reference for n in place(medication).named] == ["Patient/p1"]
    unplaced = {**medication, "contained": [{"resourceType": "Observation", "id": "x"}]}
    assert "contained (Observation)" in (place(unplaced).undetermined or "")
    # A contained Patient nobody points at is still a patient in the resource.
    org = {
        "resourceType": "Organization",
        "id": "o",
        "contained": [
            {"resourceType": "Patient", "id": "p", "identifier": [{"system": "s", "value": "9"}]}
        ],
    }
    (named,) = place(org).named
    assert named.contained is not None and named.contained["id"] == "p"


def test_a_stored_bundle_is_the_data_of_the_patients_its_entries_name() -> None:
    bundle = {
        "resourceType": "Bundle",
        "id": "b",
        "type": "document",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "c",
                    "subject": {"reference": "Patient/p1"},
                }
            },
            {"resource": {"resourceType": "Organization", "id": "o"}},
        ],
    }
    assert [n.reference for n in place(bundle).named] == ["Patient/p1"]
    hidden = {
        **bundle,
        "entry": [
            {"resource": {"resourceType": "Condition", "id": "c", "subject": {"display": "J"}}}
        ],
    }
    assert "Bundle.entry[0]" in (place(hidden).undetermined or "")
