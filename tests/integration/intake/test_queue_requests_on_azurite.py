"""The intake-requests service on Azurite: a submission that cannot be stored now is
retried by the queue (never parked as refused), and its last attempt leaves a report."""

from __future__ import annotations

import json

import pytest

from shared import wiring
from shared.intake.errors import SubmissionInProgressError
from shared.intake.models import Receipt, Submission
from shared.intake.queue_requests import QueueIntake
from shared.platform.names import Container, Queue, poison_queue
from shared.platform.provision import provision_storage
from shared.platform.storage import StorageClients
from shared.security import Partner

pytestmark = pytest.mark.azurite

PARTNER = Partner(id="orders", name="Orders", queue_intake=True)
REQUEST = json.dumps(
    {"partner": "orders", "content_type": "x-application/hl7-v2+er7", "payload": "MSH|x"}
).encode()


class _Busy:
    """A submission service that always finds the same submission in progress."""

    def submit(self, partner: Partner, submission: Submission) -> Receipt:
        raise SubmissionInProgressError("being stored by another request")


class _Partners:
    def get(self, partner_id: str) -> Partner | None:
        return PARTNER if partner_id == PARTNER.id else None


@pytest.fixture
def clients(storage_env: dict[str, str]) -> StorageClients:
    storage = wiring.storage()
    provision_storage(storage)
    return storage


def _reports(clients: StorageClients) -> list[dict[str, object]]:
    reports = clients.container(Container.REPORTS)
    return [
        json.loads(reports.download_blob(b.name).readall())
        for b in reports.list_blobs(name_starts_with="intake-requests/")
    ]


def test_a_submission_in_progress_is_retried_and_reported_only_on_the_last_attempt(
    clients: StorageClients,
) -> None:
    # The review's reproduction: the same message twice in one batch parked the second
    # in the poison queue as a permanent "conflict".
    intake = QueueIntake(clients, _Busy(), _Partners())
    for attempt in (1, 2, 3, 4):
        with pytest.raises(SubmissionInProgressError):
            intake.handle(REQUEST, f"m-{attempt}", attempt)
    assert _reports(clients) == []
    poison = clients.queue_client(poison_queue(Queue.INTAKE_REQUESTS))
    assert list(poison.peek_messages()) == []  # the runtime, not we, parks it after the 5th
    with pytest.raises(SubmissionInProgressError):
        intake.handle(REQUEST, "m-5", 5)
    (report,) = _reports(clients)
    issue = report["outcome"]["issue"][0]  # type: ignore[index]
    assert issue["code"] == "transient" and "attempt 5 failed" in issue["diagnostics"]
    assert "MSH|x" not in json.dumps(report)
