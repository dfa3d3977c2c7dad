"""Provisioning, health probes and the envelope on a real Azurite."""

from __future__ import annotations

import time

import pytest

from shared import wiring
from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.health import ProbeStatus, check_health
from shared.platform.names import LOCAL_ONLY_TABLES, Container, Queue, Table, poison_queue
from shared.platform.provision import provision_storage
from shared.platform.settings import Settings, development_connection_string
from shared.platform.storage import build_storage_clients

pytestmark = pytest.mark.azurite


def test_provision_creates_every_named_resource_and_is_idempotent(storage_env) -> None:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    expected = len(Container) + 2 * len(Queue) + len(Table)
    assert provision_storage(clients) == expected
    assert provision_storage(clients) == expected  # second run: nothing fails
    prefix = storage_env["INTAKE_STORAGE_PREFIX"]
    containers = {c.name for c in clients.blob.list_containers(name_starts_with=prefix)}
    queues = {q.name for q in clients.queue.list_queues(name_starts_with=prefix)}
    tables = {
        t.name
        for t in clients.table.query_tables(f"TableName ge '{prefix}' and TableName lt '{prefix}~'")
    }
    assert containers == {f"{prefix}-{c}" for c in Container}
    assert queues == {f"{prefix}-{q}" for q in Queue} | {
        f"{prefix}-{poison_queue(q)}" for q in Queue
    }
    assert tables == {f"{prefix}{t}" for t in Table}


def test_provision_for_azure_leaves_out_local_only_tables(storage_env) -> None:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    provision_storage(clients, local=False)
    prefix = storage_env["INTAKE_STORAGE_PREFIX"]
    tables = {
        t.name
        for t in clients.table.query_tables(f"TableName ge '{prefix}' and TableName lt '{prefix}~'")
    }
    assert tables == {f"{prefix}{t}" for t in Table if t not in LOCAL_ONLY_TABLES}


def test_health_reports_missing_then_ok(storage_env) -> None:  # type: ignore[no-untyped-def]
    report = wiring.health()
    assert report.status is ProbeStatus.MISSING and not report.healthy
    provision_storage(wiring.storage())
    report = wiring.health()
    assert report.healthy
    assert {name: probe.status for name, probe in report.storage.items()} == {
        "blob": ProbeStatus.OK,
        "queue": ProbeStatus.OK,
        "table": ProbeStatus.OK,
    }


def test_health_answers_fast_when_storage_is_down() -> None:
    # A port where nothing listens: every probe fails at once, none retries.
    settings = Settings(AzureWebJobsStorage=development_connection_string(blob_port=1))  # type: ignore[call-arg]
    clients = build_storage_clients(settings, retry_total=0, connection_timeout=2)
    started = time.monotonic()
    report = check_health(clients)
    assert time.monotonic() - started < 5
    assert report.status is ProbeStatus.UNREACHABLE
    assert all(p.status is ProbeStatus.UNREACHABLE for p in report.storage.values())
    assert all(p.error and "Key" not in p.error for p in report.storage.values())


def test_envelope_survives_a_base64_queue_round_trip(storage_env) -> None:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    provision_storage(clients)
    queue = clients.queue_client(Queue.NORMALIZE)
    sent = Envelope(
        correlation_id="c-1",
        partner="demo-partner",
        kind=EnvelopeKind.RAW_RECEIVED,
        blob=BlobRef(container=Container.RAW, name="demo-partner/x.hl7"),
    )
    queue.send_message(sent.to_bytes())
    (message,) = list(queue.receive_messages(max_messages=1))
    assert Envelope.from_bytes(message.content) == sent


def test_poison_depths_count_what_waits_in_each_poison_queue(storage_env) -> None:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    # Before provisioning the queues do not exist: nothing waits.
    assert set(wiring.poison_depths().values()) == {0}
    provision_storage(clients)
    for body in (b"a", b"b", b"c"):
        clients.queue_client(poison_queue(Queue.STORE)).send_message(body)
    clients.queue_client(poison_queue(Queue.DELIVER)).send_message(b"d")
    clients.queue_client(Queue.NORMALIZE).send_message(b"not poison")
    depths = wiring.poison_depths()
    assert set(depths) == {poison_queue(q) for q in Queue}
    assert {name: n for name, n in depths.items() if n} == {"store-poison": 3, "deliver-poison": 1}
