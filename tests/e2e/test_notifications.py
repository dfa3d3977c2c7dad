"""Notifications end to end on the local host and Azurite: subscriptions over HTTP, an
ADT A01 posted to /api/ingest reaching a local receiver as one signed admission, A03 as a
discharge, a heart-rate threshold as a CloudEvent, retries into the dead-letter store and
a replay, 410 turning a subscription off, and the API's refusals. The subscriber is a care
team registered to the hospital's patients: a subscription reaches no further than its
owner's reads (tests/e2e/test_trust.py shows what it does not hear of)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from standardwebhooks.webhooks import Webhook

from shared.notify.stage import SUBSCRIPTIONS_REFRESH_SECONDS
from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import post_ingest, product_api, wait_stage
from tests.support.hostproc import REPO
from tests.support.webhook_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.azurite

FUNCTION_KEY = "fk-notify-tests"
A01 = (REPO / "docs" / "samples" / "adt-a01.hl7").read_bytes()


def _pv1(**fields: str) -> str:
    """A PV1 segment with fields by number (PV1-19 visit, PV1-44/45 admit and discharge)."""
    values = [""] * (max(int(k[1:]) for k in fields) + 1)
    values[0] = "PV1"
    for key, value in fields.items():
        values[int(key[1:])] = value
    return "|".join(values)


A03 = (
    "MSH|^~\\&|DEMO-ADT|DEMO-HOSP|FHIR-INTAKE|INTAKE|20260303090000||ADT^A03^ADT_A03|DEMO-0003|P|2.5.1\r"
    "EVN|A03|20260303090000\r"
    "PID|1||DEMO-MRN-1^^^DEMO-HOSP^MR||Sample^Pat^Q||19700101|F\r"
    + _pv1(
        f1="1",
        f2="I",
        f3="WARD-3^301^A^DEMO-HOSP",
        f10="MED",
        f19="V-1001^^^DEMO-HOSP^VN",
        f44="20260301100000",
        f45="20260303085500",
    )
    + "\r"
).encode()


def oru(control: str, rate: int) -> bytes:
    return (
        f"MSH|^~\\&|RPM|HOME|EHR|HOSP|20260302101500||ORU^R01^ORU_R01|{control}|P|2.5.1\r"
        "PID|1||RPM-77^^^DEMO-HOSP^MR||Doe^Jo||19800101|M\r"
        f"OBR|1|P-{control}|F-{control}|8867-4^Heart rate^LN|||20260302100000||||||||||||||||||F\r"
        f"OBX|1|NM|8867-4^Heart rate^LN||{rate}|/min^/min^UCUM|||||F|||20260302100000\r"
    ).encode()


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("notify")
    partners = [
        Partner(id="hospital", name="Demo Hospital"),
        Partner(id="acme", name="Acme Care", roles=frozenset({Role.READ})),
        Partner(id="carer", name="Another care team", roles=frozenset({Role.READ})),
        Partner(id="ops", name="Operators", roles=frozenset({Role.ADMIN})),
    ]
    env = {
        "INTAKE_LOCAL_SECRETS_FILE": str(tmp / "secrets.json"),
        "INTAKE_WEBHOOK_RETRY_SCHEDULE": "1,1",
        "INTAKE_WEBHOOK_TIMEOUT_SECONDS": "2",
    }
    with product_api(azurite, tmp, partners, FUNCTION_KEY, env) as api:
        _relate(api, "DEMO-MRN-1", "RPM-77")
        yield api


def _relate(api: dict[str, Any], *mrns: str) -> None:
    """An operator registers the hospital's patients to Acme (``intake partners relate``)."""
    from datetime import UTC, datetime

    from shared.normalize.ids import local_system, patient_id
    from shared.platform.names import Table
    from shared.records.adapters import TablePersonIndex

    clients = api["clients"]
    index = TablePersonIndex(
        clients.table_client(Table.COMPARTMENTS), clients.table_client(Table.IDENTIFIERS)
    )
    for mrn in mrns:
        system = local_system("hospital", "DEMO-HOSP")
        index.relate(patient_id("hospital", system, mrn), "acme", datetime.now(UTC))


