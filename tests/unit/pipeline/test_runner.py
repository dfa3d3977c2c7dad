"""The one queue runner: decode once, run, and one failure policy for every stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.pipeline.journey import StageReport
from shared.pipeline.runner import MAX_DEQUEUE_COUNT, QueueStage, run
from shared.platform.envelope import Envelope, EnvelopeKind
from shared.platform.errors import EnvelopeError, IntakeError, StorageUnavailableError
from shared.platform.names import Queue

REPO = Path(__file__).resolve().parents[3]
BODY = Envelope(correlation_id="ing-1", partner="p1", kind=EnvelopeKind.RAW_RECEIVED).to_bytes()


class Journey:
    def __init__(self, fails: bool = False) -> None:
        self.reports: list[tuple[str, str, StageReport]] = []
        self.fails = fails

    def record(self, partner: str, correlation_id: str, report: StageReport) -> None:
        if self.fails:
            raise StorageUnavailableError("down")
        self.reports.append((partner, correlation_id, report))

    def get(self, partner: str, correlation_id: str) -> None:
        return None


class Permanent(IntakeError):
    retryable = False


def stage(handle, give_up=None, journey: bool = True) -> QueueStage[Envelope]:  # type: ignore[no-untyped-def]
    return QueueStage("normalize", Queue.NORMALIZE, Envelope.from_bytes, handle, give_up, journey)


def test_a_message_is_decoded_once_and_handled() -> None:
    seen: list[Envelope] = []
    journey = Journey()
    run(stage(seen.append), BODY, 1, journey)
    assert [e.correlation_id for e in seen] == ["ing-1"] and journey.reports == []


def test_a_failure_is_noted_on_the_journey_and_raised_for_the_queue_to_retry() -> None:
    def fail(_: Envelope) -> None:
        raise StorageUnavailableError("storage is down")

    journey = Journey()
    with pytest.raises(StorageUnavailableError):
        run(stage(fail), BODY, 3, journey)
    [(partner, correlation, report)] = journey.reports
    assert (partner, correlation, report.stage, report.outcome) == (
        "p1",
        "ing-1",
        "normalize",
        "failed",
    )
    assert "attempt 3 failed (StorageUnavailableError)" in report.issues[0]["diagnostics"]
    assert "storage is down" not in json.dumps(report.issues)  # the type, never the text
    # A bug is noted the same way; a journey that cannot be written does not hide it.
    with pytest.raises(ZeroDivisionError):
        run(stage(lambda _: 1 / 0), BODY, 1, Journey(fails=True))


def test_give_up_settles_a_permanent_error_or_the_last_attempt() -> None:
    given: list[str] = []

    def give_up(envelope: Envelope, error: IntakeError) -> None:
        given.append(type(error).__name__)

    def permanent(_: Envelope) -> None:
        raise Permanent("no")

    def transient(_: Envelope) -> None:
        raise StorageUnavailableError("down")

    run(stage(permanent, give_up), BODY, 1, Journey())
    with pytest.raises(StorageUnavailableError):  # not yet the last: retried
        run(stage(transient, give_up), BODY, MAX_DEQUEUE_COUNT - 1, Journey())
    run(stage(transient, give_up), BODY, MAX_DEQUEUE_COUNT, Journey())
    assert given == ["Permanent", "StorageUnavailableError"]


def test_an_unreadable_body_raises_and_one_not_ours_is_dropped() -> None:
    with pytest.raises(EnvelopeError):
        run(stage(lambda _: None), b"not an envelope", 1, Journey())
    handled: list[object] = []
    ignored = QueueStage("drop", Queue.BLOB_CREATED, lambda _: None, handled.append)
    run(ignored, b"{}", 1, Journey())
    assert handled == []


def test_a_message_that_is_no_ingestions_leaves_no_journey_note() -> None:
    journey = Journey()
    with pytest.raises(StorageUnavailableError):
        run(
            stage(lambda _: (_ for _ in ()).throw(StorageUnavailableError("x")), journey=False),
            BODY,
            1,
            journey,
        )
    assert journey.reports == []


def test_the_last_attempt_is_the_hosts_max_dequeue_count() -> None:
    host = json.loads((REPO / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == MAX_DEQUEUE_COUNT
