"""Storage goes away mid-run and comes back: callers get 503 with Retry-After while it is
gone (never a 202 for data that was not stored), the host recovers by itself, and every
message that was accepted ends in the record.

Runs its own Azurite (stopping the session's would take every other test down with it).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bench.generate import expected_patients, hl7_mixed_records
from devhost.azurite import start_azurite, start_azurite_on_free_ports
from shared.platform.names import Queue, Table, poison_queue
from shared.platform.settings import development_connection_string
from shared.security import Partner
from tests.e2e.conftest import post_hl7, product_host, storage_with_partner
from tests.support.hostproc import REPO, wait_for

pytestmark = pytest.mark.azurite

MESSAGES = 60
OUTAGE_SECONDS = 8.0


@dataclass
class Answers:
    """What the partner saw: each answer's status and when, and what was accepted."""

    seen: list[tuple[float, int, str | None]] = field(default_factory=list)
    accepted: dict[str, float] = field(default_factory=dict)  # ingestion id -> when
    lock: threading.Lock = field(default_factory=threading.Lock)


def _post_all(base_url: str, key: str, answers: Answers) -> None:
    """Post each message until it is accepted (the same Idempotency-Key each time),
    honouring Retry-After loosely (a short sleep: the test has a clock to keep)."""
    with httpx.Client(base_url=base_url, timeout=20) as client:
        for n, message in enumerate(itertools.islice(hl7_mixed_records(42), MESSAGES)):
            while True:
                try:
                    answer = post_hl7(client, key, message, f"outage-{n}")
                except httpx.TransportError:
                    time.sleep(0.2)
                    continue
                with answers.lock:
                    answers.seen.append(
                        (time.monotonic(), answer.status_code, answer.headers.get("retry-after"))
                    )
                if answer.status_code in (200, 202):
                    with answers.lock:
                        answers.accepted[answer.json()["id"]] = time.monotonic()
                    break
                time.sleep(0.3)
            time.sleep(0.1)


@pytest.mark.timeout(600)
def test_storage_outage_gives_503s_and_loses_nothing(tmp_path: Path) -> None:
    location = tmp_path / "azurite"
    # Other ports when the ones found free are taken before Azurite binds them (CI flake).
    azurite = start_azurite_on_free_ports(REPO, location, log_file=tmp_path / "azurite.log")
    ports = azurite.ports
    env = {
        "AzureWebJobsStorage": development_connection_string(blob_port=ports[0]),
        "INTAKE_ENVIRONMENT": "development",
        "AzureWebJobs.notify.Disabled": "true",
        "AzureWebJobs.deliver.Disabled": "true",
    }
    clients, key = storage_with_partner(env, Partner(id="p1", name="Outage Lab"))
    host = product_host(tmp_path, env).start()
    answers = Answers()
    poster = threading.Thread(target=_post_all, args=(host.base_url, key, answers), daemon=True)
    try:
        poster.start()
        wait_for(lambda: len(answers.accepted) >= 10, timeout=60, what="ten messages accepted")
        down_at = time.monotonic()
        azurite.stop()
        time.sleep(OUTAGE_SECONDS)
        up_at = time.monotonic()
        azurite = start_azurite(REPO, location, ports=ports, log_file=tmp_path / "azurite2.log")
        poster.join(240)
        assert not poster.is_alive(), "the poster never got every message accepted"
        expected = expected_patients("hl7-mixed", MESSAGES, "p1", 42)
        table = clients.table_client(Table.RESOURCES)

        def stored() -> set[str]:
            rows = table.query_entities("PartitionKey eq 'Patient'", select=["RowKey"])
            return {str(row["RowKey"]) for row in rows}

        wait_for(lambda: stored() >= expected, timeout=180, interval=1, what="every Patient")
        assert host.process is not None and host.process.poll() is None  # never went down
        assert stored() == expected  # everything accepted is in the record, once
        for queue in (Queue.NORMALIZE, Queue.CONSENT_CHECK, Queue.STORE):
            parked = clients.queue_client(poison_queue(queue)).get_queue_properties()
            assert parked.approximate_message_count == 0, queue
    finally:
        host.stop()
        azurite.stop()

    # A request storage finished just before it stopped may still be answered 202 in the
    # first moment after: the window starts a second later.
    with answers.lock:
        during = [(at, code, retry) for at, code, retry in answers.seen if down_at + 1 < at < up_at]
        accepted_during = [i for i, at in answers.accepted.items() if down_at + 1 < at < up_at]
    seen = [(round(at - down_at, 1), code) for at, code, _ in answers.seen if at > down_at - 1]
    assert during, f"no answer while storage was down; seconds after the stop: {seen}"
    assert {status for _, status, _ in during} == {503}, during
    assert all(retry and int(retry) > 0 for _, _, retry in during)
    assert accepted_during == []  # never a 202 for data that could not be stored
    assert len(answers.accepted) == MESSAGES
