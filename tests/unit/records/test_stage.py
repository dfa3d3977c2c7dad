"""The store stage on in-memory fakes: what is written, counted and announced."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.normalize import json_codec
from shared.pipeline.journey import StageReport
from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.names import Queue
from shared.records import Change, WriteOutcome, content_hash
from shared.records.stage import StoreStage


class Store:
    """Versions by content, as the real store decides them (no source-time ordering), and
    the partner each resource belongs to."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, str, str, bool]] = {}  # ref -> version, hash, corr, deleted
        self.listed: list[str] = []
        self.owners: dict[str, str] = {}
        self.written: dict[str, tuple[Mapping[str, Any], datetime, tuple[str, ...]]] = {}

    def put(
        self,
        resource: Mapping[str, Any],
        source_time: datetime,
        patients: tuple[str, ...],
        delete: bool = False,
        correlation_id: str = "",
        source: str = "",
        received: datetime | None = None,
    ) -> Change:
        ref = f"{resource['resourceType']}/{resource['id']}"
        kind, ident = ref.split("/")
        if self.owners.setdefault(ref, source) != source:
            return Change(kind, ident, 1, WriteOutcome.FOREIGN, "", patients, "", source=source)
        self.written[ref] = (resource, source_time, patients)
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
        return Change(
            kind,
            ident,
            version,
            outcome,
            f"{ref}/_history/{version}.json",
            patients,
            corr,
            compartments=patients if not delete else (),
            source=source,
        )

    def list_in_compartments(self, changes: Iterable[Change], ingestion: Any = None) -> None:
        self.listed += [c.reference for c in changes if c.compartments]
        self.ingestion = ingestion


class Linker:
    def __init__(self) -> None:
        self.linked: list[tuple[str, str]] = []

    def link(self, patient: Mapping[str, Any], partner_id: str, correlation_id: str) -> int:
        self.linked.append((str(patient["id"]), partner_id))
        return 0


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


def _changes(envelope: Envelope) -> list[tuple[object, ...]]:
    """What a resources.changed message names, sorted."""
    assert envelope.changes is not None
    return sorted((c.type, c.id, c.version, c.event, c.patients) for c in envelope.changes)


