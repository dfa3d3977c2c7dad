"""Erasing a patient on the local host and Azurite: afterwards no container or table
holds their data or identifiers, another patient's data is untouched, the purge is
audited, and running it again is harmless."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.normalize.ids import patient_id
from shared.platform.names import Container, Table
from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import post_ingest, product_api, wait_stage
from tests.support.consents import action_provision, privacy_consent

pytestmark = pytest.mark.azurite

OID = "2.16.840.1.113883.19.11"
GONE, KEPT = "MRN-GONE-1", "MRN-KEPT-2"
GONE_ID = patient_id("lab", f"urn:oid:{OID}", GONE)
KEPT_ID = patient_id("lab", f"urn:oid:{OID}", KEPT)


def _oru(mrn: str, time: str, value: int) -> bytes:
    return (
        f"MSH|^~\\&|LAB|ACME|EHR|HOSP|{time}||ORU^R01^ORU_R01|C-{mrn}-{time}|P|2.5.1\r"
        f"PID|1||{mrn}^^^&{OID}&ISO^MR||Roe^Ann||19800101|F\r"
        f"OBR|1|P-{mrn}|F-{mrn}|24331-1^Lipid panel^LN|||20260301080000||||||||||||||||||F\r"
        f"OBX|1|NM|2093-3^Cholesterol^LN||{value}|mg/dL^mg/dL^UCUM|||||F|||20260301080000\r"
    ).encode()


def _consent(rule: str, action: str) -> bytes:
    patient = {"identifier": {"system": f"urn:oid:{OID}", "value": GONE}}
    return json.dumps(
        privacy_consent(
            f"{rule}-{action}", patient, "2026-03-02", provision=action_provision(rule, action)
        )
    ).encode()


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    partners = [
        Partner(id="lab", name="Lab"),
        Partner(id="ops", name="Operator", roles=frozenset({Role.ADMIN})),
        Partner(id="clinic", name="Clinic", roles=frozenset({Role.READ})),
    ]
    with product_api(azurite, tmp_path_factory.mktemp("purge"), partners, "fk-purge") as api:
        for body in (
            _oru(GONE, "20260301090000", 195),
            _oru(GONE, "20260301100000", 201),
            _oru(KEPT, "20260301090000", 180),
        ):
            wait_stage(
                api, "lab", post_ingest(api, "lab", body, "x-application/hl7-v2+er7"), "store"
            )
        wait_stage(
            api,
            "lab",
            post_ingest(api, "lab", _consent("deny", "collect"), "application/fhir+json"),
            "store",
        )
        # Sent after the patient refused collection: quarantined, never stored.
        wait_stage(
            api,
            "lab",
            post_ingest(api, "lab", _oru(GONE, "20260302090000", 210), "x-application/hl7-v2+er7"),
            "consent",
        )
        yield api


def _everything(api: dict[str, Any]) -> dict[str, str]:
    """Every blob (name and text) and table row (as JSON) under this test's prefix."""
    clients = api["clients"]
    found = {}
    for container in Container:
        if container is Container.AUDIT:
            continue  # the audit trail is kept: it records ids and decisions, and the purge
        client = clients.container(container)
        for blob in client.list_blobs():
            found[f"{container}/{blob.name}"] = (
                client.download_blob(blob.name).readall().decode(errors="replace")
            )
    for table in Table:
        for row in clients.table_client(table).list_entities():
            found[f"{table}:{row['PartitionKey']}:{row['RowKey']}"] = json.dumps(
                dict(row), default=str
            )
    return found


def _traces(api: dict[str, Any], mrn: str, patient_id: str) -> list[str]:
    hashed = {
        hashlib.sha256(f"urn:oid:{OID}|{mrn}".encode()).hexdigest()[:40],
        hashlib.sha256(f"Patient/{patient_id}".encode()).hexdigest()[:40],
    }
    marks = [mrn, patient_id, *hashed]
    return [
        place
        for place, text in _everything(api).items()
        if any(m in place or m in text for m in marks)
        and not place.startswith(str(Table.INGESTIONS))
    ]  # status rows: counts and ids only


def _purge(api: dict[str, Any], partner: str = "ops", patient: str = GONE_ID) -> Any:
    return api["client"].post(
        f"/fhir/Patient/{patient}/$purge", headers={"x-api-key": api["keys"][partner]}
    )


def test_purge_leaves_nothing_of_the_patient_and_keeps_the_others(api: dict[str, Any]) -> None:
    before = _traces(api, GONE, GONE_ID)
    assert any(p.startswith("fhir/Patient/") for p in before)
    assert any(p.startswith("raw/") for p in before) and any(
        p.startswith("quarantine/") for p in before
    )
    assert any(p.startswith("consents/") for p in before)
    kept_before = _traces(api, KEPT, KEPT_ID)
    assert _purge(api, "clinic").status_code == 403  # reading is not erasing

    unlink = {
        "resourceType": "Parameters",
        "parameter": [{"name": "other", "valueReference": {"reference": f"Patient/{KEPT_ID}"}}],
    }
    separated = api["client"].post(
        f"/fhir/Patient/{GONE_ID}/$unlink", json=unlink, headers={"x-api-key": api["keys"]["ops"]}
    )
    assert separated.status_code == 200  # leaves a row in the other patient's partition too
    answer = _purge(api)
    assert answer.status_code == 200, answer.text
    counts = {p["name"]: p["valueInteger"] for p in answer.json()["parameter"]}
    assert counts["resources"] >= 2 and counts["versions"] >= 3 and counts["consents"] == 1
    assert counts["payloads"] >= 4 and counts["sharedPayloadsKept"] == 0
    left = _traces(api, GONE, GONE_ID)
    assert left == [], "\n".join(left)
    assert sorted(_traces(api, KEPT, KEPT_ID)) == sorted(kept_before)
    read = api["client"].get(
        f"/fhir/Patient/{GONE_ID}", headers={"x-api-key": api["keys"]["clinic"]}
    )
    assert read.status_code == 404

    audit = api["clients"].container(Container.AUDIT)
    events = [
        json.loads(audit.download_blob(b.name).readall())
        for b in audit.list_blobs()
        if b.name.endswith(".json")
    ]
    (purge,) = [e for e in events if e["subtype"][0]["code"] == "purge"]
    assert purge["agent"][0]["who"]["identifier"]["value"] == "ops"
    assert purge["entity"][0]["what"]["reference"] == f"Patient/{GONE_ID}"
    assert GONE not in json.dumps(purge)  # counts, not data

    again = _purge(api)  # an interrupted purge is finished by running it again
    assert again.status_code == 200
    assert {p["name"]: p["valueInteger"] for p in again.json()["parameter"]}["resources"] == 0
