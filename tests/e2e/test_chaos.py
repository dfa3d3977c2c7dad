"""Fault tests: nothing accepted is lost and nothing is stored twice when the host is
killed (SIGKILL, no goodbye) at random moments while it works through a batch drop and a
stream of HTTP posts, and restarted each time.

``make test`` runs the short version (3 kills, a 1,000-record drop, 60 posts); ``make
chaos`` the long one (20 kills, 5,000 records, 300 posts), which the store stage on one
Azurite makes a matter of many minutes. ``CHAOS_KILLS``, ``CHAOS_RECORDS`` (the NDJSON
drop), ``CHAOS_POSTS`` (HL7 messages over HTTP) and ``CHAOS_SEED`` set them. The record
is checked against the generator's manifest: exactly the expected Patients, each
resource at version 1 (a message processed twice finds its content already stored), no
message left in any queue or poison queue.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.generate import expected_patients, hl7_mixed_records, ndjson_records
from shared.pipeline.journey import TableIngestionLog
from shared.platform.names import Container, Queue, Table, poison_queue
from shared.platform.storage import StorageClients
from shared.security import Partner
from tests.e2e.conftest import APPS, make_env, post_hl7, product_host, storage_with_partner
from tests.support.hostproc import wait_for

pytestmark = pytest.mark.azurite

KILLS = int(os.environ.get("CHAOS_KILLS", "3"))
RECORDS = int(os.environ.get("CHAOS_RECORDS", "1000"))
POSTS = int(os.environ.get("CHAOS_POSTS", "60"))
SEED = int(os.environ.get("CHAOS_SEED", "20261128"))
PIPELINE = (Queue.BLOB_CREATED, Queue.NORMALIZE, Queue.CONSENT_CHECK, Queue.STORE)


def _host_json(tmp: Path) -> Path:
    """The tests' fast host.json, with room for a message to be cut off by many kills
    (a kill mid-run counts as a failed delivery) before it would be parked as poison."""
    config = json.loads((APPS / "host.json").read_text())
    config["extensions"]["queues"]["maxDequeueCount"] = KILLS + 5
    path = tmp / "host.json"
    path.write_text(json.dumps(config))
    return path


class Poster(threading.Thread):
    """A partner's interface engine: posts each message until it is accepted, with the
    same Idempotency-Key on every try, across the host's deaths."""

    def __init__(self, base_url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.base_url, self.key = base_url, key
        self.accepted: dict[str, str] = {}  # idempotency key -> ingestion id
        self.refusals: list[int] = []  # statuses other than 202 before acceptance
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            # An interface engine waits for its answer: a short client time-out would only
            # pile resends onto a busy host.
            with httpx.Client(base_url=self.base_url, timeout=60) as client:
                for n, message in enumerate(itertools.islice(hl7_mixed_records(SEED), POSTS)):
                    self._post(client, f"chaos-{SEED}-{n}", message)
                    time.sleep(0.03)
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def _post(self, client: httpx.Client, idempotency: str, message: bytes) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                answer = post_hl7(client, self.key, message, idempotency)
            except httpx.TransportError:  # the host is down or died mid-request
                time.sleep(0.2)
                continue
            if answer.status_code in (200, 202):
                self.accepted[idempotency] = answer.json()["id"]
                return
            self.refusals.append(answer.status_code)
            time.sleep(0.2)
        raise AssertionError(f"{idempotency} was never accepted")


def _stored(clients: StorageClients, resource_type: str) -> dict[str, dict[str, Any]]:
    table = clients.table_client(Table.RESOURCES)
    return {
        str(row["RowKey"]): dict(row)
        for row in table.query_entities("PartitionKey eq @t", parameters={"t": resource_type})
    }


def _report(clients: StorageClients) -> dict[str, Any] | None:
    blob = clients.container(Container.REPORTS).get_blob_client("p1/chaos/batch.ndjson.report.json")
    if not blob.exists():
        return None
    report: dict[str, Any] = json.loads(blob.download_blob().readall())
    return report


def _queues_empty(clients: StorageClients) -> bool:
    return all(
        clients.queue_client(q).get_queue_properties().approximate_message_count == 0
        for q in PIPELINE
    )


@pytest.mark.timeout(1800)
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    azurite: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    env = {
        **make_env(azurite),
        "AzureWebJobs.notify.Disabled": "true",  # this test is about the record
        "AzureWebJobs.deliver.Disabled": "true",
        "INTAKE_DROP_CHUNK_RECORDS": "250",  # more chunks, more moments to die in
        "DEVHOST_QUEUE_LEASE_SECONDS": "4",  # a dead host's messages come back soon
        "INTAKE_DIRECT_DROP_PARTNERS": "p1",  # the batch is written into p1's folder directly
    }
    clients, key = storage_with_partner(env, Partner(id="p1", name="Chaos Lab"))
    host = product_host(tmp_path, env, _host_json(tmp_path)).start()
    batch = b"".join(itertools.islice(ndjson_records(SEED), RECORDS))
    clients.container(Container.INGEST_DROP).upload_blob("p1/chaos/batch.ndjson", batch)
    poster = Poster(host.base_url, key)
    poster.start()
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.0, 4.0))
            host.send(signal.SIGKILL)
            assert host.process is not None
            host.process.wait(10)
            host.start()
        poster.join(900)
        assert not poster.is_alive() and poster.error is None, poster.error
        expected = expected_patients("ndjson", RECORDS, "p1", SEED) | expected_patients(
            "hl7-mixed", POSTS, "p1", SEED
        )
        report: dict[str, Any] = wait_for(
            lambda: _report(clients), timeout=900, interval=3, what="the drop's report"
        )
        # Every ingestion (the posts and the drop's chunks) stored, then nothing queued.
        # (Azurite's queue count leaves out messages being handled, so empty queues alone
        # do not mean done; and counting the record every few seconds would slow down the
        # Azurite every stage shares.)
        pending = set(poster.accepted.values()) | set(report["ingestions"])
        journeys = TableIngestionLog(clients.table_client(Table.INGESTIONS))

        def all_stored() -> bool:
            for ingestion in list(pending):
                if (journeys.get("p1", ingestion) or {}).get("store_status") == "stored":
                    pending.discard(ingestion)
            return not pending and _queues_empty(clients)

        wait_for(all_stored, timeout=900, interval=3, what="every ingestion stored")
    finally:
        assert host.stop(timeout=300) == 0, host.logs()[-5000:]

    patients = _stored(clients, "Patient")
    assert set(patients) == expected  # none lost, none extra
    observations = _stored(clients, "Observation")
    assert len(observations) == RECORDS // 2 + POSTS // 3 + (POSTS % 3 >= 2)
    assert len(_stored(clients, "Encounter")) == (POSTS + 2) // 3
    assert len(_stored(clients, "Immunization")) == POSTS // 3
    for resource_type in ("Patient", "Observation", "Encounter", "Immunization", "Provenance"):
        versions = {row["latest"] for row in _stored(clients, resource_type).values()}
        assert versions == {1}, f"{resource_type} stored more than once: {versions}"
    assert len(poster.accepted) == POSTS
    assert len(set(poster.accepted.values())) == POSTS  # one ingestion per message
    for queue in (*PIPELINE, *(poison_queue(q) for q in PIPELINE)):
        assert clients.queue_client(queue).get_queue_properties().approximate_message_count == 0
    assert report["records"] == RECORDS and report["status"] == "processed"
