"""A consent-check message whose store step fails half-way, on Azurite, through the real
queue runner: what consent permitted goes to the store queue as it is, the consent-check
message is done, and the store queue's message finishes the same Bundle."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared import wiring
from shared.pipeline.runner import run
from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.errors import StorageUnavailableError
from shared.platform.names import Container, Queue, Table
from shared.platform.provision import provision_storage
from shared.security import Partner, Role

pytestmark = pytest.mark.azurite
FOLDER = "lab/2026/12/02/ing-h1"


def _bundle() -> dict[str, object]:
    patient = {"resourceType": "Patient", "id": "ph1", "gender": "female"}
    obs = {
        "resourceType": "Observation",
        "id": "oh1",
        "status": "final",
        "code": {"text": "heart rate"},
        "subject": {"reference": "Patient/ph1"},
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in (patient, obs)
        ],
    }


def _take(queue: Queue) -> list[bytes]:
    client = wiring.storage().queue_client(queue)
    found = []
    for message in client.receive_messages(max_messages=32):
        found.append(message.content)
        client.delete_message(message)
    return found


def test_a_store_step_that_fails_is_finished_from_the_store_queue(
    storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = wiring.storage()
    provision_storage(clients)
    wiring.partners().upsert(Partner(id="lab", name="Lab", roles=frozenset({Role.INGEST})))
    clients.container(Container.NORMALIZED).upload_blob(
        f"{FOLDER}.json", json.dumps(_bundle()).encode()
    )
    store = wiring.record_store()
    listed = store.list_in_compartments
    failures = []

    def fails_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not failures:  # after every version was written: a half-done store step
            failures.append(1)
            raise StorageUnavailableError("writing compartments failed: ServiceResponseError")
        return listed(*args, **kwargs)

    monkeypatch.setattr(store, "list_in_compartments", fails_once)
    checked = Envelope(
        correlation_id="ing-h1",
        partner="lab",
        kind=EnvelopeKind.BUNDLE_NORMALIZED,
        blob=BlobRef(container=Container.NORMALIZED, name=f"{FOLDER}.json"),
        created=datetime(2026, 12, 2, 9, tzinfo=UTC),
    )
    journey = wiring.ingestion_log()
    run(wiring.queue_stage(Queue.CONSENT_CHECK), checked.to_bytes(), 1, journey)  # no raise
    assert failures == [1]
    row = journey.get("lab", "ing-h1") or {}
    assert row["consent_status"] == "permitted" and "store_status" not in row
    assert _take(Queue.NOTIFY) == []  # nothing announced yet
    (handed,) = _take(Queue.STORE)
    permitted = Envelope.model_validate_json(handed)
    assert permitted.kind is EnvelopeKind.BUNDLE_PERMITTED and permitted.blob is not None
    assert permitted.blob.name == f"{FOLDER}.permitted.json"

    run(wiring.queue_stage(Queue.STORE), handed, 1, journey)
    row = journey.get("lab", "ing-h1") or {}
    assert row["store_status"] == "stored"
    compartment = clients.table_client(Table.COMPARTMENTS).query_entities(
        "PartitionKey eq 'ph1'", select=["RowKey"]
    )
    assert {"Observation|oh1", "Patient|ph1"} <= {r["RowKey"] for r in compartment}
    (announced,) = (Envelope.model_validate_json(m) for m in _take(Queue.NOTIFY))
    assert {(c.type, c.id) for c in announced.changes or ()} == {
        ("Patient", "ph1"),
        ("Observation", "oh1"),
    }
