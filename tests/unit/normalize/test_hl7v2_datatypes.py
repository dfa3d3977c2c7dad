"""HL7 v2 data types to FHIR: times with their precision and zone, codes with systems."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from shared.normalize.context import ConversionContext
from shared.normalize.hl7v2 import parse_message
from shared.normalize.hl7v2.datatypes import codeable_concept, dtm, identifier, quantity_value
from shared.normalize.hl7v2.terminology import code_system_uri

BERLIN = ZoneInfo("Europe/Berlin")
P1 = ConversionContext(partner="p1")
UTC = ZoneInfo("UTC")
CHICAGO = ZoneInfo("America/Chicago")
KOLKATA = ZoneInfo("Asia/Kolkata")


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        ("2026", BERLIN, "2026"),
        ("202603", BERLIN, "2026-03"),
        ("20260301", BERLIN, "2026-03-01"),  # a date stays a date: no invented time
        ("2026030110", BERLIN, "2026-03-01T10:00:00+01:00"),
        ("202603011030", BERLIN, "2026-03-01T10:30:00+01:00"),
        ("20260701103015", BERLIN, "2026-07-01T10:30:15+02:00"),  # summer time from the zone
        ("20260301103015.123", UTC, "2026-03-01T10:30:15.123Z"),
        ("20260301103015-0500", BERLIN, "2026-03-01T10:30:15-05:00"),  # a sent offset wins
        ("20260301103015+0000", BERLIN, "2026-03-01T10:30:15+00:00"),
        ("20260301103015+2400", BERLIN, None),  # DTM offset 24 h: raised ValueError
        ("20260301103015-9900", BERLIN, None),
        ("20260301103015+0160", BERLIN, None),
        ("20260301103015+1400", BERLIN, "2026-03-01T10:30:15+14:00"),
        # Before standard time a zone's offset is local mean time, with seconds, which
        # FHIR cannot write (-05:50:36 in Chicago): the same instant, in UTC.
        ("188001011200", CHICAGO, "1880-01-01T17:50:36Z"),
        ("190001011200", KOLKATA, "1900-01-01T06:38:50Z"),
        ("19540101120000", CHICAGO, "1954-01-01T12:00:00-06:00"),
        ("20261301", BERLIN, None),
        ("20260230", BERLIN, None),
        ("2026-03-01", BERLIN, None),
        ("", BERLIN, None),
    ],
)
def test_dtm(value: str, zone: ZoneInfo, expected: str | None) -> None:
    assert dtm(value, zone) == expected


@pytest.mark.parametrize(
    ("name", "uri"),
    [
        ("LN", "http://loinc.org"),
        ("SCT", "http://snomed.info/sct"),
        ("CVX", "http://hl7.org/fhir/sid/cvx"),
        ("I10", "http://hl7.org/fhir/sid/icd-10"),
        # Tables terminology.hl7.org publishes are its CodeSystems; the others (0296
        # user-defined, 0078 retired into v3 ObservationInterpretation) their OIDs.
        ("HL70203", "http://terminology.hl7.org/CodeSystem/v2-0203"),
        ("HL70296", "urn:oid:2.16.840.1.113883.12.296"),
        ("HL70078", "urn:oid:2.16.840.1.113883.12.78"),
        ("HL7_0001", "http://terminology.hl7.org/CodeSystem/v2-0001"),
        ("2.16.840.1.113883.6.1", "urn:oid:2.16.840.1.113883.6.1"),
        ("99LAB", "urn:fhir-intake:partner:p1:cs:99LAB"),
        (None, None),
    ],
)
def test_code_systems(name: str | None, uri: str | None) -> None:
    assert code_system_uri(name, "p1") == uri


def _seg(text: str):  # type: ignore[no-untyped-def]
    return parse_message("MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5.1\r" + text).segments[1]


def test_cwe_to_codeable_concept_with_alternate_coding_and_original_text() -> None:
    obx = _seg("OBX|1|CWE|X|1|27268008^Salmonella^SCT^SAL^Salm.^99LAB^^^Salmonella sp.")
    assert codeable_concept(obx, 5, ctx=P1) == {
        "coding": [
            {"system": "http://snomed.info/sct", "code": "27268008", "display": "Salmonella"},
            {"system": "urn:fhir-intake:partner:p1:cs:99LAB", "code": "SAL", "display": "Salm."},
        ],
        "text": "Salmonella sp.",
    }


def test_identifier_with_global_and_local_authorities() -> None:
    pid = _seg("PID|1||123^^^&2.16.840.1.113883.19.5&ISO^MR~456^^^HOSP^MR")
    assert identifier(pid, 3, 1, ctx=P1) == {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                    "code": "MR",
                    "display": "Medical record number",  # table 0203's own
                }
            ]
        },
        "system": "urn:oid:2.16.840.1.113883.19.5",
        "value": "123",
    }
    assert identifier(pid, 3, 2, ctx=P1)["system"] == "urn:fhir-intake:partner:p1:cs:HOSP"  # type: ignore[index]


def test_cx5_a_type_table_0203_does_not_define_is_the_types_text() -> None:
    # CX.5 was copied into v2-0203 whatever it held ('GOOD HEALTH HOSPITAL').
    pid = _seg("PID|1||123^^^HOSP^GOOD HEALTH HOSPITAL")
    assert identifier(pid, 3, 1, ctx=P1)["type"] == {"text": "GOOD HEALTH HOSPITAL"}  # type: ignore[index]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        # The table's display replaces the sender's; the sender's stays as the text.
        (
            "LD^Left Arm^HL70163",
            {
                "system": "http://terminology.hl7.org/CodeSystem/v2-0163",
                "code": "LD",
                "display": "Left Deltoid",
            },
        ),
        # A code a published table does not define is the partner's own.
        (
            "ZZ^Odd^HL70163",
            {"system": "urn:fhir-intake:partner:p1:cs:HL70163", "code": "ZZ", "display": "Odd"},
        ),
        # A user-defined table has no CodeSystem on terminology.hl7.org: its OID.
        (
            "ENG^English^HL70296",
            {"system": "urn:oid:2.16.840.1.113883.12.296", "code": "ENG", "display": "English"},
        ),
    ],
)
def test_cwe_codes_of_hl7_tables_are_only_what_the_tables_define(
    field: str, expected: dict[str, str]
) -> None:
    concept = codeable_concept(_seg(f"RXR|x|{field}"), 2, ctx=P1)
    assert concept is not None and concept["coding"] == [expected]
    assert concept["text"] == field.split("^")[1]


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", 12), ("-1.50", -1.5), (".5", 0.5), ("1e3", None), ("12a", None), ("", None)],
)
def test_numbers(text: str, value: float | None) -> None:
    assert quantity_value(text) == value


def test_a_partners_code_system_map_wins() -> None:
    ctx = ConversionContext(partner="p1", code_systems={"99LAB": "http://lab.example.org/codes"})
    obx = _seg("OBX|1|CWE|X|1|SAL^Salmonella^99LAB")
    assert (
        codeable_concept(obx, 5, ctx=ctx)["coding"][0]["system"] == "http://lab.example.org/codes"
    )  # type: ignore[index]
