"""HL7 v2 fields that conversion lost, rewrote or invented, as CDC ReportStream's mapping
inventory and the v2-to-FHIR IG show them (issue 19). Messages are synthetic; each test
names its field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from shared.normalize.context import ConversionContext
from shared.normalize.hl7v2.converter import convert_hl7v2

CTX = ConversionContext(partner="p1", received=datetime(2026, 3, 1, tzinfo=UTC))
THO = "http://terminology.hl7.org/CodeSystem/"


def _convert(kind: str, *segments: str) -> dict[str, Any]:
    message = f"MSH|^~\\&|S|F|R|RF|20260301101500+0000||{kind}|C1|P|2.5.1\r" + "\r".join(segments)
    bundle = convert_hl7v2(message + "\r", CTX).bundle
    get_fhir_model_class("Bundle").model_validate(bundle)
    return bundle


def _one(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]
    return found


def _field(segment: str, number: int, value: str) -> str:
    """A segment with ``value`` at field ``number`` (the rest empty)."""
    return "|".join([segment, *[""] * (number - 1), value])


PID = "PID|1||M1^^^H^MR||Doe^Jane||19700101|F"


def test_orc2_obr3_order_numbers_keep_ei1_as_sent_and_the_namespace_as_the_system() -> None:
    # '123456^Test' became 'Test:123456', so nobody found the order number.
    bundle = _convert(
        "ORU^R01", PID, "ORC|RE|123456^Test|F-9^LAB^2.16.840.1.113883.19.9^ISO", "OBR|1|||X^Y^L"
    )
    identifiers = {
        i["type"]["coding"][0]["code"]: (i["system"], i["value"])
        for i in _one(bundle, "DiagnosticReport")["identifier"]
    }
    assert identifiers == {
        "PLAC": ("urn:fhir-intake:partner:p1:cs:Test", "123456"),
        "FILL": ("urn:oid:2.16.840.1.113883.19.9", "F-9"),
    }


def test_obr25_y_and_z_report_no_result_so_the_status_is_unknown_not_final() -> None:
    for status in ("Y", "Z"):
        bundle = _convert("ORU^R01", PID, _field("OBR|1|P1||X^Y^L", 22, status))
        assert _one(bundle, "DiagnosticReport")["status"] == "unknown"


def test_xpn7_u_t_and_p_have_no_fhir_use_and_xpn6_and_xpn14_are_suffixes() -> None:
    names = "Doe^Ann^^^^^U~Roe^Bo^^^^^T~Poe^Cy^^^^^P~Moe^Di^^Jr^^MD^L^^^^^^^FACP"  # PID-5
    bundle = _convert("ADT^A01", f"PID|1||M1^^^H^MR||{names}")
    found = {n["family"]: n for n in _one(bundle, "Patient")["name"]}
    assert "use" not in found["Doe"] and "use" not in found["Roe"] and "use" not in found["Poe"]
    assert found["Moe"]["use"] == "official"
    assert found["Moe"]["suffix"] == ["Jr", "MD", "FACP"]


def test_xcn10_is_the_name_type_and_an_id_without_authority_merges_only_with_its_name() -> None:
    bundle = _convert(
        "ADT^A01",
        PID,
        "PV1|1|I|||||100^Smith^Ann^^^^^^^L|100^Jones^Bob^^^^^^^^^^^",  # PV1-7 and PV1-8
    )
    practitioners = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Practitioner"
    ]
    assert len(practitioners) == 2  # the same number, two people: the first name won
    smith = next(p for p in practitioners if p["name"][0]["family"] == "Smith")
    assert smith["name"][0]["use"] == "official"  # from XCN.10, not XCN.8


def test_pv1_2_empty_is_an_unknown_class_never_ambulatory() -> None:
    encounter = _one(_convert("ADT^A01", PID, "PV1|1||W^1"), "Encounter")
    assert encounter["class"] == {
        "system": THO + "v3-NullFlavor",
        "code": "UNK",
        "display": "unknown",
    }


def test_al1_sends_no_verification_so_none_is_claimed() -> None:
    allergy = _one(
        _convert("ADT^A01", PID, "AL1|1|DA|70618^Penicillin^RXNORM"), "AllergyIntolerance"
    )
    assert "verificationStatus" not in allergy


def test_in1_without_insurer_never_makes_the_patient_the_payor() -> None:
    coverage = _one(_convert("ADT^A01", PID, "IN1|1|PLAN-1"), "Coverage")
    (payor,) = coverage["payor"]
    assert "reference" not in payor
    assert payor["extension"][0]["valueCode"] == "unknown"


def test_in1_3_company_id_is_the_insurers_identifier() -> None:
    bundle = _convert("ADT^A01", PID, "IN1|1|PLAN-1|INS-77^^^PAYERS|Acme Health")
    insurer = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Organization"
    )
    assert insurer["name"] == "Acme Health"
    assert insurer["identifier"][0]["value"] == "INS-77"


def test_pid29_a_date_of_death_is_kept_without_pid30_and_a_date_alone_stays_a_date() -> None:
    patient = _one(_convert("ADT^A01", _field(PID, 29 - 8, "20260215")), "Patient")
    assert patient["deceasedDateTime"] == "2026-02-15"


def test_pid7_the_time_of_birth_is_kept_in_the_birth_time_extension() -> None:
    patient = _one(_convert("ADT^A01", "PID|1||M1^^^H^MR||Doe^J||197001011230+0100|F"), "Patient")
    assert patient["birthDate"] == "1970-01-01"
    (extension,) = patient["_birthDate"]["extension"]
    assert extension == {
        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
        "valueDateTime": "1970-01-01T12:30:00+01:00",
    }


def test_pid7_year_0000_is_no_date() -> None:
    patient = _one(_convert("ADT^A01", "PID|1||M1^^^H^MR||Doe^J||0000|F"), "Patient")
    assert "birthDate" not in patient


def test_pid14_a_business_number_without_use_is_work() -> None:
    pid = "|".join(["PID", "1", "", "M1^^^H^MR", "", "Doe^J", *[""] * 8, "^^PH^^^555^1234567"])
    patient = _one(_convert("ADT^A01", pid), "Patient")  # PID-14
    assert patient["telecom"] == [{"system": "phone", "value": "555 1234567", "use": "work"}]


def test_pid3_well_known_assigning_authorities_are_their_fhir_systems() -> None:
    bundle = _convert("ADT^A01", "PID|1||123456789^^^USSSA^SS~M1^^^H^MR")
    systems = [i.get("system") for i in _one(bundle, "Patient")["identifier"]]
    assert "http://hl7.org/fhir/sid/us-ssn" in systems


def test_rxa9_a_historical_dose_is_not_first_hand_and_rxa16_expiry_is_kept() -> None:
    fields = [
        "0",
        "1",
        "20260201",
        "",
        "08^HepB^CVX",
        "0.5",
        "mL^^UCUM",
        "",
        "01^Historical^NIP001",
    ]
    rxa = "|".join(["RXA", *fields, "", "", "", "", "", "LOT1", "20270101"])  # RXA-9, 15, 16
    immunization = _one(_convert("VXU^V04", PID, rxa), "Immunization")
    assert immunization["primarySource"] is False
    assert immunization["reportOrigin"]["coding"][0]["code"] == "01"
    assert immunization["expirationDate"] == "2027-01-01"


def test_obx6_units_without_a_coding_system_are_ucum_only_where_certain() -> None:
    bundle = _convert(
        "ORU^R01", PID, "OBX|1|NM|X^A^L||5|mIU/ml|||||F", "OBX|2|NM|Y^B^L||5|mg/dl|||||F"
    )
    quantities = {
        o["code"]["coding"][0]["code"]: o["valueQuantity"]
        for o in (e["resource"] for e in bundle["entry"])
        if o["resourceType"] == "Observation"
    }
    assert quantities["X"] == {"value": 5, "unit": "mIU/ml"}  # not claimed as UCUM
    assert quantities["Y"]["system"] == "http://unitsofmeasure.org"
    assert quantities["Y"]["code"] == "mg/dL"


def test_every_field_with_a_value_no_conversion_reads_is_reported_by_position() -> None:
    pid = "|".join(["PID", "1", "", "M1^^^H^MR", "", "Doe^J", *[""] * 6, "C-77", *[""] * 13, "US"])
    message = (
        "MSH|^~\\&|S|F|R|RF|20260301101500+0000||ORU^R01|C1|P|2.5.1\r"
        + pid  # PID-12 county, PID-26 citizenship
        + "\rOBX|1|NM|X^A^L||5||||||||||||||202603011000"  # OBX-19
        + "\rOBX|2|NM|Y^B^L||6||||||||||||||202603011100\r"
        + "ZXT|1|kept verbatim\r"
    )
    issues = {i.location: i for i in convert_hl7v2(message, CTX).issues}
    not_carried = {k: i.diagnostics for k, i in issues.items() if "does not carry" in i.diagnostics}
    assert not_carried == {
        "PID": "values this conversion does not carry: PID-12, PID-26",
        "OBX": "values this conversion does not carry: OBX-19 (in 2)",  # time of analysis
    }
    assert "C-77" not in str(issues) and "2026" not in str(issues)  # positions, not values


def test_obr8_the_end_of_a_collection_makes_the_report_effective_a_period() -> None:
    obr = "OBR|1|P1||X^Y^L|||20260301080000|20260301090000"  # OBR-7, OBR-8
    report = _one(_convert("ORU^R01", PID, obr), "DiagnosticReport")
    assert report["effectivePeriod"] == {
        "start": "2026-03-01T08:00:00Z",
        "end": "2026-03-01T09:00:00Z",
    }


def test_obr16_the_ordering_provider_is_kept_when_there_is_no_orc() -> None:
    obr = _field("OBR|1|P1||X^Y^L", 16 - 4, "55^Who^Ann^^^^^^AUTH")
    bundle = _convert("ORU^R01", PID, obr)
    order = _one(bundle, "ServiceRequest")
    assert order["requester"]["reference"].startswith("Practitioner/")
    assert _one(bundle, "DiagnosticReport")["basedOn"] == [
        {"reference": f"ServiceRequest/{order['id']}"}
    ]


def test_obx5_dr_and_nr_ranges_keep_both_ends() -> None:
    bundle = _convert(
        "ORU^R01",
        PID,
        "OBX|1|DR|X^A^L||20260101^20260131|||||F",
        "OBX|2|NR|Y^B^L||3.5^7.25|mmol/L^^UCUM||||F",
    )
    values = {
        o["code"]["coding"][0]["code"]: o
        for o in (e["resource"] for e in bundle["entry"])
        if o["resourceType"] == "Observation"
    }
    assert values["X"]["valuePeriod"] == {"start": "2026-01-01", "end": "2026-01-31"}
    assert values["Y"]["valueRange"]["low"]["value"] == 3.5
    assert str(values["Y"]["valueRange"]["high"]["value"]) == "7.25"


def test_obx5_ed_gets_a_real_mime_type_and_invalid_base64_is_left_out() -> None:
    bundle = _convert(
        "ORU^R01",
        PID,
        "OBR|1|P1||X^Y^L",
        "OBX|1|ED|PDF^Report^L||^AP^PDF^Base64^JVBERi0xLjQK|||||F",
        "OBX|2|ED|PDF^Report^L||^AP^PDF^Base64^not*base64!|||||F",
    )
    (form,) = _one(bundle, "DiagnosticReport")["presentedForm"]
    assert form == {"contentType": "application/pdf", "data": "JVBERi0xLjQK"}


def test_nk1_every_repetition_is_kept_and_a_contact_with_only_a_phone_too() -> None:
    phones = "^^PH^^^555^1111111~^^PH^^^555^2222222"
    nk1 = f"NK1|1|Roe^Al~Roe^Alfred|SPO^Spouse|1 Main St~2 Side St|{phones}"
    bundle = _convert("ADT^A01", PID, nk1, "NK1|2||||^^PH^^^555^3333333")
    people = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "RelatedPerson"
    ]
    first = next(p for p in people if "name" in p)
    assert [n["given"] for n in first["name"]] == [["Al"], ["Alfred"]]
    assert len(first["address"]) == 2 and len(first["telecom"]) == 2
    assert first["relationship"][0]["coding"][0]["system"] == THO + "v2-0063"
    phone_only = next(p for p in people if "name" not in p)
    assert phone_only["telecom"][0]["value"] == "555 3333333"


def test_obr_a_repeated_group_of_the_same_order_keeps_every_observation_in_the_report() -> None:
    bundle = _convert(
        "ORU^R01",
        PID,
        "OBR|1|P1||X^Y^L",
        "OBX|1|NM|A^A^L||1|||||F",
        "OBR|2|P1||X^Y^L",
        "OBX|1|NM|B^B^L||2|||||F",
    )
    observations = {
        f"Observation/{e['resource']['id']}"
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
    }
    results = {r["reference"] for r in _one(bundle, "DiagnosticReport")["result"]}
    assert len(observations) == 2 and results == observations


def test_msh4_hd2_is_a_uri_only_when_hd3_says_so() -> None:
    # '99NYELR999^CLIA' became a URI, and local ids were treated as global.
    def sender(msh4: str) -> dict[str, Any]:
        message = f"MSH|^~\\&|S|{msh4}|R|RF|20260301101500+0000||ADT^A01|C1|P|2.5.1\r{PID}\r"
        bundle = convert_hl7v2(message, CTX).bundle
        return _one(bundle, "Organization")["identifier"][0]

    assert sender("Lab^2.16.840.1.113883.19.5^ISO") == {
        "system": "urn:ietf:rfc:3986",
        "value": "urn:oid:2.16.840.1.113883.19.5",
    }
    assert sender("Lab^99NYELR999^CLIA") == {
        "system": "urn:oid:2.16.840.1.113883.4.7",
        "value": "99NYELR999",
    }
    assert sender("Lab^LAB-7^L") == {
        "system": "urn:fhir-intake:partner:p1:cs:HD-L",
        "value": "LAB-7",
    }


def test_obx23_24_25_the_performing_lab_its_address_and_director_are_performers() -> None:
    lab = ["Acme Lab^^^^^^^^^CLIA-1", "1 Lab Way^^Town^ST^12345", "77^Chief^Ann"]
    obx = "|".join(["OBX", "1", "NM", "X^A^L", "", "5", *[""] * 17, *lab])  # OBX-23, 24, 25
    bundle = _convert("ORU^R01", PID, obx)
    performers = {r["reference"].split("/")[0] for r in _one(bundle, "Observation")["performer"]}
    assert performers == {"Organization", "Practitioner"}
    lab = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Organization"
        and e["resource"].get("name") == "Acme Lab"
    )
    assert lab["address"][0]["city"] == "Town"


def test_spm_fields_the_ig_maps_reach_the_specimen() -> None:
    # SPM-2.2, 7, 12, 14, 17.2, 18, 24 were lost (ReportStream inventory).
    spm = (
        "SPM|1|PL-1&LAB^FI-2&LAB||119297000^Blood^SCT|||"
        "28520004^Venipuncture^SCT|368208006^Left arm^SCT||||5^mL&milliliter&UCUM||"
        "drawn fasting~second tube|||202602281000+0000^202602281015+0000|"
        "202602281100+0000||Y||||RC^Refrigerated^HL70493"
    )
    bundle = _convert("ORU^R01", PID, "OBR|1|P1||X^Y^L", spm)
    sample = _one(bundle, "Specimen")
    assert [(i["type"]["coding"][0]["code"], i["value"]) for i in sample["identifier"]] == [
        ("PLAC", "PL-1"),
        ("FILL", "FI-2"),
    ]
    assert sample["collection"]["method"]["coding"][0]["code"] == "28520004"
    assert sample["collection"]["quantity"] == {
        "value": 5,
        "unit": "milliliter",
        "system": "http://unitsofmeasure.org",
        "code": "mL",
    }
    assert sample["collection"]["collectedPeriod"] == {
        "start": "2026-02-28T10:00:00+00:00",
        "end": "2026-02-28T10:15:00+00:00",
    }
    assert sample["receivedTime"] == "2026-02-28T11:00:00+00:00"
    assert sample["status"] == "available"
    assert [n["text"] for n in sample["note"]] == ["drawn fasting", "second tube"]
    assert sample["condition"][0]["coding"][0]["code"] == "RC"
    report = _one(bundle, "DiagnosticReport")
    assert report["specimen"] == [{"reference": f"Specimen/{sample['id']}"}]


def test_obr_9_10_14_15_39_describe_the_specimen_when_no_spm_does() -> None:
    obr = (
        "OBR|1|P1||X^Y^L|||202602281000+0000||10^mL|C7^Collector^Carl||||"
        "202602281100+0000|BLD&Blood&HL70070^^^LA&Left arm&HL70163"
    )
    obr = obr + "|" * (39 - obr.count("|")) + "^hemolysed"
    bundle = _convert("ORU^R01", PID, obr)
    sample = _one(bundle, "Specimen")
    assert sample["type"]["coding"][0]["code"] == "BLD"
    assert sample["collection"]["bodySite"]["coding"][0]["code"] == "LA"
    assert sample["collection"]["collectedDateTime"] == "2026-02-28T10:00:00+00:00"
    assert sample["collection"]["quantity"]["value"] == 10
    assert sample["collection"]["collector"]["reference"].startswith("Practitioner/")
    assert sample["receivedTime"] == "2026-02-28T11:00:00+00:00"
    assert sample["note"] == [{"text": "hemolysed"}]
    assert (
        _one(bundle, "DiagnosticReport")["specimen"][0]["reference"] == f"Specimen/{sample['id']}"
    )


def test_obr_without_specimen_fields_adds_no_specimen() -> None:
    bundle = _convert("ORU^R01", PID, "OBR|1|P1||X^Y^L|||202602281000+0000")
    assert not [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Specimen"]


def test_orc21_ordering_facility_is_the_requesters_organization() -> None:
    orc = _field("ORC|NW|P1||||||||||D1^Doctor^Dora", 21 - 12, "Good Clinic^^^^^^^^^GC-1")
    orc += "|1 Main St^^Springfield^IL^62701|^WPN^PH^^1^217^5550100"
    bundle = _convert("ORM^O01", PID, orc, "OBR|1|P1||X^Y^L")
    role = _one(bundle, "PractitionerRole")
    assert _one(bundle, "ServiceRequest")["requester"] == {
        "reference": f"PractitionerRole/{role['id']}"
    }
    assert role["practitioner"]["reference"].startswith("Practitioner/")
    (clinic,) = [
        e["resource"]
        for e in bundle["entry"]
        if f"Organization/{e['resource']['id']}" == role["organization"]["reference"]
    ]
    assert clinic["name"] == "Good Clinic"
    assert clinic["address"][0]["city"] == "Springfield"
    assert clinic["telecom"][0]["value"].endswith("5550100")


def test_in1_2_plan_id_is_an_identifier_and_in1_15_the_plan_type() -> None:
    in1 = _field("IN1|1|PLAN-1^Gold^L|INS-77^^^PAYERS|Acme Health", 15 - 4, "HMO^HMO plan^L")
    coverage = _one(_convert("ADT^A01", PID, in1), "Coverage")
    assert coverage["identifier"][0]["value"] == "PLAN-1"
    assert coverage["type"]["coding"][0]["code"] == "HMO"


_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"


def _parts(patient: dict[str, Any], url: str) -> dict[str, list[Any]]:
    (extension,) = [x for x in patient["extension"] if x["url"] == url]
    found: dict[str, list[Any]] = {}
    for part in extension["extension"]:
        found.setdefault(part["url"], []).append(
            part.get("valueCoding", {}).get("code") or part.get("valueString")
        )
    return found


def test_pid10_and_pid22_become_us_core_race_and_ethnicity() -> None:
    pid = PID + "||2106-3^White^HL70005~2080-5^Native Hawaiian^CDCREC"
    pid += "|" * (22 - 10) + "N^Not Hispanic or Latino^HL70189"
    patient = _one(_convert("ADT^A01", pid), "Patient")
    assert _parts(patient, _RACE) == {
        "ombCategory": ["2106-3"],
        "detailed": ["2080-5"],
        "text": ["White, Native Hawaiian"],
    }
    assert _parts(patient, _ETHNICITY) == {
        "ombCategory": ["2186-5"],
        "text": ["Not Hispanic or Latino"],
    }


def test_pid10_a_local_race_code_is_kept_as_text_only() -> None:
    patient = _one(_convert("ADT^A01", PID + "||W^Caucasian^LOCAL"), "Patient")
    assert _parts(patient, _RACE) == {"text": ["Caucasian"]}


def test_pid22_us_core_ethnicity_holds_one_omb_category_and_keeps_every_word() -> None:
    pid = PID + "|" * (22 - 8) + "H^Hispanic^HL70189~N^Not Hispanic^HL70189"
    patient = _one(_convert("ADT^A01", pid), "Patient")
    assert _parts(patient, _ETHNICITY) == {
        "ombCategory": ["2135-2"],
        "text": ["Hispanic, Not Hispanic"],
    }
