"""Opt-out lists through a CSV mapping: one R4 Consent per row, judged by the engine."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from shared.consent import Action, Actor, Code, ConsentRequest, Policy, PolicyMode, decide_consent
from shared.consent.resources import describe_resource
from shared.normalize.context import ConversionContext
from shared.normalize.csv_mapping import CsvMapping, convert_csv, load_mapping
from tests.conftest import REPO

SAMPLES = REPO / "docs" / "samples"
CTX = ConversionContext(partner="p1", zone=ZoneInfo("America/Chicago"))


def _consents(text: str | None = None) -> tuple[list[dict[str, Any]], Any]:
    data = text.encode() if text is not None else (SAMPLES / "opt-out-registry.csv").read_bytes()
    result = convert_csv(data, load_mapping("opt-out-registry"), CTX)
    found = [
        e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Consent"
    ]
    return found, result


def test_each_row_is_a_valid_r4_consent_with_its_status() -> None:
    (active, withdrawn), _ = _consents()
    for consent in (active, withdrawn):
        get_fhir_model_class("Consent").model_validate(consent)
    assert (active["status"], withdrawn["status"]) == ("active", "inactive")
    assert active["patient"]["identifier"] == {
        "system": "urn:fhir-intake:partner:p1:cs:MR",
        "value": "LAB-2001",
    }
    assert active["dateTime"] == "2026-02-01T09:00:00-06:00"  # the partner's zone
    assert active["provision"] == {"type": "deny", "period": {"start": "2026-02-01T09:00:00-06:00"}}
    codes = {c["code"] for cat in active["category"] for c in cat["coding"]}
    assert "opt-out-registry" in codes


def test_the_same_patient_keeps_one_consent_id_across_files() -> None:
    first, _ = _consents("mrn,recorded_at,status\nLAB-2001,2026-02-01 09:00,A\n")
    later, _ = _consents("mrn,recorded_at,status\nLAB-2001,2026-05-01 10:00,W\n")
    assert first[0]["id"] == later[0]["id"]


def test_an_unknown_status_costs_only_its_row() -> None:
    found, result = _consents(
        "mrn,recorded_at,status\nLAB-1,2026-02-01 09:00,A\nLAB-2,2026-02-01 09:00,Qzz\n"
    )
    assert len(found) == 1
    (rejection,) = result.rejected
    assert rejection.location == "line 3"
    assert rejection.issues[0].diagnostics == "the status is not in the mapping (it lists A, W)"


def test_the_engine_denies_collection_for_a_listed_patient_and_not_after_withdrawal() -> None:
    (active, withdrawn), _ = _consents()
    lab = convert_csv((SAMPLES / "lab-results.csv").read_bytes(), load_mapping("lab-results"), CTX)
    by_patient: dict[str, dict[str, Any]] = {}
    for entry in lab.bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation":
            by_patient.setdefault(resource["subject"]["identifier"]["value"], resource)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    for mrn, consent, allowed in (("LAB-2001", active, False), ("LAB-2002", withdrawn, True)):
        assert consent["patient"]["reference"] == by_patient[mrn]["subject"]["reference"]
        request = ConsentRequest(
            action=Action.COLLECT,
            at=at,
            purpose=Code(None, "TREAT"),
            actor=Actor(identifiers=frozenset({"urn:fhir-intake:partner|p1"})),
            data=describe_resource(by_patient[mrn], UTC),
        )
        decision = decide_consent([consent], request, Policy(mode=PolicyMode.OPT_OUT))
        assert decision.permitted is allowed, decision.reasons


def test_a_mapping_needs_observations_or_a_consent() -> None:
    base = {"name": "xy", "description": "d", "patient_column": "p", "time_column": "t"}
    with pytest.raises(ValidationError, match="observations, a consent, or both"):
        CsvMapping.model_validate(base)
    with pytest.raises(ValidationError, match=r"not a Consent\.status"):
        CsvMapping.model_validate({**base, "consent": {"status_lookup": {"X": "gone"}}})
