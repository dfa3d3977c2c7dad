"""Submission claims on Azurite: one request at a time stores a submission, an abandoned
claim is taken over by exactly one resend (or the sweeper), and none is stored twice."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from shared import wiring
from shared.intake.errors import SubmissionInProgressError
from shared.intake.models import Submission
from shared.intake.submissions import CLAIM_LEASE, SubmissionService
from shared.pipeline.journey import TableIngestionLog
from shared.platform.names import Container, Queue, Table
from shared.platform.provision import provision_storage
from shared.platform.storage import StorageClients
from shared.security import Partner

pytestmark = pytest.mark.azurite

PARTNER = Partner(id="lab-c", name="Claims Lab")
MESSAGE = b"MSH|^~\\&|S|F|R|RF|20260301101500||ADT^A01|CL-1|P|2.5.1\rPID|1||M1^^^H^MR\r"


@pytest.fixture
def clients(storage_env: dict[str, str]) -> StorageClients:
    storage = wiring.storage()
    provision_storage(storage)
    return storage


def _service(clients: StorageClients) -> SubmissionService:
    return SubmissionService(
        clients,
        TableIngestionLog(clients.table_client(Table.INGESTIONS)),
        max_bytes=1 << 20,
        max_decompressed=1 << 20,
        dedup_window=timedelta(hours=1),
    )


def _abandon(
    clients: StorageClients,
    message: bytes,
    ago: timedelta,
    leased_for: timedelta = CLAIM_LEASE,
    blob: str = f"{PARTNER.id}/x.hl7",
) -> str:
    """A claim as a request that crashed ``ago`` would have left it: not done, leased
    until ``leased_for`` after it began."""
    key = f"sha-{hashlib.sha256(message).hexdigest()}"
    created = datetime.now(UTC) - ago
    clients.table_client(Table.IDEMPOTENCY).create_entity(
        {
            "PartitionKey": PARTNER.id,
            "RowKey": key,
            "ingestion_id": "abandoned-1",
            "created": created,
            "raw_blob": blob,
            "stored": False,
            "lease_until": created + leased_for,
        }
    )
    return key


def _queued(clients: StorageClients) -> int:
    return sum(1 for _ in clients.queue_client(Queue.NORMALIZE).peek_messages(max_messages=32))


def test_a_resend_within_the_lease_is_told_to_come_back(clients: StorageClients) -> None:
    _abandon(clients, MESSAGE, timedelta(seconds=1))
    with pytest.raises(SubmissionInProgressError) as busy:
        _service(clients).submit(PARTNER, Submission(MESSAGE, "x-application/hl7-v2+er7"))
    assert busy.value.status == 409 and 1 <= busy.value.retry_after <= 15
    assert _queued(clients) == 0


def test_an_abandoned_claim_is_taken_over_by_one_of_several_resends(
    clients: StorageClients,
) -> None:
    # The review's reproduction: two resends of a claim left by a crash both resumed it
    # and enqueued it twice.
    message = MESSAGE.replace(b"CL-1", b"CL-2")
    _abandon(clients, message, CLAIM_LEASE + timedelta(seconds=5))

    def resend(_: int) -> str:
        try:
            receipt = _service(clients).submit(
                PARTNER, Submission(message, "x-application/hl7-v2+er7")
            )
        except SubmissionInProgressError:
            return "busy"
        return receipt.ingestion_id

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(resend, range(4)))
    assert outcomes.count("abandoned-1") >= 1, outcomes  # the same ingestion, resumed
    assert set(outcomes) <= {"abandoned-1", "busy"}
    assert _queued(clients) == 1  # enqueued once


def test_the_sweeper_leaves_a_leased_claim_alone_and_finishes_or_drops_abandoned_ones(
    clients: StorageClients,
) -> None:
    old = timedelta(minutes=5)
    busy = _abandon(clients, MESSAGE.replace(b"CL-1", b"CL-3"), old, leased_for=old + CLAIM_LEASE)
    empty = _abandon(clients, MESSAGE.replace(b"CL-1", b"CL-4"), old)
    stored_blob = f"{PARTNER.id}/2026/03/01/swept.hl7"
    clients.container(Container.RAW).upload_blob(stored_blob, MESSAGE)
    stored = _abandon(clients, MESSAGE.replace(b"CL-1", b"CL-5"), old, blob=stored_blob)
    result = _service(clients).sweep(timedelta(minutes=2))
    assert (result.resumed, result.dropped) == (1, 1)
    table = clients.table_client(Table.IDEMPOTENCY)
    assert table.get_entity(PARTNER.id, busy)["stored"] is False  # its holder finishes it
    assert not list(table.query_entities("RowKey eq @k", parameters={"k": empty}))
    assert table.get_entity(PARTNER.id, stored)["stored"] is True
    assert _queued(clients) == 1
