"""HL7 v2 codes become codings of code systems that exist, with the codes they define:
terminology.hl7.org's tables (checked against its package), v3 codes of the same
meaning, and the partner's own system for everything else. Messages are synthetic."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.normalize.context import ConversionContext
from shared.normalize.hl7v2.converter import convert_hl7v2
from tests.conftest import REPO

CTX = ConversionContext(partner="p1", received=datetime(2026, 3, 1, tzinfo=UTC))
THO = "http://terminology.hl7.org/CodeSystem/"
MSH = "MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500+0000||{}|C1|P|2.5.1\r"
PACKAGE = REPO / ".cache" / "tho" / "package"


def _patient(pid16: str) -> dict[str, Any]:
    fields = ["PID", "1", "", "M1^^^H^MR", "", "Doe^J", "", "19700101", "F", *[""] * 7, pid16]
    message = MSH.format("ADT^A01") + "|".join(fields) + "\r"  # PID-16
    bundle = convert_hl7v2(message, CTX).bundle
    return next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )


@pytest.mark.parametrize(
    ("sent", "codings"),
    [
        # v2 A is Separated; v3 A is Annulled: no v3 code of that meaning.
        ("A", [(THO + "v2-0002", "A", "Separated")]),
        # v2 P is Domestic partner; v3 P is Polygamous, v3 T Domestic partner.
        (
            "P",
            [
                (THO + "v2-0002", "P", "Domestic partner"),
                (THO + "v3-MaritalStatus", "T", "Domestic partner"),
            ],
        ),
        ("N", [(THO + "v2-0002", "N", "Annulled"), (THO + "v3-MaritalStatus", "A", "Annulled")]),
        (
            "M^Married^HL70002",
            [(THO + "v2-0002", "M", "Married"), (THO + "v3-MaritalStatus", "M", "Married")],
        ),
        ("Q", [("urn:fhir-intake:partner:p1:cs:HL70002", "Q", None)]),  # not a table 0002 code
    ],
)
def test_pid16_marital_status_keeps_table_0002_and_adds_v3_only_for_the_same_meaning(
    sent: str, codings: list[tuple[str, str, str | None]]
) -> None:
    found = _patient(sent)["maritalStatus"]["coding"]
    assert [(c["system"], c["code"], c.get("display")) for c in found] == codings


def _interpretations(flags: str) -> list[dict[str, Any]]:
    message = MSH.format("ORU^R01") + "PID|1||M1^^^H^MR\r" + f"OBX|1|NM|X^Y^L||5|||{flags}\r"
    bundle = convert_hl7v2(message, CTX).bundle
    observation = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    )
    return list(observation["interpretation"])


def test_obx8_abnormal_flags_are_v3_interpretation_codes_only_where_v3_defines_them() -> None:
    high, odd = _interpretations("H~ZZ")
    assert high["coding"] == [
        {"system": THO + "v3-ObservationInterpretation", "code": "H", "display": "High"}
    ]
    assert odd["coding"] == [{"system": "urn:fhir-intake:partner:p1:cs:HL70078", "code": "ZZ"}]


@pytest.mark.skipif(
    not (PACKAGE / "package.json").is_file(),
    reason=f"terminology.hl7.org's package is not unpacked at {PACKAGE} (make setup does it)",
)
def test_the_tables_are_terminology_hl7_orgs_as_published() -> None:
    spec = importlib.util.spec_from_file_location("build", REPO / "tools" / "build_tho_tables.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    shipped = Path(REPO / "shared" / "normalize" / "hl7v2" / "tho_tables.json")
    assert shipped.read_text(encoding="utf-8") == build.dumps(build.build(PACKAGE))
    tables = json.loads(shipped.read_text(encoding="utf-8"))
    # Spot checks against the published CodeSystems themselves.
    published = json.loads((PACKAGE / "CodeSystem-v2-0203.json").read_text(encoding="utf-8"))
    assert published["url"] == THO + "v2-0203" and "MR" in tables["v2"]["0203"]
    assert "0296" not in tables["v2"] and not (PACKAGE / "CodeSystem-v2-0296.json").exists()
