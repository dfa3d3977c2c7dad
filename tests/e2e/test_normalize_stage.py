"""The normalize stage through its real queue trigger on the local host and Azurite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from fhir.resources.R4B import get_fhir_model_class

from shared.pipeline.journey import TableIngestionLog
from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.names import Container, Queue, Table, poison_queue
from shared.platform.provision import provision_storage
from shared.platform.storage import StorageClients
from shared.security import Partner, TablePartnerDirectory
from tests.e2e.conftest import APPS, clients_for, make_env
from tests.support.hostproc import REPO, HostProcess, wait_for, write_settings

pytestmark = pytest.mark.azurite

ORU = (
    "MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500||ORU^R01^ORU_R01|CTRL-9|P|2.5.1\r"
    "PID|1||MRN9^^^HOSP^MR||Doe^Jane||19700101|F\r"
    "OBR|1|P-9|F-9|24331-1^Lipid panel^LN|||20260301080000||||||||||||||||||F\r"
    "OBX|1|NM|2093-3^Cholesterol^LN||195|mg/dL^mg/dL^UCUM|||||F|||20260301080000\r"
)


@pytest.fixture(scope="module")
def stack(
    azurite: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HostProcess, StorageClients]]:
    tmp = tmp_path_factory.mktemp("normalize")
    # notify stays off so the test can see what the store stage announced on the queue.
    env = {**make_env(azurite), "AzureWebJobs.notify.Disabled": "true"}
    clients = clients_for(env)
    provision_storage(clients)
    TablePartnerDirectory(clients.table_client(Table.PARTNERS)).upsert(
        Partner(id="p1", name="Partner one", time_zone="America/New_York")
    )
    host = HostProcess(
        root=REPO,
        app="function_app:app",
        env=env,
        log_path=tmp / "host.log",
        host_json=APPS / "host.json",  # fast retries: tests/apps/host.json
        settings=write_settings(tmp / "s.json", "k", "m"),
    )
    host.start()
    yield host, clients
    assert host.stop() == 0, host.logs()


def _submit(clients: StorageClients, correlation: str, data: bytes, **metadata: str) -> None:
    name = f"p1/2026/03/01/{correlation}"
    clients.container(Container.RAW).upload_blob(name, data, overwrite=True, metadata=metadata)
    envelope = Envelope(
        correlation_id=correlation,
        partner="p1",
        kind=EnvelopeKind.RAW_RECEIVED,
        blob=BlobRef(container=Container.RAW, name=name),
    )
    clients.queue_client(Queue.NORMALIZE).send_message(envelope.to_bytes())


def _status(clients: StorageClients, correlation: str) -> dict[str, Any] | None:
    row = TableIngestionLog(clients.table_client(Table.INGESTIONS)).get("p1", correlation)
    return row if row and "normalize_status" in row else None


def _blobs(clients: StorageClients, container: Container, prefix: str) -> list[str]:
    return [b.name for b in clients.container(container).list_blobs(name_starts_with=prefix)]


def test_hl7_payload_becomes_a_bundle_and_goes_to_consent_check(stack) -> None:  # type: ignore[no-untyped-def]
    _, clients = stack
    _submit(clients, "ing-hl7", ORU.encode(), format="hl7v2")
    status = wait_for(lambda: _status(clients, "ing-hl7"), what="normalize status")
    assert status["normalize_status"] == "normalized"
    assert (status["normalize_records"], status["normalize_rejected"]) == (1, 0)
    (name,) = [
        n
        for n in _blobs(clients, Container.NORMALIZED, "p1/")
        if "ing-hl7" in n and not n.endswith(".permitted.json")
    ]
    bundle = json.loads(clients.container(Container.NORMALIZED).download_blob(name).readall())
    get_fhir_model_class("Bundle").model_validate(bundle)
    obs = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    )
    assert obs["effectiveDateTime"] == "2026-03-01T08:00:00-05:00"  # the partner's time zone
    assert status["normalize_resources"] == len(bundle["entry"])
    # consent-check took it (no consent on file; the default opt-out policy permits
    # treatment), and the store stage put it in the record and announced it on notify.
    stored = wait_for(
        lambda: (r := _status(clients, "ing-hl7")) and "store_status" in r and r,
        what="store status",
    )
    assert stored["consent_status"] == "permitted"
    assert stored["store_created"] == len(bundle["entry"])  # Provenance included
    peeked = clients.queue_client(Queue.NOTIFY).peek_messages(max_messages=32)
    changed = [Envelope.from_bytes(m.content) for m in peeked]
    assert [(e.kind, e.correlation_id) for e in changed] == [
        (EnvelopeKind.RESOURCES_CHANGED, "ing-hl7")  # one message for the Bundle's changes
    ]
    named = {(c.type, c.id, c.version) for c in changed[0].changes or ()}
    assert ("Observation", obs["id"], 1) in named and len(named) == len(bundle["entry"])


def test_unreadable_payload_is_quarantined_with_its_outcome(stack) -> None:  # type: ignore[no-untyped-def]
    _, clients = stack
    _submit(clients, "ing-bad", b"PID|1||no header here", format="hl7v2")
    status = wait_for(lambda: _status(clients, "ing-bad"), what="rejection status")
    assert status["normalize_status"] == "rejected"
    issues = json.loads(status["normalize_issues"])
    assert issues[0]["location"] == ["MSH"]
    names = _blobs(clients, Container.QUARANTINE, "p1/")
    held = [n for n in names if "ing-bad" in n]
    assert held and held[0].endswith("/payload.json")
    record = json.loads(clients.container(Container.QUARANTINE).download_blob(held[0]).readall())
    assert record["outcome"]["resourceType"] == "OperationOutcome"
    assert record["raw"]["name"].endswith("ing-bad")
    assert not [n for n in _blobs(clients, Container.NORMALIZED, "p1/") if "ing-bad" in n]


def test_ndjson_with_a_bad_line_goes_through_partially(stack) -> None:  # type: ignore[no-untyped-def]
    _, clients = stack
    good = {"resourceType": "Patient", "id": "a", "gender": "female"}
    data = "\n".join([json.dumps(good), '{"resourceType": "Patient", "gender": "F"}']).encode()
    _submit(clients, "ing-ndjson", data, format="fhir")
    status = wait_for(lambda: _status(clients, "ing-ndjson"), what="partial status")
    assert status["normalize_status"] == "partial"
    assert (status["normalize_records"], status["normalize_rejected"]) == (2, 1)
    held = [n for n in _blobs(clients, Container.QUARANTINE, "") if "ing-ndjson" in n]
    assert len(held) == 1 and held[0].endswith("record-00001.json")


def test_csv_with_its_mapping(stack) -> None:  # type: ignore[no-untyped-def]
    _, clients = stack
    data = (REPO / "docs" / "samples" / "rpm-vitals.csv").read_bytes()
    _submit(clients, "ing-csv", data, format="csv", mapping="rpm-vitals")
    status = wait_for(lambda: _status(clients, "ing-csv"), what="csv status")
    assert status["normalize_status"] == "normalized"
    assert status["normalize_records"] == 4


def test_an_unreadable_envelope_ends_in_poison_not_lost(stack) -> None:  # type: ignore[no-untyped-def]
    _, clients = stack
    clients.queue_client(Queue.NORMALIZE).send_message(b'{"version": 9}')
    poison = clients.queue_client(poison_queue(Queue.NORMALIZE))

    def poisoned() -> list[Any]:
        try:
            return list(poison.peek_messages(max_messages=5))
        except ResourceNotFoundError:
            return []

    (kept,) = wait_for(poisoned, timeout=60, what="poisoned envelope")
    assert kept.content == b'{"version": 9}'
