"""The store stage on in-memory fakes: what is written, counted and announced."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.intake.status import StageReport
from shared.normalize import json_codec
from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.names import Container, Queue
from shared.records import Change, WriteOutcome, content_hash
from shared.records.stage import StoreStage


class Store:
    """Versions by content, as the real store decides them (no source-time ordering)."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, str, str, bool]] = {}  # ref -> version, hash, corr, deleted
        self.listed: list[str] = []

    def put(
        self,
        resource: Mapping[str, Any],
        source_time: datetime,
        patient: str | None,
        delete: bool = False,
        correlation_id: str = "",
    ) -> Change:
        ref = f"{resource['resourceType']}/{resource['id']}"
        digest = content_hash(resource)
        version, held, corr, deleted = self.rows.get(ref, (0, "", "", False))
        if (held == digest and not delete) or (delete and (deleted or not version)):
            outcome, version = WriteOutcome.UNCHANGED, version
        else:
            outcome = (
                WriteOutcome.DELETED
                if delete
                else (WriteOutcome.UPDATED if version else WriteOutcome.CREATED)
            )
            version, corr = version + 1, correlation_id
            self.rows[ref] = (version, digest, corr, delete)
        kind, ident = ref.split("/")
        return Change(
            kind,
            ident,
            version,
            outcome,
            f"{ref}/_history/{version}.json",
            patient,
            corr,
            compartment=patient if not delete else None,
        )

    def list_in_compartments(self, changes: Iterable[Change], ingestion: Any = None) -> None:
        self.listed += [c.reference for c in changes if c.compartment]
        self.ingestion = ingestion

    def index_identifiers(self, patients: Iterable[Mapping[str, Any]]) -> None:
        self.identified = [p["id"] for p in patients]


class Recorder:
    def __init__(self, bundle: dict[str, Any]) -> None:
        self.bundle = bundle
        self.sent: list[Envelope] = []
        self.reports: list[StageReport] = []

    def read(self, ref: BlobRef) -> tuple[bytes, dict[str, str], str | None]:
        return json_codec.dumps(self.bundle).encode(), {}, None

    def write(self, *args: Any, **kwargs: Any) -> BlobRef:
        raise AssertionError("the store stage writes through the record store only")

    def send(self, queue: Queue, envelope: Envelope, delay: int = 0) -> None:
        assert queue is Queue.NOTIFY
        self.sent.append(envelope)

    def record(self, partner: str, correlation_id: str, report: StageReport) -> None:
        self.reports.append(report)

    def get(self, partner: str, correlation_id: str) -> None:
        return None


PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}
OBS = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"text": "hr"},
    "subject": {"reference": "Patient/p1"},
}
BUNDLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {"resource": PATIENT, "request": {"method": "PUT", "url": "Patient/p1"}},
        {"resource": OBS, "request": {"method": "PUT", "url": "Observation/o1"}},
        {"request": {"method": "DELETE", "url": "Observation/o0"}},
    ],
}


def _run(store: Store, correlation: str, bundle: dict[str, Any] = BUNDLE) -> Recorder:
    rec = Recorder(bundle)
    stage = StoreStage(rec, rec, rec, store)  # type: ignore[arg-type]
    stage.handle(
        Envelope(
            correlation_id=correlation,
            partner="p1",
            kind=EnvelopeKind.BUNDLE_PERMITTED,
            blob=BlobRef(container="normalized", name="b.json"),
            created=datetime(2026, 3, 1, tzinfo=UTC),
        )
    )
    return rec


def test_new_resources_are_stored_listed_and_announced() -> None:
    store = Store()
    rec = _run(store, "ing-1")
    assert rec.reports[-1].counts == {
        "created": 2,
        "updated": 0,
        "unchanged": 1,
        "out_of_order": 0,
        "deleted": 0,
    }
    assert sorted(store.listed) == ["Observation/o1", "Patient/p1"]
    assert (store.ingestion.correlation_id, store.ingestion.quarantine) == ("ing-1", "b.json")
    assert [e.blob.name for e in rec.sent if e.blob] == [
        "Patient/p1/_history/1.json",
        "Observation/o1/_history/1.json",
    ]
    assert all(
        e.kind is EnvelopeKind.RESOURCE_CHANGED and e.correlation_id == "ing-1" for e in rec.sent
    )
    assert all(e.blob and e.blob.container == Container.FHIR.value for e in rec.sent)


def test_a_retry_announces_again_but_another_ingestion_of_the_same_data_does_not() -> None:
    store = Store()
    _run(store, "ing-1")
    retried = _run(store, "ing-1")  # e.g. the host died before the notify messages went out
    assert len(retried.sent) == 2 and retried.reports[-1].counts["unchanged"] == 3
    resent = _run(store, "ing-2")  # the partner sent the same message again
    assert resent.sent == []


def test_an_update_and_a_delete_are_announced() -> None:
    store = Store()
    _run(store, "ing-1")
    changed = {
        **BUNDLE,
        "entry": [
            {
                "resource": {**OBS, "status": "amended"},
                "request": {"method": "PUT", "url": "Observation/o1"},
            },
            {"request": {"method": "DELETE", "url": "Patient/p1"}},
        ],
    }
    rec = _run(store, "ing-3", changed)
    counts = rec.reports[-1].counts
    assert (counts["updated"], counts["deleted"]) == (1, 1)
    assert [e.blob.name for e in rec.sent if e.blob] == [
        "Observation/o1/_history/2.json",
        "Patient/p1/_history/2.json",
    ]


def test_a_wrong_envelope_is_reported_not_stored() -> None:
    store = Store()
    rec = Recorder(BUNDLE)
    StoreStage(rec, rec, rec, store).handle(  # type: ignore[arg-type]
        Envelope(correlation_id="x", partner="p1", kind=EnvelopeKind.RAW_RECEIVED)
    )
    assert rec.reports[-1].outcome == "rejected" and store.rows == {}
