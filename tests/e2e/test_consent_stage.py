"""Consent enforced end to end on the local host and Azurite: a patient's opt-out keeps
their lab result out of the record (quarantined, audited), and once the patient's
consent changes to permit, a resend goes on to the store. Also the HTTP decisions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class

from shared.platform.envelope import Envelope, EnvelopeKind
from shared.platform.names import Container, Queue
from shared.platform.storage import StorageClients
from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import post_ingest, product_api, wait_stage
from tests.support.consents import privacy_consent
from tests.support.hostproc import REPO

pytestmark = pytest.mark.azurite

OID = "2.16.840.1.113883.19.5"  # the assigning authority whose patients p1 records consents for
ORU = (
    "MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500||ORU^R01^ORU_R01|CTRL-555|P|2.5.1\r"
    f"PID|1||MRN-555^^^&{OID}&ISO^MR||Doe^Jane||19700101|F\r"
    "OBR|1|P-555|F-555|24331-1^Lipid panel^LN|||20260301080000||||||||||||||||||F\r"
    "OBX|1|NM|2093-3^Cholesterol^LN||195|mg/dL^mg/dL^UCUM|||||F|||20260301080000\r"
)
FUNCTION_KEY = "fk-consent-tests"


def _consent(rule: str, date: str) -> bytes:
    patient = {"identifier": {"system": f"urn:oid:{OID}", "value": "MRN-555"}}
    return json.dumps(privacy_consent("privacy-555", patient, date, policy_rule=rule)).encode()


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    partners = [
        # A consent source for its MRN space, and a registry (its opt-out lists count):
        # a Consent counts only from a partner that may speak for the patient.
        Partner(
            id="p1",
            name="Lab",
            roles=frozenset({Role.INGEST, Role.CONSENT_SOURCE, Role.REGISTRY}),
            consent_systems=frozenset({f"urn:oid:{OID}"}),
        ),
        # A public-health reader may ask about anyone (also identifiers the record does not
        # hold yet, as here: the lab result is held back); a care team only about its own.
        Partner(id="reader", name="Registry", roles=frozenset({Role.READ, Role.POPULATION})),
        Partner(id="clinic", name="Care team", roles=frozenset({Role.READ})),
    ]
    off = {"AzureWebJobs.notify.Disabled": "true"}  # the tests read what reached notify
    with product_api(
        azurite, tmp_path_factory.mktemp("consent"), partners, FUNCTION_KEY, off
    ) as api:
        yield api


def _ingest(api: dict[str, Any], body: bytes, content_type: str, mapping: str = "") -> str:
    return post_ingest(api, "p1", body, content_type, mapping)


def _consent_stage(api: dict[str, Any], ingestion: str) -> dict[str, Any]:
    return _stage_row(api, ingestion, "consent")


def _names(clients: StorageClients, container: Container, part: str) -> list[str]:
    return [b.name for b in clients.container(container).list_blobs() if part in b.name]


def _read(clients: StorageClients, container: Container, name: str) -> Any:
    return json.loads(clients.container(container).download_blob(name).readall())


def _audit_events(clients: StorageClients) -> list[dict[str, Any]]:
    """Every AuditEvent: single ones (.json) and a unit of work's (.ndjson)."""
    events = []
    for name in _names(clients, Container.AUDIT, "AuditEvent/"):
        data = clients.container(Container.AUDIT).download_blob(name).readall()
        events += [json.loads(line) for line in data.splitlines() if line.strip()]
    return events


def _notify_messages(clients: StorageClients) -> list[Envelope]:
    peeked = clients.queue_client(Queue.NOTIFY).peek_messages(max_messages=32)
    return [Envelope.from_bytes(m.content) for m in peeked]


def _stage_row(api: dict[str, Any], ingestion: str, stage: str) -> dict[str, Any]:
    return wait_stage(api, "p1", ingestion, stage)


def _evaluate(api: dict[str, Any], partner: str = "reader") -> httpx.Response:
    return api["client"].post(
        "/consent/$evaluate",
        headers={"x-api-key": api["keys"][partner], "content-type": "application/fhir+json"},
        json={
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "patient",
                    "valueIdentifier": {"system": f"urn:oid:{OID}", "value": "MRN-555"},
                },
                {"name": "action", "valueCode": "access"},
                {"name": "purpose", "valueCode": "TREAT"},
                {"name": "actor", "valueReference": {"reference": "Organization/clinic"}},
            ],
        },
    )


