"""C-CDA documents into our Bundle: the hardened parser, ids, the per-section report,
strict mode, unstructured documents, and what never leaves (logs, document text)."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.normalize.ccda import MAX_CCDA_BYTES, convert_ccda, parse_document
from shared.normalize.ccda.identity import fix_identifiers
from shared.normalize.ccda.xml_safety import MAX_DEPTH, MAX_ELEMENTS
from shared.normalize.context import ConversionContext
from shared.normalize.errors import IssueCode, NormalizationError
from shared.normalize.models import PayloadFormat
from shared.normalize.service import convert_payload, detect_format
from tests.support.ccda_documents import (
    MRN_OID,
    PROBLEMS,
    RESULTS,
    SMOKING_WITHOUT_ID,
    document,
    unstructured,
)

RECEIVED = datetime(2024, 1, 4, 9, 0, tzinfo=UTC)


def _ctx(partner: str = "p1", **kw: Any) -> ConversionContext:
    return ConversionContext(partner=partner, received=RECEIVED, **kw)


def _of(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _refused(data: bytes) -> NormalizationError:
    with pytest.raises(NormalizationError) as caught:
        parse_document(data)
    return caught.value


# --- the parser cannot be turned against us ----------------------------------------


def test_an_external_entity_is_refused_before_parsing(tmp_path: Any) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("CANARY-SECRET")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&e;</title></ClinicalDocument>'
    ).encode()
    error = _refused(xxe)
    assert error.issues[0].code is IssueCode.NOT_SUPPORTED
    assert "DTD or entity declaration" in error.issues[0].diagnostics
    with pytest.raises(NormalizationError) as caught:
        convert_payload(xxe, _ctx(), content_type="application/cda+xml")
    assert "CANARY-SECRET" not in str(caught.value.to_operation_outcome())


def test_billion_laughs_is_refused_in_microseconds_not_expanded() -> None:
    laughs = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            b'<!ENTITY lol%d "&lol%d;&lol%d;&lol%d;">' % (n, n - 1, n - 1, n - 1)
            for n in range(1, 10)
        ).replace(b"&lol0;", b"&lol;")
        + b']><ClinicalDocument xmlns="urn:hl7-org:v3">&lol9;</ClinicalDocument>'
    )
    assert "DTD" in _refused(laughs).issues[0].diagnostics


def test_a_doctype_past_the_prolog_scan_is_still_refused_by_the_parser() -> None:
    padding = b"<!--" + b" " * (70 * 1024) + b"-->"
    data = (
        b'<?xml version="1.0"?>'
        + padding
        + b'<!DOCTYPE ClinicalDocument><ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    )
    assert "DTD" in _refused(data).issues[0].diagnostics


def test_depth_elements_and_size_are_bounded() -> None:
    deep = (
        b'<ClinicalDocument xmlns="urn:hl7-org:v3">'
        + b"<a>" * (MAX_DEPTH + 5)
        + b"</a>" * (MAX_DEPTH + 5)
        + b"</ClinicalDocument>"
    )
    assert f"over {MAX_DEPTH} deep" in _refused(deep).issues[0].diagnostics
    wide = (
        b'<ClinicalDocument xmlns="urn:hl7-org:v3">'
        + b"<a/>" * (MAX_ELEMENTS + 1)
        + b"</ClinicalDocument>"
    )
    assert f"over {MAX_ELEMENTS} elements" in _refused(wide).issues[0].diagnostics
    big = b" " * (MAX_CCDA_BYTES + 1)
    assert _refused(big).issues[0].code is IssueCode.TOO_COSTLY


def test_malformed_xml_names_the_line_and_rule_never_the_text() -> None:
    error = _refused(
        b'<ClinicalDocument xmlns="urn:hl7-org:v3">\n<title>Jane Canary</titel></ClinicalDocument>'
    )
    assert (error.issues[0].location or "").startswith("line 2, column ")
    assert "not well-formed XML" in error.issues[0].diagnostics
    assert "Canary" not in str(error.to_operation_outcome())


def test_only_a_cda_clinical_document_is_accepted() -> None:
    assert (
        "not a CDA ClinicalDocument"
        in _refused(b'<ClinicalDocument xmlns="urn:other"/>').issues[0].diagnostics
    )
    with pytest.raises(NormalizationError, match="only as a C-CDA document"):
        detect_format(b"<note>hi</note>", "text/xml")
    assert detect_format(document().encode(), "application/xml") is PayloadFormat.CCDA
    assert detect_format(document().encode()) is PayloadFormat.CCDA


def test_the_declared_encoding_is_honoured() -> None:
    latin = document(family="Müller", encoding="ISO-8859-1").encode("iso-8859-1")
    result = convert_ccda(latin, _ctx())
    (patient,) = _of(result.bundle, "Patient")
    assert patient["name"][0]["family"] == "Müller"


# --- ids, links and identifiers -----------------------------------------------------


def test_a_resend_gives_the_same_ids_and_another_partner_other_ones() -> None:
    data = document().encode()
    first, again = convert_ccda(data, _ctx()), convert_ccda(data, _ctx())
    ids = [e["request"]["url"] for e in first.bundle["entry"]]
    assert ids == [e["request"]["url"] for e in again.bundle["entry"]]
    other = {e["request"]["url"] for e in convert_ccda(data, _ctx("p2")).bundle["entry"]}
    assert not set(ids) & other


def test_the_patient_is_the_one_an_adt_with_the_same_oid_and_mrn_makes() -> None:
    adt = (
        "MSH|^~\\&|EHR|CLINIC|INTAKE|HUB|20240101120000||ADT^A01^ADT_A01|MSG1|P|2.5.1\r"
        "EVN|A01|20240101120000\r"
        f"PID|1||MRN-1001^^^&{MRN_OID}&ISO^MR||Testpatient^Alex||19800101|F\r"
        "PV1|1|I\r"
    ).encode()
    (from_adt,) = _of(convert_payload(adt, _ctx()).bundle, "Patient")
    (from_ccd,) = _of(convert_ccda(document().encode(), _ctx()).bundle, "Patient")
    assert from_ccd["id"] == from_adt["id"]
    assert {"system": f"urn:oid:{MRN_OID}", "value": "MRN-1001"}.items() <= from_ccd["identifier"][
        0
    ].items()


def test_every_reference_points_at_a_resource_of_the_bundle() -> None:
    bundle = convert_ccda(document().encode(), _ctx()).bundle
    urls = {e["request"]["url"] for e in bundle["entry"]}
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("reference"), str):
                found.append(value["reference"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(bundle)
    assert found and set(found) <= urls
    (observation,) = _of(bundle, "Observation")
    (patient,) = _of(bundle, "Patient")
    assert observation["subject"]["reference"] == f"Patient/{patient['id']}"
    assert observation["valueQuantity"]["value"] == 95


def test_identifiers_follow_the_ig_ii_mapping() -> None:
    uuid = "6f1bd58b-c58f-40b7-b314-caf1294ed98b"
    resource = {
        "identifier": [
            {"system": f"urn:oid:{uuid}"},  # a UUID root alone, written as an OID
            {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "urn:oid:2.16.840.1.113883.19.5"},
            {"system": f"urn:oid:{uuid}", "value": "42"},
            {"system": "urn:oid:1.2.3", "value": "7"},
        ]
    }
    fix_identifiers(resource)
    assert resource["identifier"] == [
        {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid}"},
        {"system": "urn:ietf:rfc:3986", "value": "urn:oid:2.16.840.1.113883.19.5"},
        {"system": f"urn:uuid:{uuid}", "value": "42"},
        {"system": "urn:oid:1.2.3", "value": "7"},
    ]


def test_times_the_library_would_invent_are_ours() -> None:
    result = convert_ccda(document().encode(), _ctx(zone=ZoneInfo("America/New_York")))
    for provenance in _of(result.bundle, "Provenance"):
        recorded = provenance["recorded"]
        assert recorded[-6:] in {"-05:00", "-04:00"} or recorded.endswith("Z"), recorded
    (composition,) = _of(result.bundle, "Composition")
    assert composition["date"].startswith("2024-01-03T12:00:00")


# --- the report, isolation and strict mode -------------------------------------------


def test_a_bad_entry_is_left_out_and_reported_and_the_rest_converts() -> None:
    result = convert_ccda(document(PROBLEMS + SMOKING_WITHOUT_ID + RESULTS).encode(), _ctx())
    kinds = result.summary()["by_type"]
    assert kinds["Condition"] == 1 and kinds["Observation"] == 1 and kinds["DiagnosticReport"] == 1
    social = result.sections[1]
    assert social["code"] == "29762-2" and social["converted"] == 0
    assert social["skipped"] == [
        {
            "entry": 1,
            "template": "2.16.840.1.113883.10.20.22.4.78",
            "rule": "Smoking Status Observation (2.16.840.1.113883.10.20.22.4.78): "
            "SHALL contain at least one [1..*] id",
        }
    ]
    (warning,) = [i for i in result.issues if i.severity == "warning"]
    assert warning.location == "section[2].entry[1]"
    lines = [i.diagnostics for i in result.issues if i.severity == "information"]
    assert (
        "section 2 (LOINC 29762-2, template 2.16.840.1.113883.10.20.22.2.17): "
        "0 of 1 entries converted"
    ) in lines
    assert (
        "section 3 (LOINC 30954-2, template 2.16.840.1.113883.10.20.22.2.3.1): "
        "1 of 1 entries converted"
    ) in lines


def test_strict_mode_refuses_the_whole_document() -> None:
    with pytest.raises(NormalizationError) as caught:
        convert_ccda(document(PROBLEMS + SMOKING_WITHOUT_ID).encode(), _ctx(), strict=True)
    assert caught.value.issues[0].diagnostics.startswith("strict mode")
    assert caught.value.issues[1].location == "section[2].entry[1]"
    assert convert_ccda(document().encode(), _ctx(), strict=True).resource_count == 8


def test_a_header_that_breaks_a_shall_refuses_the_document() -> None:
    headless = document().replace("<author>", "<!--").replace("</author>", "-->")
    with pytest.raises(
        NormalizationError, match=r"US Realm Header .*SHALL contain at least one \[1\.\.\*\] author"
    ):
        convert_ccda(headless.encode(), _ctx())


def test_an_unstructured_document_keeps_its_content() -> None:
    result = convert_ccda(unstructured().encode(), _ctx())
    (reference,) = _of(result.bundle, "DocumentReference")
    assert not _of(result.bundle, "Composition")
    attachment = reference["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert base64.b64decode(attachment["data"]) == b"%PDF-1.4\n"
    assert reference["subject"]["reference"].startswith("Patient/")
    get_fhir_model_class("DocumentReference").model_validate(reference)
    with pytest.raises(NormalizationError, match="not base64"):
        convert_ccda(unstructured(content="%%%not base64").encode(), _ctx())


# --- nothing of the document leaves in logs or texts ---------------------------------


def test_the_library_logs_nothing(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "Canaryfamilyname"
    # Reused ids make the library warn (with the id) in its converters.
    convert_ccda(
        document(
            PROBLEMS + PROBLEMS + SMOKING_WITHOUT_ID, family=canary, mrn="CANARY-MRN"
        ).encode(),
        _ctx(),
    )
    out = capsys.readouterr()
    assert "ccda_to_fhir" not in caplog.text and not out.out and not out.err
    assert canary not in caplog.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=4000),
    noise=st.binary(max_size=40),
    where=st.integers(min_value=0, max_value=4000),
)
def test_malformed_documents_fail_with_an_issue_never_a_crash(
    cut: int, noise: bytes, where: int
) -> None:
    base = document(PROBLEMS + SMOKING_WITHOUT_ID + RESULTS).encode()
    data = base[:where] + noise + base[where:][: max(0, len(base) - cut)]
    try:
        result = convert_ccda(data, _ctx())
    except NormalizationError as exc:
        assert exc.issues and all(i.diagnostics for i in exc.issues)
        assert "Testpatient" not in str(exc.to_operation_outcome())
    else:
        assert result.resource_count >= 1


def test_a_practitioner_by_npi_is_the_one_hl7_v2_makes() -> None:
    adt = (
        "MSH|^~\\&|EHR|CLINIC|INTAKE|HUB|20240101120000||ADT^A01^ADT_A01|M2|P|2.5.1\r"
        "EVN|A01|20240101120000\r"
        f"PID|1||MRN-1001^^^&{MRN_OID}&ISO^MR||Testpatient^Alex\r"
        "PV1|1|I||||||1234567893^Doctor^Sam^^^^^^NPI\r"
    ).encode()
    from_v2 = {p["id"] for p in _of(convert_payload(adt, _ctx()).bundle, "Practitioner")}
    (author,) = _of(convert_ccda(document().encode(), _ctx()).bundle, "Practitioner")
    assert author["identifier"][0] == {
        "system": "http://hl7.org/fhir/sid/us-npi",
        "value": "1234567893",
    }
    assert author["id"] in from_v2


# --- found by the hostile review -----------------------------------------------------


def test_an_external_parameter_entity_in_utf16_opens_nothing_and_is_refused() -> None:
    declared = '<!DOCTYPE ClinicalDocument [<!ENTITY % p SYSTEM "file:///dev/zero"> %p;]>'
    body = document().split("?>", 1)[1]
    data = ('<?xml version="1.0" encoding="UTF-16"?>' + declared + body).encode("utf-16")
    assert "DTD" in _refused(data).issues[0].diagnostics  # before: read /dev/zero for ever


def test_attributes_are_bounded() -> None:
    many = " ".join(f'a{i}="1"' for i in range(100))
    data = document().replace("<ClinicalDocument ", f"<ClinicalDocument {many} ").encode()
    assert "attributes" in _refused(data).issues[0].diagnostics


def test_two_patients_documents_reusing_an_entry_id_never_share_a_resource() -> None:
    one = convert_ccda(document(mrn="MRN-A").encode(), _ctx()).bundle
    two = convert_ccda(document(mrn="MRN-B").encode(), _ctx()).bundle
    clinical = {"Condition", "Observation", "DiagnosticReport", "Composition"}
    ids = [
        {e["request"]["url"] for e in b["entry"] if e["resource"]["resourceType"] in clinical}
        for b in (one, two)
    ]
    assert ids[0] and not ids[0] & ids[1]


def test_text_where_an_oid_or_code_belongs_never_reaches_the_report() -> None:
    canary = "JOHN-SMITH-MRN-1001"
    bad = PROBLEMS.replace('root="2.16.840.1.113883.10.20.22.2.5.1"', f'root="{canary}"')
    bad = bad.replace('code="11450-4"', f'code="{canary}"')
    bad_smoking = SMOKING_WITHOUT_ID.replace("2.16.840.1.113883.10.20.22.4.78", canary)
    result = convert_ccda(document(bad + bad_smoking).encode(), _ctx())
    shown = str([i.to_fhir() for i in result.issues]) + str(result.summary()) + result.message_type
    assert canary not in shown
    assert result.sections[0]["template"] == "other" and result.sections[0]["code"] == "other"


def test_an_unstructured_reference_outside_the_web_is_left_out() -> None:
    data = document(
        body='<component><nonXMLBody><text mediaType="text plain">'
        '<reference value="file:///etc/passwd"/></text></nonXMLBody></component>'
    ).encode()
    result = convert_ccda(data, _ctx())
    (reference,) = _of(result.bundle, "DocumentReference")
    assert reference["content"][0]["attachment"] == {"contentType": "application/octet-stream"}
    assert len([i for i in result.issues if i.severity == "warning"]) == 2
