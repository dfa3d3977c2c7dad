"""CSV mappings: the two shipped ones on their sample files, and what bad rows cost."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from shared.normalize import NormalizationError
from shared.normalize.context import ConversionContext
from shared.normalize.csv_mapping import CsvMapping, convert_csv, load_mapping, mapping_schema
from shared.normalize.hl7v2.converter import convert_hl7v2
from tests.conftest import REPO

SAMPLES = REPO / "docs" / "samples"
CTX = ConversionContext(partner="p1", zone=ZoneInfo("America/Chicago"))


def _observations(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]


def _convert(name: str, text: str | None = None) -> Any:
    data = text.encode() if text is not None else (SAMPLES / f"{name}.csv").read_bytes()
    return convert_csv(data, load_mapping(name), CTX)


def test_rpm_vitals_sample() -> None:
    result = _convert("rpm-vitals")
    get_fhir_model_class("Bundle").model_validate(result.bundle)
    observations = _observations(result.bundle)
    # 4 rows; row 2 has no weight, row 4 only SpO2 and weight: 4 + 3 + 4 + 2 readings
    assert len(observations) == 13
    by_code = {}
    for obs in observations:
        by_code.setdefault(obs["code"]["coding"][0]["code"], []).append(obs)
    first_hr = by_code["8867-4"][0]
    assert first_hr["valueQuantity"] == {
        "value": 72,
        "unit": "beats/minute",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    assert first_hr["effectiveDateTime"] == "2026-03-01T07:30:00-06:00"  # the partner's zone
    bp = by_code["85354-9"][0]
    assert [c["valueQuantity"]["value"] for c in bp["component"]] == [128, 82]
    assert by_code["85354-9"][2]["effectiveDateTime"] == "2026-03-01T08:05:00-05:00"  # sent offset
    assert first_hr["category"][0]["coding"][0]["code"] == "vital-signs"


def test_lab_results_sample() -> None:
    result = _convert("lab-results")
    observations = {o["code"]["coding"][0]["code"]: o for o in _observations(result.bundle)}
    glucose = observations["2345-7"]
    assert glucose["valueQuantity"]["code"] == "mmol/L"  # looked up to UCUM
    assert glucose["status"] == "preliminary"
    assert glucose["referenceRange"] == [{"text": "3.9-5.5"}]
    assert observations["2093-3"]["interpretation"][0]["coding"][0]["code"] == "H"


def test_rows_link_to_the_patient_the_hl7v2_path_makes() -> None:
    obs = _observations(_convert("lab-results").bundle)[0]
    v2 = convert_hl7v2(
        "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.5.1\rPID|1||LAB-2001^^^MR^MR||Doe^Jane\r", CTX
    ).bundle
    patient = next(e["resource"] for e in v2["entry"] if e["resource"]["resourceType"] == "Patient")
    assert obs["subject"]["reference"] == f"Patient/{patient['id']}"


def test_a_bad_row_costs_only_itself() -> None:
    text = (SAMPLES / "rpm-vitals.csv").read_text().replace("75,131", "fast,131")
    result = _convert("rpm-vitals", text)
    (rejection,) = result.rejected
    assert rejection.location == "line 3"
    assert rejection.issues[0].location == "line 3, column 3 (heart_rate)"
    assert rejection.issues[0].diagnostics == "not a number"  # the cell is not repeated
    assert len(_observations(result.bundle)) == 10  # row 3's other readings are not kept either


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("patient_id,timestamp\nA,2026-01-01\n", "lacks the column"),
        ("patient_id,timestamp,heart_rate,bp_systolic,bp_diastolic,spo2,weight_kg\n", "no rows"),
        (
            "patient_id,timestamp,heart_rate,bp_systolic,bp_diastolic,spo2,weight_kg\n"
            ",2026-01-01T00:00:00,70,,,,\n",
            "patient identifier is empty",
        ),
        (
            "patient_id,timestamp,heart_rate,bp_systolic,bp_diastolic,spo2,weight_kg\n"
            "A,yesterday,70,,,,\n",
            "not a time",
        ),
    ],
)
def test_unusable_files_are_rejected(text: str, words: str) -> None:
    with pytest.raises(NormalizationError) as caught:
        _convert("rpm-vitals", text)
    assert words in " ".join(i.diagnostics for i in caught.value.issues)


def test_unknown_lab_status_is_a_row_error() -> None:
    text = (SAMPLES / "lab-results.csv").read_text().replace(",N,P", ",N,Qzz")
    (rejection,) = _convert("lab-results", text).rejected
    issue = rejection.issues[0]
    assert issue.location.endswith("(status)")
    assert issue.diagnostics == "the status is not in the mapping (it lists C, F, P, X)"


@pytest.mark.parametrize(
    ("mapping", "row", "where", "words"),
    [
        (  # a time, in the mapping's own format
            "lab-results",
            "LAB-1,ZZCANARY 1941-12-07,2093-3,Cholesterol,195,mg/dL,<200,N,F",
            "line 2, column 2 (collected_at)",
            "not a time in the mapping's format (%Y-%m-%d %H:%M)",
        ),
        (  # a number
            "lab-results",
            "LAB-1,2026-03-01 08:00,2093-3,Cholesterol,ZZCANARY,mg/dL,<200,N,F",
            "line 2, column 5 (result)",
            "not a number",
        ),
        (  # a status the mapping does not list
            "lab-results",
            "LAB-1,2026-03-01 08:00,2093-3,Cholesterol,195,mg/dL,<200,N,ZZCANARY",
            "line 2, column 9 (status)",
            "the status is not in the mapping",
        ),
    ],
)
def test_a_row_error_names_the_cell_and_the_rule_never_the_value(
    mapping: str, row: str, where: str, words: str
) -> None:
    header = (SAMPLES / f"{mapping}.csv").read_text().splitlines()[0]
    with pytest.raises(NormalizationError) as caught:
        _convert(mapping, f"{header}\n{row}\n")
    (issue,) = caught.value.issues
    assert issue.location == where
    assert words in issue.diagnostics
    assert "ZZCANARY" not in str(caught.value.to_operation_outcome())


def test_mappings_are_validated() -> None:
    with pytest.raises(ValidationError):
        CsvMapping.model_validate(
            {
                "name": "x",
                "description": "d",
                "patient_column": "p",
                "time_column": "t",
                "observations": [
                    {"code": {"system": "s", "code": "c"}, "status": "done", "column": "v"}
                ],
            }
        )
    with pytest.raises(NormalizationError, match="no CSV mapping has this name"):
        load_mapping("no-such-mapping")
    with pytest.raises(NormalizationError, match="not a mapping name") as caught:
        load_mapping("ZZCANARY Smith")  # a mapping name is the partner's input too
    assert "ZZCANARY" not in str(caught.value.to_operation_outcome())
    assert '"observations"' in mapping_schema()


def test_shipped_mappings_load() -> None:
    names = sorted(p.stem for p in (REPO / "shared" / "normalize" / "mappings").glob("*.json"))
    assert names == ["lab-results", "opt-out-registry", "rpm-vitals"]
    for name in names:
        assert load_mapping(name).name == name