def test_opt_out_quarantines_then_a_permit_lets_a_resend_through(api: dict[str, Any]) -> None:
    clients = api["clients"]
    first = _ingest(api, _consent("OPTOUT", "2026-01-01"), "application/fhir+json")
    indexed = _consent_stage(api, first)
    assert indexed["consent_status"] == "permitted"  # from a consent source: it counts
    assert indexed["consent_consents_indexed"] == 1

    lab = _ingest(api, ORU.encode(), "x-application/hl7-v2+er7")
    denied = _consent_stage(api, lab)
    assert denied["consent_status"] == "denied"
    assert denied["consent_permitted"] == 0 and denied["consent_denied"] >= 2  # Patient, Obs
    issues = json.loads(denied["consent_issues"])
    assert any(i["diagnostics"].startswith("Observation/") for i in issues)
    # Quarantined with the decision, and nothing for the store.
    (held,) = _names(clients, Container.QUARANTINE, f"{lab}/consent-denied.json")
    record = _read(clients, Container.QUARANTINE, held)
    obs = next(d for d in record["decisions"] if d["resource"].startswith("Observation/"))
    assert obs["decision"] == "deny" and obs["default_applied"] is False
    (consent_ref,) = obs["consents"]
    assert _names(clients, Container.FHIR, f"{obs['resource']}/_history/") == []
    assert "store_status" not in _stage_row(api, lab, "consent")
    # The AuditEvent says who asked, what was decided and by which consent.
    events = _audit_events(clients)
    about = [
        e
        for e in events
        if any(x.get("what", {}).get("reference") == obs["resource"] for x in e["entity"])
    ]
    (event,) = about
    get_fhir_model_class("AuditEvent").model_validate(event)
    detail = {d["type"]: d["valueString"] for x in event["entity"] for d in x.get("detail", [])}
    assert detail["decision"] == "deny" and event["outcome"] == "4"  # not 0, success
    assert any(x.get("what", {}).get("reference") == consent_ref for x in event["entity"])
    assert event["agent"][0]["who"]["identifier"] == {
        "system": "urn:fhir-intake:partner",
        "value": "p1",
    }
    assert event["subtype"][0]["code"] == "collect"

    # Decisions over HTTP say the same, and need the read role.
    assert _evaluate(api, "p1").status_code == 403
    # A care team may not learn whether a person it may not read has consents (the
    # review's LOW-2); the question is audited, and its refusal is a denial (outcome 4).
    out_of_reach = _evaluate(api, "clinic")
    assert out_of_reach.status_code == 403 and "persons you may read" in out_of_reach.text
    refused = [
        e
        for e in _audit_events(clients)
        if e["subtype"][0]["code"] in {"consent-question-refused", "authorization-failed"}
    ]
    assert {
        (e["subtype"][0]["code"], e["agent"][0]["who"]["identifier"]["value"], e["outcome"])
        for e in refused
    } == {("authorization-failed", "p1", "4"), ("consent-question-refused", "clinic", "4")}
    answer = _evaluate(api)
    assert answer.status_code == 200, answer.text
    params = {p["name"]: p for p in answer.json()["parameter"]}
    assert params["decision"]["valueCode"] == "deny"
    assert params["consent"]["valueReference"]["reference"] == consent_ref
    # Its AuditEvent records the API caller as requester and the clinic asked about.
    audited = _audit_events(clients)
    (evaluated,) = [
        e for e in audited if e["source"]["observer"]["display"] == "fhir-intake $evaluate"
    ]
    assert [(a["who"], a["requestor"]) for a in evaluated["agent"]] == [
        ({"identifier": {"system": "urn:fhir-intake:partner", "value": "reader"}}, True),
        ({"reference": "Organization/clinic"}, False),
    ]
    hook = api["client"].post(
        "/cds-services/patient-consent-consult",
        headers={"x-api-key": api["keys"]["reader"]},
        json={
            "hook": "patient-consent-consult",
            "hookInstance": "h-1",
            "context": {
                "patientId": [{"system": f"urn:oid:{OID}", "value": "MRN-555"}],
                "scope": "patient-privacy",
                "purposeOfUse": "TREAT",
                "actor": [{"system": "urn:oid:2.16.840.1.113883.4.6", "value": "1234567893"}],
            },
        },
    )
    assert hook.status_code == 200, hook.text
    card = hook.json()["cards"][0]
    assert (card["summary"], card["extension"]["decision"]) == ("CONSENT_DENY", "CONSENT_DENY")
    assert card["extension"]["basedOn"] == [consent_ref]

    # The patient changes their mind: the same Consent, now OPTIN, dated later.
    changed = _ingest(api, _consent("OPTIN", "2026-02-01"), "application/fhir+json")
    assert _consent_stage(api, changed)["consent_consents_indexed"] == 1
    assert {p["name"]: p for p in _evaluate(api).json()["parameter"]}["decision"][
        "valueCode"
    ] == "permit"
    resend = _ingest(api, ORU.encode(), "x-application/hl7-v2+er7")
    stored = _consent_stage(api, resend)
    assert stored["consent_status"] == "permitted" and stored["consent_denied"] == 0
    (bundle_name,) = _names(clients, Container.NORMALIZED, f"{resend}.json")
    bundle = _read(clients, Container.NORMALIZED, bundle_name)
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert {"Patient", "Observation"} <= kinds
    # Consent handed all of it to the store in the same invocation (no permitted copy is
    # written): the Observation is in the record, and every new resource is announced on
    # notify, in one message.
    assert _names(clients, Container.NORMALIZED, f"{resend}.permitted.json") == []
    row = _stage_row(api, resend, "store")
    assert row["store_status"] == "stored" and row["store_created"] == len(bundle["entry"])
    assert _names(clients, Container.FHIR, f"{obs['resource']}/_history/1.json")
    changed = [m for m in _notify_messages(clients) if m.correlation_id == resend]
    assert [m.kind for m in changed] == [EnvelopeKind.RESOURCES_CHANGED]
    named = {f"{c.type}/{c.id}" for c in changed[0].changes or ()}
    assert obs["resource"] in named and len(named) == len(bundle["entry"])


