"""FHIR JSON from partners: validation beyond the models, references, ids, and what a
bad record costs (synthetic resources written for these tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.normalize import NormalizationError
from shared.normalize.context import ConversionContext
from shared.normalize.fhir_json import convert_fhir_json
from shared.normalize.hl7v2.converter import convert_hl7v2

CTX = ConversionContext(partner="p1", received=datetime(2026, 3, 1, tzinfo=UTC))
PATIENT = {
    "resourceType": "Patient",
    "id": "pat-1",
    "gender": "female",
    "birthDate": "1970-01-01",
    "identifier": [{"system": "2.16.840.1.113883.19.5", "value": " MRN1 "}],
    "name": [{"family": "Doe", "given": ["Jane"]}],
}
OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "LN", "code": "8867-4"}]},
    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
    "valueQuantity": {
        "value": 60,
        "unit": "/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    },
}


def _bundle(kind: str, *entries: dict[str, Any]) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": kind, "entry": list(entries)}).encode()


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_transaction_is_normalized_and_references_resolved() -> None:
    data = _bundle(
        "transaction",
        {
            "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
            "resource": PATIENT,
            "request": {"method": "POST", "url": "Patient"},
        },
        {"resource": OBSERVATION, "request": {"method": "POST", "url": "Observation"}},
    )
    result = convert_fhir_json(data, CTX)
    get_fhir_model_class("Bundle").model_validate(result.bundle)
    (patient,) = _resources(result.bundle, "Patient")
    (obs,) = _resources(result.bundle, "Observation")
    assert patient["identifier"][0] == {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN1"}
    assert obs["code"]["coding"][0]["system"] == "http://loinc.org"  # alias made canonical
    assert obs["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert patient["meta"]["source"] == "urn:fhir-intake:partner:p1#Patient/pat-1"
    assert result.rejected == ()


def test_a_patient_keeps_the_partners_id_and_one_without_id_gets_the_hl7v2_paths() -> None:
    v2 = convert_hl7v2(
        "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.5.1\r"
        "PID|1||MRN1^^^&2.16.840.1.113883.19.5&ISO^MR||Doe^Jane||19700101|F\r",
        CTX,
    ).bundle
    hl7_id = _resources(v2, "Patient")[0]["id"]
    without_id = {k: v for k, v in PATIENT.items() if k != "id"}
    fhir = convert_fhir_json(json.dumps(without_id).encode(), CTX).bundle
    assert _resources(fhir, "Patient")[0]["id"] == hl7_id
    # With an id, the partner's id is the key (scoped), so a later payload that refers
    # to Patient/pat-1 finds the same record whatever identifiers the Patient carries.
    with_id = convert_fhir_json(json.dumps(PATIENT).encode(), CTX).bundle
    later = convert_fhir_json(
        json.dumps({**OBSERVATION, "subject": {"reference": "Patient/pat-1"}}).encode(), CTX
    ).bundle
    assert _resources(later, "Observation")[0]["subject"]["reference"] == (
        f"Patient/{_resources(with_id, 'Patient')[0]['id']}"
    )


def test_no_id_is_shared_across_partners_whatever_identifier_a_resource_carries() -> None:
    # The review's CRITICAL-2: a global (OID) MRN used to give every partner one Patient.
    other = ConversionContext(partner="p2", received=CTX.received)
    for patient in (PATIENT, {k: v for k, v in PATIENT.items() if k != "id"}):
        mine = convert_fhir_json(json.dumps(patient).encode(), CTX).bundle
        theirs = convert_fhir_json(json.dumps(patient).encode(), other).bundle
        assert {e["resource"]["id"] for e in mine["entry"]}.isdisjoint(
            e["resource"]["id"] for e in theirs["entry"]
        )


def test_references_inside_contained_resources_are_scoped_too() -> None:
    obs = {
        **OBSERVATION,
        "subject": {"reference": "#pat"},
        "contained": [
            {
                "resourceType": "Patient",
                "id": "pat",
                "link": [{"other": {"reference": "Patient/victim-uuid"}, "type": "seealso"}],
            }
        ],
    }
    (converted,) = _resources(
        convert_fhir_json(json.dumps(obs).encode(), CTX).bundle, "Observation"
    )
    linked = converted["contained"][0]["link"][0]["other"]["reference"]
    assert linked.startswith("Patient/") and linked != "Patient/victim-uuid"
    assert converted["subject"] == {"reference": "#pat"}


def test_partner_ids_are_namespaced_by_partner() -> None:
    plain = {**PATIENT, "identifier": []}
    mine = convert_fhir_json(json.dumps(plain).encode(), CTX).bundle
    theirs = convert_fhir_json(
        json.dumps(plain).encode(), ConversionContext(partner="p2", received=CTX.received)
    ).bundle
    assert _resources(mine, "Patient")[0]["id"] != _resources(theirs, "Patient")[0]["id"]


def test_required_binding_violation_is_rejected_with_its_path() -> None:
    with pytest.raises(NormalizationError) as caught:
        convert_fhir_json(json.dumps({**PATIENT, "gender": "Fzz"}).encode(), CTX)
    issue = caught.value.issues[0]
    assert (issue.location, issue.code.value) == ("$.gender", "code-invalid")
    assert "male, female, other, unknown" in issue.diagnostics.replace(
        "female, male", "male, female"
    )
    assert "Fzz" not in issue.diagnostics  # the rule, not the value


CANARY = "ZZCANARY Smith 555-12-3456"


@pytest.mark.parametrize(
    ("resource", "where", "words"),
    [
        ({**PATIENT, "gender": CANARY}, "$.gender", "Patient.gender takes one of"),
        ({**PATIENT, "birthDate": CANARY}, "$.birthDate", "does not match"),
        ({**OBSERVATION, "subject": {"reference": CANARY}}, "$.subject.reference", "expected"),
        (
            {
                **OBSERVATION,
                "subject": {"reference": "urn:uuid:5a9c1e2b-0000-4000-8000-555123456789"},
            },
            "$.subject.reference",
            "names no entry of this Bundle",
        ),
        ({"resourceType": CANARY}, "$.resourceType", "not a resource type"),
    ],
)
def test_issue_texts_name_the_path_and_the_rule_never_the_value(
    resource: dict[str, Any], where: str, words: str
) -> None:
    with pytest.raises(NormalizationError) as caught:
        convert_fhir_json(json.dumps(resource).encode(), CTX)
    (issue,) = caught.value.issues
    assert (issue.location, words in issue.diagnostics) == (where, True)
    shown = json.dumps(caught.value.to_operation_outcome())
    assert "ZZCANARY" not in shown and "555123456789" not in shown


def test_a_model_message_that_quotes_its_input_is_replaced_by_the_rules_name() -> None:
    from pydantic import ValidationError
    from pydantic_core import InitErrorDetails, PydanticCustomError

    from shared.normalize.fhir_json import _validation_issues

    quoting: InitErrorDetails = {  # what a library validator may write one day
        "type": PydanticCustomError("fhir-example", "got {value}, not a date", {"value": CANARY}),
        "loc": ("birthDate",),
        "input": CANARY,
    }
    plain: InitErrorDetails = {
        "type": PydanticCustomError("fhir-example", "not a date", {}),
        "loc": ("deceasedDateTime",),
        "input": CANARY,
    }
    error = ValidationError.from_exception_data("Patient", [quoting, plain])
    issues = _validation_issues(error, "$")
    assert [(i.location, i.diagnostics) for i in issues] == [
        ("$.birthDate", "the value is not valid here (fhir-example)"),
        ("$.deceasedDateTime", "not a date"),
    ]


def test_a_bad_entry_fails_a_whole_transaction() -> None:
    bad = {**OBSERVATION, "status": "done"}
    data = _bundle(
        "transaction",
        {"fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111", "resource": PATIENT},
        {"resource": bad},
    )
    with pytest.raises(NormalizationError) as caught:
        convert_fhir_json(data, CTX)
    locations = [i.location for i in caught.value.issues]
    assert locations[:2] == ["$", "$.entry[1].resource.status"]


def test_a_bad_entry_costs_a_batch_only_that_entry() -> None:
    data = _bundle(
        "batch", {"resource": PATIENT}, {"resource": {**PATIENT, "birthDate": "1970-13-45"}}
    )
    result = convert_fhir_json(data, CTX)
    assert len(_resources(result.bundle, "Patient")) == 1
    (rejection,) = result.rejected
    assert rejection.location == "$.entry[1].resource"
    assert rejection.issues[0].location == "$.entry[1].resource.birthDate"


def test_ndjson_lines_fail_one_by_one() -> None:
    lines = [
        json.dumps(PATIENT),
        "{not json",
        json.dumps({**PATIENT, "id": "pat-2", "identifier": []}),
    ]
    result = convert_fhir_json("\n".join(lines).encode(), CTX)
    assert len(_resources(result.bundle, "Patient")) == 2
    assert [r.location for r in result.rejected] == ["line 2"]
    assert result.records == 3


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        ("urn:uuid:22222222-2222-4222-8222-222222222222", "names no entry"),
        ("Patient", "is not a reference"),
    ],
)
def test_unresolvable_references_are_reported(reference: str, words: str) -> None:
    obs = {**OBSERVATION, "subject": {"reference": reference}}
    with pytest.raises(NormalizationError) as caught:
        convert_fhir_json(json.dumps(obs).encode(), CTX)
    assert words in caught.value.issues[0].diagnostics
    assert caught.value.issues[0].location == "$.subject.reference"


def test_relative_references_outside_the_payload_point_at_the_partners_namespace() -> None:
    obs = {**OBSERVATION, "subject": {"reference": "Patient/pat-1"}}
    ref = _resources(convert_fhir_json(json.dumps(obs).encode(), CTX).bundle, "Observation")[0][
        "subject"
    ]
    alone = _resources(
        convert_fhir_json(json.dumps({**PATIENT, "identifier": []}).encode(), CTX).bundle, "Patient"
    )[0]
    assert ref == {"reference": f"Patient/{alone['id']}"}


@pytest.mark.parametrize(
    "payload",
    [b"", b"   ", b"[1, 2", b"\xff\xfe", b'{"resourceType": "Nope"}', b'{"a": 1}', b"[" * 100_000],
)
def test_unusable_payloads_are_rejected_not_crashed(payload: bytes) -> None:
    with pytest.raises(NormalizationError) as caught:
        convert_fhir_json(payload, CTX)
    assert caught.value.issues


@settings(max_examples=200)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "resourceType",
                        "id",
                        "status",
                        "entry",
                        "resource",
                        "reference",
                        "type",
                        "code",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_ends_in_a_bundle_or_an_operation_outcome(value: Any) -> None:
    try:
        result = convert_fhir_json(json.dumps(value).encode(), CTX)
    except NormalizationError as exc:
        assert exc.to_operation_outcome()["issue"]
    else:
        assert result.bundle["type"] == "transaction"


def test_partner_decimals_keep_their_digits() -> None:
    from shared.normalize import json_codec

    obs = {
        **OBSERVATION,
        "subject": {"reference": "Patient/p"},
        "valueQuantity": {"value": 5.10, "unit": "mmol/L"},
    }
    text = json.dumps(obs).replace('"value": 5.1', '"value": 5.10')
    out = json_codec.dumps(convert_fhir_json(text.encode(), CTX).bundle)
    assert '"value":5.10' in out


def test_a_deeply_nested_extension_is_rejected_not_a_crash() -> None:
    # Found reviewing the trust model: cleaning ran outside the recursion guard.
    ext: dict[str, Any] = {"url": "x", "valueString": "y"}
    for _ in range(300):
        ext = {"url": "x", "extension": [ext]}
    deep = {"resourceType": "Patient", "id": "p", "extension": [ext]}
    with pytest.raises(NormalizationError) as caught:
        convert_fhir_json(json.dumps(deep).encode(), CTX)
    assert caught.value.issues[0].diagnostics == "resource nested too deeply"


def test_an_unknown_contained_or_nested_resource_type_is_refused_not_raised() -> None:
    # fhir.resources raised KeyError('R4.BogusType'): the line went to the poison queue.
    contained = {**OBSERVATION, "contained": [{"resourceType": "Bogus", "id": "x"}]}
    with pytest.raises(NormalizationError) as caught:
        convert_fhir_json(json.dumps(contained).encode(), CTX)
    assert caught.value.issues[0].location == "$.contained[0].resourceType"
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "p", "resource": {"resourceType": "Bogus"}}],
    }
    with pytest.raises(NormalizationError) as nested:
        convert_fhir_json(json.dumps(parameters).encode(), CTX)
    assert "nested resource" in nested.value.issues[0].diagnostics
