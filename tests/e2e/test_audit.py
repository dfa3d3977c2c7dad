"""The audit trail end to end: a submission, the consent decisions it caused and a
subscription change are AuditEvents an auditor finds by agent and by patient."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import post_ingest, product_api, wait_stage

pytestmark = pytest.mark.azurite
ORU = (
    b"MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500||ORU^R01^ORU_R01|CTRL-AU1|P|2.5.1\r"
    b"PID|1||MRN-AU1^^^&2.16.840.1.113883.19.5&ISO^MR||Doe^Jane||19700101|F\r"
    b"OBR|1|P-AU1|F-AU1|24331-1^Lipid panel^LN|||20260301080000||||||||||||||||||F\r"
    b"OBX|1|NM|2093-3^Cholesterol^LN||195|mg/dL^mg/dL^UCUM|||||F|||20260301080000\r"
)


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("audit")
    partners = [
        Partner(id="lab", name="Lab"),
        Partner(id="care", name="Care team", roles=frozenset({Role.READ})),
        Partner(id="auditor", name="Auditor", roles=frozenset({Role.ADMIN})),
    ]
    env = {"INTAKE_LOCAL_SECRETS_FILE": str(tmp / "secrets.json")}
    with product_api(azurite, tmp, partners, "fk-audit", env) as api:
        yield api


def search(api: dict[str, Any], **params: str) -> list[dict[str, Any]]:
    answer = api["client"].get(
        "/audit/AuditEvent", params=params, headers={"x-api-key": api["keys"]["auditor"]}
    )
    assert answer.status_code == 200, answer.text
    Bundle.model_validate(answer.json())
    return [e["resource"] for e in answer.json()["entry"]]


def subtypes(events: list[dict[str, Any]]) -> set[str]:
    return {s["code"] for e in events for s in e.get("subtype") or ()}


def test_an_auditor_finds_actions_by_agent_and_by_patient(api: dict[str, Any]) -> None:
    ingestion = post_ingest(api, "lab", ORU, "x-application/hl7-v2+er7")
    wait_stage(api, "lab", ingestion, "store")
    created = api["client"].post(
        "/subscriptions",
        json={"criteria": "Observation", "endpoint": "http://127.0.0.1:9/hook"},
        headers={"x-api-key": api["keys"]["care"]},
    )
    assert created.status_code == 201
    time.sleep(0.5)
    by_lab = search(api, agent="lab")
    assert "ingest" in subtypes(by_lab)
    ingest = next(e for e in by_lab if subtypes([e]) == {"ingest"})
    assert ingest["entity"][0]["what"]["identifier"]["value"] == ingestion
    by_care = search(api, agent="care")
    assert "subscription-create" in subtypes(by_care)
    assert "ingest" not in subtypes(by_care)
    patients = {
        entity["what"]["reference"]
        for event in by_lab
        for entity in event.get("entity") or ()
        if str((entity.get("what") or {}).get("reference", "")).startswith("Patient/")
    }
    assert len(patients) == 1, "the consent decision names the patient"
    about = search(api, patient=patients.pop())
    assert about and all(
        any(str(x.get("what", {}).get("reference")).startswith("Patient/") for x in e["entity"])
        for e in about
    )
    assert search(api, patient="Patient/nobody") == []
    refused = api["client"].get(
        "/audit/AuditEvent",
        params={"start": "2026-01-01", "end": "2026-03-01"},
        headers={"x-api-key": api["keys"]["auditor"]},
    )
    assert refused.status_code == 400
    forbidden = api["client"].get("/audit/AuditEvent", headers={"x-api-key": api["keys"]["care"]})
    assert forbidden.status_code == 403


@pytest.mark.parametrize(
    ("params", "status", "kind"),
    [
        ({"end": "0001-01-03"}, 400, "OperationOutcome"),
        ({"start": "0001-01-01", "end": "0001-01-02"}, 200, "Bundle"),
    ],
    ids=["default-start-before-year-1", "range-from-year-1"],
)
def test_dates_at_the_calendars_start_are_answered_not_a_crash(
    api: dict[str, Any], params: dict[str, str], status: int, kind: str
) -> None:
    # Found by make fuzz (the OpenAPI fuzz): 7 days before 0001-01-03, and the day
    # before 0001-01-01, overflowed into a 500.
    answer = api["client"].get(
        "/audit/AuditEvent", params=params, headers={"x-api-key": api["keys"]["auditor"]}
    )
    assert answer.status_code == status
    assert answer.json()["resourceType"] == kind


def test_refusals_unlinks_and_audit_searches_leave_events(api: dict[str, Any]) -> None:
    # The review's LOW-2: none of these was in the trail.
    secret = "S" * 43
    forged = api["client"].get(
        "/fhir/Observation?patient=p1", headers={"x-api-key": f"fik_0123456789abcdef_{secret}"}
    )
    assert forged.status_code == 401
    assert (
        api["client"].post("/ingest", headers={"x-api-key": api["keys"]["care"]}).status_code == 403
    )
    unlink = api["client"].post(
        "/fhir/Patient/a1/$unlink",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "other", "valueReference": {"reference": "Patient/b1"}}],
        },
        headers={"x-api-key": api["keys"]["auditor"]},
    )
    assert unlink.status_code == 200, unlink.text
    search(api, agent="lab")
    time.sleep(0.5)
    presented = search(api, agent="urn:fhir-intake:credential|api-key 0123456789abcdef")
    assert subtypes(presented) == {"authentication-failed"}
    (event,) = presented
    assert event["outcome"] == "4" and event["type"]["code"] == "110113"
    assert event["entity"][0]["what"]["identifier"]["value"] == "GET /api/fhir/Observation"
    marketing = api["client"].get(
        "/fhir/Observation?patient=p1",
        headers={"x-api-key": api["keys"]["care"], "x-purpose-of-use": "HMARKT"},
    )
    assert marketing.status_code == 403  # not a purpose care is registered for
    time.sleep(0.5)
    by_care = search(api, agent="care")
    refusals = [e for e in by_care if subtypes([e]) == {"authorization-failed"}]
    details = [
        {d["type"]: d["valueString"] for d in e["entity"][0].get("detail", [])} for e in refusals
    ]
    assert {"needed": "ingest"} in details and {"purpose": "HMARKT"} in details
    by_auditor = search(api, agent="auditor")
    assert {"patient-unlink", "audit-search"} <= subtypes(by_auditor)
    asked = [
        {d["type"]: d["valueString"] for d in e["entity"][0]["detail"]}
        for e in by_auditor
        if subtypes([e]) == {"audit-search"}
    ]
    assert any(a.get("agent") == "lab" and int(a["found"]) >= 1 for a in asked)
    everything = api["client"].get(
        "/audit/AuditEvent",
        params={"_count": "1000"},
        headers={"x-api-key": api["keys"]["auditor"]},
    )
    assert secret not in everything.text