def test_discovery_lists_the_consent_service(api: dict[str, Any]) -> None:
    response = httpx.get(f"{api['host'].base_url}/api/cds-services", timeout=10)
    assert response.status_code == 200
    assert [s["id"] for s in response.json()["services"]] == ["patient-consent-consult"]


def test_bad_requests_get_an_operation_outcome(api: dict[str, Any]) -> None:
    headers = {"x-api-key": api["keys"]["reader"]}
    missing = api["client"].post(
        "/consent/$evaluate",
        headers=headers,
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "action", "valueCode": "access"}],
        },
    )
    assert missing.status_code == 400
    assert "patient is required" in missing.json()["issue"][0]["diagnostics"]
    not_json = api["client"].post("/consent/$evaluate", headers=headers, content=b"{nope")
    assert not_json.status_code == 400 and not_json.json()["resourceType"] == "OperationOutcome"
    no_key = api["client"].post("/consent/$evaluate", json={})
    assert no_key.status_code == 401
    wrong_hook = api["client"].post(
        "/cds-services/patient-consent-consult", headers=headers, json={"hook": "patient-view"}
    )
    assert wrong_hook.status_code == 400


def test_an_opt_out_list_as_csv_keeps_listed_patients_out(api: dict[str, Any]) -> None:
    samples = REPO / "docs" / "samples"
    registry = _ingest(
        api, (samples / "opt-out-registry.csv").read_bytes(), "text/csv", "opt-out-registry"
    )
    assert _consent_stage(api, registry)["consent_consents_indexed"] == 2
    labs = _ingest(api, (samples / "lab-results.csv").read_bytes(), "text/csv", "lab-results")
    row = _consent_stage(api, labs)
    # LAB-2001 is listed (active): its 3 results are held back; LAB-2002 withdrew (W),
    # so its one result goes on.
    assert row["consent_status"] == "partial"
    assert (row["consent_denied"], row["consent_permitted"]) == (3, 1)
    clients = api["clients"]
    (held,) = _names(clients, Container.QUARANTINE, f"{labs}/consent-denied.json")
    decisions = _read(clients, Container.QUARANTINE, held)["decisions"]
    assert all(d["decision"] == "deny" for d in decisions)
    assert all("opt-out registry entry" in d["reasons"][-1] for d in decisions)
    assert _stage_row(api, labs, "store")["store_created"] >= 1
    stored = [
        _read(clients, Container.FHIR, b.name)
        for b in clients.container(Container.FHIR).list_blobs(
            name_starts_with="Observation/", include=["metadata"]
        )
        if (b.metadata or {}).get("correlation") == labs
    ]
    subjects = {o["subject"]["identifier"]["value"] for o in stored}
    assert subjects == {"LAB-2002"}


def test_hostile_bodies_get_a_4xx_never_a_crash(api: dict[str, Any]) -> None:
    headers = {"x-api-key": api["keys"]["reader"], "content-type": "application/fhir+json"}
    deep = b'{"resourceType": "Parameters", "parameter": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    for body in (
        deep,
        b'{"resourceType": "Parameters", "parameter": [{"name": "patient", "valueIdentifier": 7}]}',
        b'{"resourceType": "Parameters", "parameter": "all"}',
        b"\xff\xfe\x00",
    ):
        response = api["client"].post("/consent/$evaluate", headers=headers, content=body)
        assert response.status_code == 400, (body[:60], response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    assert api["client"].get("/health").status_code == 200  # the host is still there