def _run(
    store: Store,
    correlation: str,
    bundle: dict[str, Any] = BUNDLE,
    partner: str = "p1",
    linker: Linker | None = None,
) -> Recorder:
    rec = Recorder(bundle)
    stage = StoreStage(rec, rec, rec, store, linker or Linker())  # type: ignore[arg-type]
    stage.handle(
        Envelope(
            correlation_id=correlation,
            partner=partner,
            kind=EnvelopeKind.BUNDLE_PERMITTED,
            blob=BlobRef(container="normalized", name="b.json"),
            created=datetime(2026, 3, 1, 12, tzinfo=UTC),  # the store's hop, after receipt
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
        "foreign": 0,
    }
    assert sorted(store.listed) == ["Observation/o1", "Patient/p1"]
    # Each resource is in its patient's compartment, and says which partner sent it.
    assert store.written["Observation/o1"][2] == ("Patient/p1",)
    assert store.written["Patient/p1"][0]["meta"]["source"] == "urn:fhir-intake:partner:p1"
    assert (store.ingestion.correlation_id, store.ingestion.quarantine) == ("ing-1", "b.json")
    [sent] = rec.sent  # one message names every change of the Bundle
    assert (sent.kind, sent.version, sent.correlation_id) == (
        EnvelopeKind.RESOURCES_CHANGED,
        2,
        "ing-1",
    )
    assert _changes(sent) == [
        ("Observation", "o1", 1, "created", ("Patient/p1",)),
        ("Patient", "p1", 1, "created", ("Patient/p1",)),
    ]


def test_a_retry_announces_again_but_another_ingestion_of_the_same_data_does_not() -> None:
    store = Store()
    _run(store, "ing-1")
    retried = _run(store, "ing-1")  # e.g. the host died before the notify message went out
    assert retried.reports[-1].counts["unchanged"] == 3
    # Announced again, without an event: the versions' own metadata says which it was.
    assert _changes(retried.sent[0]) == [
        ("Observation", "o1", 1, None, ("Patient/p1",)),
        ("Patient", "p1", 1, None, ("Patient/p1",)),
    ]
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
    assert _changes(rec.sent[0]) == [
        ("Observation", "o1", 2, "updated", ("Patient/p1",)),
        ("Patient", "p1", 2, "deleted", ("Patient/p1",)),
    ]


def test_a_wrong_envelope_is_reported_not_stored() -> None:
    store = Store()
    rec = Recorder(BUNDLE)
    StoreStage(rec, rec, rec, store, Linker()).handle(  # type: ignore[arg-type]
        Envelope(correlation_id="x", partner="p1", kind=EnvelopeKind.RAW_RECEIVED)
    )
    assert rec.reports[-1].outcome == "rejected" and store.rows == {}


def test_a_stored_patient_is_linked_and_another_partners_resource_is_never_written() -> None:
    store, linker = Store(), Linker()
    _run(store, "ing-1", linker=linker)
    assert linker.linked == [("p1", "p1")]
    # Partner p2 sends a resource with the same id (only a converter bug could make one):
    # the store refuses it, and the journey says so.
    forged = {
        **BUNDLE,
        "entry": [
            {
                "resource": {**PATIENT, "gender": "male"},
                "request": {"method": "PUT", "url": "Patient/p1"},
            }
        ],
    }
    rec = _run(store, "ing-2", forged, partner="p2")
    assert rec.reports[-1].counts["foreign"] == 1
    assert "Patient/p1 belongs to another partner" in rec.reports[-1].issues[0]["diagnostics"]
    assert store.written["Patient/p1"][0]["gender"] == "female" and rec.sent == []


def test_a_meta_source_naming_another_partner_is_replaced_by_the_sender() -> None:
    store = Store()
    claimed = {**OBS, "meta": {"source": "urn:fhir-intake:partner:victim#Observation/x"}}
    own = {**OBS, "id": "o2", "meta": {"source": "urn:fhir-intake:partner:p1#Observation/7"}}
    bundle = {
        **BUNDLE,
        "entry": [
            {"resource": claimed, "request": {"method": "PUT", "url": "Observation/o1"}},
            {"resource": own, "request": {"method": "PUT", "url": "Observation/o2"}},
        ],
    }
    _run(store, "ing-1", bundle)
    assert store.written["Observation/o1"][0]["meta"]["source"] == "urn:fhir-intake:partner:p1"
    assert store.written["Observation/o2"][0]["meta"]["source"] == (
        "urn:fhir-intake:partner:p1#Observation/7"
    )


def _timed(occurred: str) -> dict[str, Any]:
    provenance = {
        "resourceType": "Provenance",
        "id": "prov",
        "target": [{"reference": "Observation/o1"}],
        "recorded": "2026-03-01T10:00:00Z",
        "occurredDateTime": occurred,
    }
    return {
        **BUNDLE,
        "entry": [
            {"resource": OBS, "request": {"method": "PUT", "url": "Observation/o1"}},
            {"resource": provenance, "request": {"method": "PUT", "url": "Provenance/prov"}},
        ],
    }


def test_a_source_time_after_receipt_is_clamped_and_the_journey_says_so() -> None:
    store = Store()
    rec = _run(store, "ing-1", _timed("2099-12-31T23:59:59Z"))
    assert store.written["Observation/o1"][1] == datetime(2026, 3, 1, 10, tzinfo=UTC)
    (issue,) = rec.reports[-1].issues
    assert "ordered by the time of receipt" in issue["diagnostics"]
    assert issue["severity"] == "warning"


def test_a_source_time_within_the_skew_is_kept() -> None:
    store = Store()
    rec = _run(store, "ing-1", _timed("2026-03-01T10:04:00Z"))  # 4 min ahead: clock drift
    assert store.written["Observation/o1"][1] == datetime(2026, 3, 1, 10, 4, tzinfo=UTC)
    assert rec.reports[-1].issues == []


def test_a_provenance_of_the_partners_own_cannot_lift_the_bound() -> None:
    # The review of this change: the first Provenance's 'recorded' was taken as the
    # receipt time, and a partner can send a Provenance of its own before ours.
    store = Store()
    forged = {
        "resourceType": "Provenance",
        "id": "theirs",
        "target": [{"reference": "Observation/o1"}],
        "recorded": "2099-12-31T00:00:00Z",
        "occurredDateTime": "2099-12-31T00:00:00Z",
    }
    bundle = _timed("2099-12-31T00:00:00Z")
    bundle["entry"].insert(
        0, {"resource": forged, "request": {"method": "PUT", "url": "Provenance/theirs"}}
    )
    _run(store, "ing-1", bundle)
    # Bounded by our own Provenance's receipt time, the earliest of those sent.
    assert store.written["Observation/o1"][1] == datetime(2026, 3, 1, 10, tzinfo=UTC)


def test_a_big_bundle_is_announced_in_messages_a_queue_takes() -> None:
    """250 Observations of one patient, and a Group of 100 patients: every change is named
    once, at most 100 to a message, each message within the envelope's 48 KiB."""
    entries = [
        {
            "resource": {**OBS, "id": f"o{n}", "code": {"text": f"hr {n}"}},
            "request": {"method": "PUT", "url": f"Observation/o{n}"},
        }
        for n in range(250)
    ]
    members = [{"entity": {"reference": f"Patient/p{n:03d}-{'x' * 40}"}} for n in range(100)]
    group = {"resourceType": "Group", "id": "g1", "type": "person", "actual": True}
    entries += [
        {
            "resource": {**group, "id": f"g{n}", "member": members},
            "request": {"method": "PUT", "url": f"Group/g{n}"},
        }
        for n in range(8)
    ]
    rec = _run(Store(), "ing-big", {**BUNDLE, "entry": entries})
    named = [c.id for e in rec.sent for c in e.changes or ()]
    assert sorted(named) == sorted([f"o{n}" for n in range(250)] + [f"g{n}" for n in range(8)])
    assert max(len(e.changes or ()) for e in rec.sent) == 100
    assert all(len(e.to_bytes()) <= 48 * 1024 for e in rec.sent)
    assert all(Envelope.from_bytes(e.to_bytes()) == e for e in rec.sent)
    groups = [c for e in rec.sent for c in e.changes or () if c.type == "Group"]
    assert len(groups[0].patients) == 100


def test_a_handed_over_bundle_is_stored_from_the_store_queue_as_it_was_permitted() -> None:
    """When the consent-check invocation could not finish the store step, the permitted
    Bundle goes to the store queue as it is, and the store stage finishes it there."""

    class Kept(Recorder):
        def __init__(self) -> None:
            super().__init__({})
            self.blobs: dict[str, tuple[bytes, dict[str, str]]] = {}
            self.queued: list[tuple[Queue, Envelope]] = []

        def write(self, container: str, name: str, data: bytes, *_: Any, **kw: Any) -> BlobRef:
            self.blobs[name] = (data, kw.get("metadata") or {})
            return BlobRef(container=container, name=name)

        def read(self, ref: BlobRef) -> tuple[bytes, dict[str, str], str | None]:
            data, metadata = self.blobs[ref.name]
            return data, metadata, None

        def send(self, queue: Queue, envelope: Envelope, delay: int = 0) -> None:
            self.queued.append((queue, envelope))

    kept, store = Kept(), Store()
    stage = StoreStage(kept, kept, kept, store, Linker())  # type: ignore[arg-type]
    decided = StageReport(stage="consent", outcome="permitted", counts={"permitted": 2})
    checked = Envelope(
        correlation_id="ing-1",
        partner="p1",
        kind=EnvelopeKind.BUNDLE_NORMALIZED,
        blob=BlobRef(container="normalized", name="p1/2026/03/01/ing-1.json"),
    )
    stage.hand_over(checked, BUNDLE, "p1/2026/03/01/ing-1.json", "p1/2026/03/01/ing-1", decided)
    ((queue, handed),) = kept.queued
    assert (queue, handed.kind) == (Queue.STORE, EnvelopeKind.BUNDLE_PERMITTED)
    assert handed.blob is not None and handed.blob.name == "p1/2026/03/01/ing-1.permitted.json"
    assert kept.reports == [decided] and store.written == {}
    stage.handle(handed)
    assert {"Patient/p1", "Observation/o1"} <= set(store.written)
    assert store.ingestion.normalized == "p1/2026/03/01/ing-1.json"
    assert [q for q, _ in kept.queued] == [Queue.STORE, Queue.NOTIFY]