def subscribe(api: dict[str, Any], receiver: Receiver, **fields: Any) -> dict[str, Any]:
    response = api["client"].post(
        "/subscriptions",
        json={"endpoint": f"{receiver.url}/hook", **fields},
        headers={"x-api-key": api["keys"]["acme"]},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert response.headers["location"].endswith(f"/api/subscriptions/{created['id']}")
    time.sleep(SUBSCRIPTIONS_REFRESH_SECONDS + 0.2)  # the notify stage's cache catches up
    return created


def verified(secret: str, got: Any) -> Any:
    return Webhook(secret).verify(got.body, got.headers)


def test_an_adt_a01_gives_exactly_one_signed_admission(api: dict[str, Any]) -> None:
    with webhook_receiver() as receiver:
        sub = subscribe(api, receiver, topics=["admission"], content="full-resource")
        assert sub["secret"].startswith("whsec_") and sub["criteria"] == "Encounter"
        started = time.monotonic()
        ingestion = post_ingest(api, "hospital", A01, "x-application/hl7-v2+er7")
        got = receiver.wait_for(1, timeout=20)
        took = got[0].at - started
        time.sleep(3)  # anything else would have arrived by now
        assert len(receiver.received) == 1, [r.body[:200] for r in receiver.received]
        bundle = verified(sub["secret"], got[0])
        Bundle.model_validate(bundle)
        assert got[0].headers["content-type"] == "application/fhir+json"
        status = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
        assert status["topic"]["valueCanonical"].endswith(":admission")
        assert status["subscription"]["valueReference"]["reference"].endswith(sub["id"])
        event = {p["name"]: p for p in status["notification-event"]["part"]}
        assert event["event-number"]["valueString"] == "1"
        encounter = bundle["entry"][1]["resource"]
        assert encounter["resourceType"] == "Encounter" and encounter["status"] == "in-progress"
        assert encounter["class"]["code"] == "IMP"
        assert got[0].headers["webhook-id"] == f"msg_{sub['id']}_1"
        print(f"A01 POST to admission notification: {took:.2f} s")
        assert took < 15, f"{took:.1f} s from POST to notification"
        assert wait_stage(api, "hospital", ingestion, "store")["store_status"] == "stored"


def test_discharge_follows_the_a03(api: dict[str, Any]) -> None:
    with webhook_receiver() as receiver:
        sub = subscribe(api, receiver, topics=["discharge"], format="cloudevents")
        post_ingest(api, "hospital", A03, "x-application/hl7-v2+er7")
        got = receiver.wait_for(1)
        event = verified(sub["secret"], got[0])
        assert got[0].headers["content-type"] == "application/cloudevents+json"
        assert event["type"] == "org.fhir-intake.topic.discharge"
        assert event["data"]["resourceType"] == "Encounter"
        assert set(event["data"]) == {"resourceType", "id", "meta"}  # id-only


def test_heart_rate_threshold(api: dict[str, Any]) -> None:
    with webhook_receiver() as receiver:
        sub = subscribe(
            api,
            receiver,
            criteria="Observation?code=http://loinc.org|8867-4&value-quantity=gt120",
            events=["create", "update"],
            format="cloudevents",
        )
        post_ingest(api, "hospital", oru("HR-80", 80), "x-application/hl7-v2+er7")
        post_ingest(api, "hospital", oru("HR-135", 135), "x-application/hl7-v2+er7")
        got = receiver.wait_for(1)
        time.sleep(2)
        assert len(receiver.received) == 1
        event = verified(sub["secret"], got[0])
        assert event["type"] == "org.fhir-intake.resource.create"
        assert event["subject"].startswith("Observation/")


def test_one_poisoned_subscription_stops_no_one_else(api: dict[str, Any]) -> None:
    # The review's MEDIUM-1: this criteria was accepted and then failed every Observation
    # change in the notify stage, which went to notify-poison: no subscriber heard of it.
    from datetime import UTC, datetime

    from shared.notify.adapters import TableSubscriptionStore
    from shared.notify.models import Subscription
    from shared.platform.names import Table

    poison = "Observation?value-quantity=gt1e999999999"
    acme = {"x-api-key": api["keys"]["acme"]}
    refused = api["client"].post(
        "/subscriptions", json={"criteria": poison, "endpoint": "https://h.example"}, headers=acme
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert "1e100" in refused.json()["issue"][0]["diagnostics"]
    with webhook_receiver() as poisoned, webhook_receiver() as receiver:
        now = datetime.now(UTC)
        saved = Subscription(  # as a version that did not bound criteria saved it
            id="f" * 32,
            owner="acme",
            criteria=poison,
            endpoint=f"{poisoned.url}/hook",
            base_url="http://127.0.0.1/api/fhir",
            created=now,
            updated=now,
        )
        TableSubscriptionStore(api["clients"].table_client(Table.SUBSCRIPTIONS)).add(saved)
        subscribe(api, receiver, criteria="Observation?value-quantity=gt170")
        post_ingest(api, "hospital", oru("HR-180", 180), "x-application/hl7-v2+er7")
        assert len(receiver.wait_for(1)) == 1
        state = api["client"].get(f"/subscriptions/{saved.id}", headers=acme).json()
        assert state["status"] == "error" and "can no longer be read" in state["error"]
        assert poisoned.received == []


def test_failures_dead_letter_then_replay_redelivers(api: dict[str, Any]) -> None:
    with webhook_receiver([(500, {}), (503, {}), (500, {})]) as receiver:
        sub = subscribe(api, receiver, criteria="Observation?code=8867-4&value-quantity=gt150")
        post_ingest(api, "hospital", oru("HR-170", 170), "x-application/hl7-v2+er7")
        receiver.wait_for(3, timeout=30)  # the first attempt and two retries ("1,1")
        headers = {"x-api-key": api["keys"]["acme"]}

        def state() -> dict[str, Any]:
            found: dict[str, Any] = (
                api["client"].get(f"/subscriptions/{sub['id']}", headers=headers).json()
            )
            return found

        deadline = time.monotonic() + 15
        while state()["status"] != "error" and time.monotonic() < deadline:
            time.sleep(0.2)
        current = state()
        assert current["status"] == "error" and current["eventCount"] == 1
        assert "after 3 attempts" in current["error"] and "HTTP 500" in current["error"]
        forbidden = api["client"].post(f"/subscriptions/{sub['id']}/$replay", headers=headers)
        assert forbidden.status_code == 403  # replay is an admin action
        replay = api["client"].post(
            f"/subscriptions/{sub['id']}/$replay", headers={"x-api-key": api["keys"]["ops"]}
        )
        assert replay.status_code == 202 and replay.json()["queued"] == 1
        got = receiver.wait_for(4)
        assert {r.headers["webhook-id"] for r in got} == {f"msg_{sub['id']}_1"}
        verified(sub["secret"], got[3])
        deadline = time.monotonic() + 15
        while state()["status"] != "active" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state()["status"] == "active" and state().get("error") is None


def test_gone_turns_the_subscription_off(api: dict[str, Any]) -> None:
    with webhook_receiver([(410, {})]) as receiver:
        sub = subscribe(api, receiver, criteria="Observation?value-quantity=gt190")
        post_ingest(api, "hospital", oru("HR-195", 195), "x-application/hl7-v2+er7")
        receiver.wait_for(1)
        headers = {"x-api-key": api["keys"]["acme"]}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            current = api["client"].get(f"/subscriptions/{sub['id']}", headers=headers).json()
            if current["status"] == "off":
                break
            time.sleep(0.2)
        assert current["status"] == "off" and "410" in current["error"]
        time.sleep(2)
        assert len(receiver.received) == 1  # no retries after 410
        again = api["client"].patch(
            f"/subscriptions/{sub['id']}", json={"status": "active"}, headers=headers
        )
        assert again.status_code == 200
        assert again.json()["status"] == "active" and again.json().get("error") is None


def test_the_api_refuses_clearly(api: dict[str, Any], tmp_path: Path) -> None:
    client = api["client"]
    acme = {"x-api-key": api["keys"]["acme"]}
    bad = client.post(
        "/subscriptions",
        json={"criteria": "Encounter?name=x", "endpoint": "https://h.example.org"},
        headers=acme,
    )
    assert bad.status_code == 400
    assert bad.json()["resourceType"] == "OperationOutcome"
    assert "cannot be filtered by 'name'" in bad.json()["issue"][0]["diagnostics"]
    ssrf = client.post(
        "/subscriptions",
        json={"criteria": "Encounter", "endpoint": "https://169.254.169.254/"},
        headers=acme,
    )
    assert ssrf.status_code == 400 and "metadata" in ssrf.json()["issue"][0]["diagnostics"]
    site_local = client.post(  # a block Python's flags let through (the review's INFO)
        "/subscriptions",
        json={"criteria": "Encounter", "endpoint": "https://[fec0::1]/"},
        headers=acme,
    )
    assert site_local.status_code == 400 and "site-local" in site_local.text
    assert client.get("/subscriptions/..%2F..%2Fx", headers=acme).status_code == 404  # not 503
    ingest_only = client.post(
        "/subscriptions", json={}, headers={"x-api-key": api["keys"]["hospital"]}
    )
    assert ingest_only.status_code == 403
    assert client.get("/subscriptions").status_code == 401
    theirs = client.post(
        "/subscriptions",
        json={"criteria": "Patient", "endpoint": "http://127.0.0.1:9/x", "owner": "carer"},
        headers={"x-api-key": api["keys"]["ops"]},
    ).json()
    assert client.get(f"/subscriptions/{theirs['id']}", headers=acme).status_code == 404
    assert theirs["id"] not in json.dumps(client.get("/subscriptions", headers=acme).json())
    rotated = client.post(
        f"/subscriptions/{theirs['id']}/$rotate-secret", headers={"x-api-key": api["keys"]["ops"]}
    )
    assert rotated.status_code == 200 and rotated.json()["secret"] != theirs["secret"]
    assert (
        "secret"
        not in client.get(
            f"/subscriptions/{theirs['id']}", headers={"x-api-key": api["keys"]["ops"]}
        ).json()
    )
    gone = client.delete(
        f"/subscriptions/{theirs['id']}", headers={"x-api-key": api["keys"]["ops"]}
    )
    assert gone.status_code == 204
    assert (
        client.get(
            f"/subscriptions/{theirs['id']}", headers={"x-api-key": api["keys"]["ops"]}
        ).status_code
        == 404
    )
