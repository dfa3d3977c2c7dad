"""What a write does to a resource's versions: idempotent, ordered by source time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.records import CurrentVersion, WriteOutcome, content_hash, plan_write
from shared.records.stage import message_source_time, receipt_time

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
OBS = {"resourceType": "Observation", "id": "o1", "status": "final", "valueQuantity": {"value": 72}}


def _current(digest: str, at: datetime = T0, deleted: bool = False) -> CurrentVersion:
    return CurrentVersion(
        version=3,
        latest=4,
        source_time=at,
        content_hash=digest,
        recent_hashes=("old",),
        patients=("Patient/p1",),
        deleted=deleted,
        correlation_id="ing-1",
        etag="W/1",
    )


def test_the_hash_ignores_what_the_store_sets_but_not_what_the_sender_said() -> None:
    stored = {**OBS, "meta": {"versionId": "3", "lastUpdated": "2026-03-01T08:00:00Z"}}
    assert content_hash(stored) == content_hash(OBS)
    labelled = {**OBS, "meta": {"security": [{"code": "R"}]}}
    assert content_hash(labelled) != content_hash(OBS)
    assert content_hash({**OBS, "status": "amended"}) != content_hash(OBS)


def test_first_write_creates_and_the_same_content_changes_nothing() -> None:
    digest = content_hash(OBS)
    assert plan_write(None, digest, T0) is WriteOutcome.CREATED
    assert plan_write(_current(digest), digest, T0 + timedelta(hours=1)) is WriteOutcome.UNCHANGED
    assert plan_write(_current("x"), "old", T0) is WriteOutcome.UNCHANGED  # already in history


def test_newer_content_updates_and_older_content_goes_to_history_only() -> None:
    assert plan_write(_current("x"), "y", T0) is WriteOutcome.UPDATED  # same time: later wins
    assert plan_write(_current("x"), "y", T0 + timedelta(seconds=1)) is WriteOutcome.UPDATED
    assert plan_write(_current("x"), "y", T0 - timedelta(seconds=1)) is WriteOutcome.OUT_OF_ORDER


def test_deletes() -> None:
    assert plan_write(None, "d", T0, delete=True) is WriteOutcome.UNCHANGED  # nothing to delete
    assert plan_write(_current("x"), "d", T0, delete=True) is WriteOutcome.DELETED
    late = plan_write(_current("x"), "d", T0 - timedelta(days=1), delete=True)
    assert late is WriteOutcome.OUT_OF_ORDER
    gone = _current("x", deleted=True)
    assert plan_write(gone, "d", T0, delete=True) is WriteOutcome.UNCHANGED
    assert plan_write(gone, "x", T0 + timedelta(days=1)) is WriteOutcome.CREATED  # back again


def test_source_time_comes_from_the_provenance() -> None:
    received = datetime(2026, 3, 2, tzinfo=UTC)
    said = {
        "resourceType": "Provenance",
        "occurredDateTime": "2026-03-01T08:00:00-05:00",
        "recorded": "2026-03-01T14:00:00Z",
    }
    assert message_source_time({"entry": [{"resource": said}]}, received) == (
        datetime(2026, 3, 1, 13, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 14, 0, tzinfo=UTC),  # when we received it: Provenance.recorded
    )
    recorded = {k: v for k, v in said.items() if k != "occurredDateTime"}
    assert message_source_time({"entry": [{"resource": recorded}]}, received) == (
        datetime(2026, 3, 1, 14, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 14, 0, tzinfo=UTC),
    )
    assert message_source_time({"entry": []}, received) == (received, received)


def test_equal_source_times_are_ordered_by_receipt_whatever_order_the_store_sees() -> None:
    # A01, A08 and A03 sent within one second share MSH-7: the one received later wins.
    current = CurrentVersion(
        version=3,
        latest=4,
        source_time=T0,
        content_hash="a03",
        recent_hashes=(),
        patients=(),
        deleted=False,
        correlation_id="ing-3",
        etag="W/1",
        received=T0 + timedelta(milliseconds=30),
    )
    earlier = T0 + timedelta(milliseconds=20)
    later = T0 + timedelta(milliseconds=40)
    assert plan_write(current, "a08", T0, received=earlier) is WriteOutcome.OUT_OF_ORDER
    assert plan_write(current, "a08", T0, received=later) is WriteOutcome.UPDATED
    assert plan_write(current, "d", T0, delete=True, received=earlier) is WriteOutcome.OUT_OF_ORDER
    # The source's own time still comes first, and a row without a receipt time (written
    # before it was kept) lets the later write win, as it did.
    assert plan_write(current, "a08", T0 + timedelta(seconds=1), received=earlier) is (
        WriteOutcome.UPDATED
    )
    assert plan_write(_current("x"), "y", T0, received=earlier) is WriteOutcome.UPDATED


def test_the_receipt_time_is_our_provenances_not_one_the_partner_wrote() -> None:
    ours = {
        "resourceType": "Provenance",
        "recorded": "2026-03-01T10:15:00.123Z",
        "entity": [{"what": {"identifier": {"system": "urn:fhir-intake:partner:p1:message"}}}],
    }
    theirs = {"resourceType": "Provenance", "recorded": "2026-03-01T09:00:00Z", "entity": []}
    bundle = {"entry": [{"resource": theirs}, {"resource": ours}]}
    assert receipt_time(bundle, "p1") == datetime(2026, 3, 1, 10, 15, 0, 123000, tzinfo=UTC)
    assert receipt_time(bundle, "p2") is None  # another partner's naming does not count
    assert receipt_time({"entry": [{"resource": theirs}]}, "p1") is None
    # Found by a hostile review: a partner's FHIR Bundle named its own Provenance with
    # our identifier and a far-future time, ahead of ours, to pin its versions for ever.
    forged = {**ours, "recorded": "9999-12-31T00:00:00Z"}
    hostile = {"entry": [{"resource": forged}, {"resource": ours}]}
    assert receipt_time(hostile, "p1") == datetime(2026, 3, 1, 10, 15, 0, 123000, tzinfo=UTC)
    last_forged = {"entry": [{"resource": ours}, {"resource": forged}]}
    bound = datetime(2026, 3, 1, 10, 16, tzinfo=UTC)  # when the stage got the Bundle
    assert receipt_time(last_forged, "p1", bound) == bound
