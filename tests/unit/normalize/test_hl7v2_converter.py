"""HL7 v2 messages (synthetic, written for these tests) to FHIR R4 Bundles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class

from shared.normalize import NormalizationError
from shared.normalize.context import ConversionContext
from shared.normalize.hl7v2.converter import convert_hl7v2

CTX = ConversionContext(
    partner="p1",
    zone=ZoneInfo("America/New_York"),
    source="raw/p1/2026/03/01/abc.hl7",
    received=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
)
ORU = (
    "MSH|^~\\&|LAB|ACME^2.16.840.1.113883.19.1^ISO|EHR|HOSP|20260301101500||ORU^R01^ORU_R01|"
    "CTRL-1|P|2.5.1\r"
    "PID|1||MRN1^^^&2.16.840.1.113883.19.5&ISO^MR||Doe^Jane||19700101|F\r"
    "PV1|1|O|CLINIC^1^A||||||||||||||||V100^^^&2.16.840.1.113883.19.6&ISO\r"
    "ORC|RE|P-1|F-1\r"
    "OBR|1|P-1|F-1|24331-1^Lipid panel^LN|||20260301080000|||||||||||||||20260301100000|||F\r"
    "NTE|1||Fasting sample\r"
    "OBX|1|NM|2093-3^Cholesterol^LN||195|mg/dL^mg/dL^UCUM|<200|N|||F|||20260301080000\r"
    "NTE|1||Within range\r"
    "OBX|2|SN|2571-8^Triglyceride^LN||<^150|mg/dL^^UCUM||||F\r"
    "OBX|3|SN|X1^Ratio^99LOC||^1^:^4||||||F\r"
    "OBX|4|SN|X2^Range^99LOC||^10^-^20|mmol/L^^UCUM||||F\r"
    "OBX|5|CWE|X3^Organism^99LOC||27268008^Salmonella^SCT||||||P\r"
    "OBX|6|TX|X4^Comment^99LOC||line one~line two||||||F\r"
    "OBX|7|DTM|X5^Collected^99LOC||202603010800||||||F\r"
    'OBX|8|NM|X6^Deleted^99LOC||""||||||D\r'
    "ZXT|1|custom^data\r"
    "ZZZ|2\r"
    "FT1|1\r"
)


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


@pytest.fixture(scope="module")
def oru() -> Any:
    return convert_hl7v2(ORU.encode(), CTX)


def test_bundle_is_a_valid_transaction_of_puts(oru: Any) -> None:
    get_fhir_model_class("Bundle").model_validate(oru.bundle)
    assert oru.bundle["type"] == "transaction"
    assert {e["request"]["method"] for e in oru.bundle["entry"]} == {"PUT"}
    assert (oru.message_type, oru.control_id) == ("ORU^R01^ORU_R01", "CTRL-1")


def test_observation_values_follow_obx2(oru: Any) -> None:
    obs = {o["code"]["coding"][0]["code"]: o for o in _resources(oru.bundle, "Observation")}
    chol = obs["2093-3"]
    assert chol["valueQuantity"] == {
        "value": 195,
        "unit": "mg/dL",
        "system": "http://unitsofmeasure.org",
        "code": "mg/dL",
    }
    assert chol["status"] == "final"
    assert chol["referenceRange"] == [{"text": "<200"}]
    assert chol["interpretation"][0]["coding"][0]["code"] == "N"
    assert chol["effectiveDateTime"] == "2026-03-01T08:00:00-05:00"  # the partner's zone
    assert chol["note"] == [{"text": "Within range"}]  # NTE attaches to the OBX before it
    assert obs["2571-8"]["valueQuantity"]["comparator"] == "<"
    assert obs["2571-8"]["valueQuantity"]["value"] == 150
    assert obs["X1"]["valueRatio"] == {"numerator": {"value": 1}, "denominator": {"value": 4}}
    assert obs["X2"]["valueRange"]["low"]["value"] == 10
    assert obs["X2"]["valueRange"]["high"]["value"] == 20
    assert obs["X3"]["valueCodeableConcept"]["coding"][0]["system"] == "http://snomed.info/sct"
    assert obs["X3"]["status"] == "preliminary"
    assert obs["X4"]["valueString"] == "line one\nline two"
    assert obs["X5"]["valueDateTime"] == "2026-03-01T08:00:00-05:00"
    assert "value" not in str(obs["X6"].keys()) and obs["X6"]["status"] == "entered-in-error"
    assert obs["X6"]["dataAbsentReason"]["coding"][0]["code"] == "unknown"


def test_report_groups_its_observations(oru: Any) -> None:
    (report,) = _resources(oru.bundle, "DiagnosticReport")
    ids = {f"Observation/{o['id']}" for o in _resources(oru.bundle, "Observation")}
    assert {r["reference"] for r in report["result"]} == ids
    assert report["status"] == "final"
    assert report["conclusion"] == "Fasting sample"  # NTE after OBR
    assert report["issued"] == "2026-03-01T10:00:00-05:00"


def test_provenance_keeps_source_and_z_segments(oru: Any) -> None:
    (prov,) = _resources(oru.bundle, "Provenance")
    values = {e["what"]["identifier"]["value"] for e in prov["entity"]}
    assert values == {"CTRL-1", "raw/p1/2026/03/01/abc.hl7"}
    assert [x["valueString"] for x in prov["extension"]] == ["ZXT|1|custom^data", "ZZZ|2"]
    assert prov["recorded"] == "2026-03-01T12:00:00.000Z"
    assert prov["occurredDateTime"] == "2026-03-01T10:15:00-05:00"


def test_unmapped_segments_are_reported(oru: Any) -> None:
    assert any(i.location == "FT1" and "not converted" in i.diagnostics for i in oru.issues)


def test_warnings_name_the_field_and_the_table_never_the_value() -> None:
    message = (
        "MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500||ORU^R01^ORU_R01|C-9|P|2.5.1\r"
        "PID|1||MRN1^^^&2.16.840.1.113883.19.5&ISO^MR||Doe^Jane||19700101|ZZCANARY-SEX\r"
        "PV1|1|ZZCANARY-CLASS\r"
        "OBR|1|P-1|F-1|24331-1^Lipid panel^LN\r"
        "OBX|1|ZZCANARY-TYPE|X1^Note^99LOC||kept||||||F\r"
    )
    issues = {i.location: i.diagnostics for i in convert_hl7v2(message.encode(), CTX).issues}
    assert issues["PID-8"] == "administrative sex is not in table 0001; left out"
    assert issues["PV1-2"] == "patient class is not in table 0004; class unknown"
    assert issues["OBX-2"] == "the value type is not one this service converts; kept as text"
    assert "ZZCANARY" not in repr(issues)


def test_a_message_without_its_pid_names_the_message_type_it_knows_never_the_rest() -> None:
    message = "MSH|^~\\&|A|B|C|D|20260301||ORU^ZZCANARY^ZZCANARY_X|1|P|2.5.1\rOBR|1\r"
    with pytest.raises(NormalizationError) as caught:
        convert_hl7v2(message.encode(), CTX)
    (issue,) = caught.value.issues
    assert (issue.location, issue.diagnostics) == (
        "PID",
        "ORU messages need a PID segment to say whose data it is",
    )


def test_ids_are_deterministic_and_every_one_is_the_senders_own() -> None:
    other = ConversionContext(partner="p2", zone=CTX.zone, received=CTX.received)
    a, b = convert_hl7v2(ORU, CTX).bundle, convert_hl7v2(ORU, other).bundle
    assert a == convert_hl7v2(ORU, CTX).bundle
    # Even the Patient whose MRN comes from a global OID authority: partner p2's copy is
    # p2's Patient (the same person is a link, never a shared resource).
    ids = lambda bundle: {e["resource"]["id"] for e in bundle["entry"]}  # noqa: E731
    assert ids(a).isdisjoint(ids(b))
    assert _resources(a, "Patient")[0]["identifier"] == _resources(b, "Patient")[0]["identifier"]


def test_a_resend_updates_rather_than_duplicates() -> None:
    resent = ORU.replace("CTRL-1", "CTRL-2").replace("|195|", "|196|")
    first, second = convert_hl7v2(ORU, CTX).bundle, convert_hl7v2(resent, CTX).bundle
    ids = lambda b: {(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]}  # noqa: E731
    assert {x for x in ids(first) if x[0] != "Provenance"} == {
        x for x in ids(second) if x[0] != "Provenance"
    }


ADT = (
    "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260301101500-0500||ADT^A40^ADT_A39|M1|P|2.5.1\r"
    "EVN|A40|20260301101500\r"
    "PID|1||NEW1^^^HOSP^MR||Roe^Richard||19800101|M\r"
    "MRG|OLD1^^^HOSP^MR\r"
)


def test_merge_links_both_patients() -> None:
    bundle = convert_hl7v2(ADT, CTX).bundle
    patients = {p["identifier"][0]["value"]: p for p in _resources(bundle, "Patient")}
    new, old = patients["NEW1"], patients["OLD1"]
    assert new["link"] == [{"other": {"reference": f"Patient/{old['id']}"}, "type": "replaces"}]
    assert old["link"] == [{"other": {"reference": f"Patient/{new['id']}"}, "type": "replaced-by"}]
    assert old["active"] is False


@pytest.mark.parametrize(
    ("message", "location"),
    [
        ("MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rOBR|1\r", "PID"),
        ("PID|1||1\r", "MSH"),
    ],
)
def test_rejections_are_operation_outcomes(message: str, location: str) -> None:
    with pytest.raises(NormalizationError) as caught:
        convert_hl7v2(message, CTX)
    outcome = caught.value.to_operation_outcome()
    get_fhir_model_class("OperationOutcome").model_validate(outcome)
    assert outcome["issue"][0]["location"] == [location]


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("mg/dL^^UCUM", {"system": "http://unitsofmeasure.org", "code": "mg/dL"}),
        ("beats/min^^ISO+", {"system": "http://unitsofmeasure.org", "code": "/min"}),
        ("mmHg", {"system": "http://unitsofmeasure.org", "code": "mm[Hg]"}),
        ("blips^^99UNITS", {"system": "urn:fhir-intake:partner:p1:cs:99UNITS", "code": "blips"}),
    ],
)
def test_units_become_ucum_where_certain(units: str, expected: dict[str, str]) -> None:
    message = (
        "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5.1\r"
        "PID|1||1^^^H^MR\r"
        f"OBX|1|NM|X^Y^99L||5|{units}|||||F\r"
    )
    obs = _resources(convert_hl7v2(message, CTX).bundle, "Observation")[0]
    quantity = obs["valueQuantity"]
    assert {"system": quantity["system"], "code": quantity["code"]} == expected


def test_a_latin1_batch_keeps_its_characters_and_fails_message_by_message() -> None:
    from shared.normalize.service import convert_payload

    one = (
        "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|{id}|P|2.5|||||DEU|8859/1\r"
        "PID|1||{mrn}^^^H^MR||Müller^Jürgen\r"
    )
    stream = one.format(id="1", mrn="M1") + "MSH|^~\\&|broken\r" + one.format(id="3", mrn="M3")
    result = convert_payload(stream.encode("latin-1"), CTX)
    families = sorted(p["name"][0]["family"] for p in _resources(result.bundle, "Patient"))
    assert families == ["Müller", "Müller"]
    assert [r.location for r in result.rejected] == ["message 2"]
    assert result.records == 3


def test_decimals_keep_their_digits_through_to_json() -> None:
    """FHIR: the precision of a decimal is significant; 5.10 must not become 5.1."""
    from shared.normalize import json_codec

    message = (
        "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5.1\rPID|1||1^^^H^MR\r"
        "OBX|1|NM|2345-7^Glucose^LN||5.10|mmol/L^^UCUM|||||F\r"
        "OBX|2|NM|718-7^Hemoglobin^LN||.50|g/dL^^UCUM|||||F\r"
    )
    text = json_codec.dumps(convert_hl7v2(message, CTX).bundle)
    assert '"value":5.10' in text
    assert '"value":0.50' in text
