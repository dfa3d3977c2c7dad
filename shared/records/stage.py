"""The store stage: what consent permitted becomes the unified record.

Reads a ``bundle.permitted`` Bundle, stores each entry as a new version of the sending
partner's resource where it changes something (``records.versions`` decides: idempotent,
ordered by the source's own time), in the compartments of the patients the consent stage
placed it with, records the counts on the ingestion, links each stored Patient to the
records of the same person (``records.people``), and announces the created, updated and
deleted versions on ``notify`` in ``resources.changed`` envelopes (version 2: each change
named by type, id, version, event and patients, a hundred to a message), one message
for most Bundles where there was one per resource. A resource another partner sent is
never written (``foreign``).

The source time of a message is its Provenance's ``occurredDateTime`` (what the sender
says, e.g. MSH-7), else its ``recorded`` (when we received it), else the envelope's time;
a time later than the receipt (plus the allowed skew) is the receipt time instead, and
the journey says so, so a far-future MSH-7 cannot pin a version as current for ever. A
retried message re-sends the notifications for versions this ingestion wrote, so none is
lost between storing and enqueueing; the notify stage de-duplicates by version.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from shared.consent.subjects import SubjectResolver, placed_patients
from shared.normalize import json_codec
from shared.normalize.ids import local_system_prefix
from shared.pipeline.journey import IngestionLog, StageReport, wrong_envelope
from shared.platform.concurrency import each
from shared.platform.envelope import CHANGES_PER_MESSAGE, ChangeRef, Envelope, EnvelopeKind
from shared.platform.names import Container, Queue
from shared.platform.ports import EnvelopeSender, PayloadStore
from shared.security.trust import TrustPolicy, bounded_source_time

from .forwarding import FhirForwarder
from .ingestions import ingestion_ref
from .models import Change, IngestionRef, WriteOutcome

__all__ = ["StoreOutcome", "StoreStage", "message_source_time", "receipt_time", "with_source"]

log = logging.getLogger(__name__)
_CHANGES_BYTES = 36 * 1024  # of an envelope's 48 KiB: the rest is its header
_NOTIFIED = {WriteOutcome.CREATED, WriteOutcome.UPDATED, WriteOutcome.DELETED}
WRITTEN_LISTED = 100  # versions a journey row lists by id (the console links them)
_EVENTS: dict[WriteOutcome, Literal["created", "updated", "deleted"]] = {
    WriteOutcome.CREATED: "created",
    WriteOutcome.UPDATED: "updated",
    WriteOutcome.DELETED: "deleted",
}


def _change_ref(change: Change) -> ChangeRef:
    """What notify needs of a change; a version re-announced after a retry says no event
    (its blob does)."""
    return ChangeRef(
        type=change.resource_type,
        id=change.resource_id,
        version=change.version,
        event=_EVENTS.get(change.outcome),
        patients=change.patients,
    )


def _messages(refs: list[ChangeRef]) -> Iterable[tuple[ChangeRef, ...]]:
    """The changes in groups of at most ``CHANGES_PER_MESSAGE`` whose JSON stays within
    ``_CHANGES_BYTES``: a change of a hundred patients is about 6 KiB."""
    group: list[ChangeRef] = []
    size = 0
    for ref in refs:
        cost = len(ref.model_dump_json(exclude_none=True)) + 1
        if group and (len(group) == CHANGES_PER_MESSAGE or size + cost > _CHANGES_BYTES):
            yield tuple(group)
            group, size = [], 0
        group.append(ref)
        size += cost
    if group:
        yield tuple(group)


_T = TypeVar("_T")
_R = TypeVar("_R")


class _Store(Protocol):
    def put(
        self,
        resource: Mapping[str, Any],
        source_time: datetime,
        patients: tuple[str, ...],
        delete: bool = False,
        correlation_id: str = "",
        source: str = "",
        received: datetime | None = None,
    ) -> Change: ...

    def list_in_compartments(
        self, changes: Iterable[Change], ingestion: IngestionRef | None = None
    ) -> None: ...


class _Linker(Protocol):
    def link(self, patient: Mapping[str, Any], partner_id: str, correlation_id: str) -> int: ...


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """What the stage did, for logs and tests (ids and counts only)."""

    counts: dict[str, int]
    notified: int


def message_source_time(bundle: Mapping[str, Any], fallback: datetime) -> tuple[datetime, datetime]:
    """When the message was made, by its Provenance (``fallback`` when it does not say),
    and the earliest it can have been received: the earliest ``Provenance.recorded`` (ours
    says when we received it) or ``fallback``, whichever is earlier, so a Provenance the
    partner wrote itself cannot move the bound into the future."""
    said: datetime | None = None
    received = fallback
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "Provenance":
            continue
        for name in ("occurredDateTime", "recorded"):
            moment = _instant(resource.get(name))
            if moment is not None and said is None:
                said = moment
            if name == "recorded" and moment is not None:
                received = min(received, moment)
    return said or fallback, received


def receipt_time(
    bundle: Mapping[str, Any], partner: str, latest: datetime | None = None
) -> datetime | None:
    """When intake received the payload, as our own Provenance records it (milliseconds):
    what orders one partner's messages of equal source time, whatever order the parallel
    stages bring them to the store in.

    Ours names the payload by a ``urn:fhir-intake:partner:<partner>:message`` identifier
    and is the last such Provenance (the converter adds it after everything the partner
    sent), so one a partner wrote with that identifier earlier in its Bundle does not
    count; and the time is never later than ``latest`` (when this stage got the Bundle),
    so no Provenance can pin a version for ever with a far-future time."""
    system = f"urn:fhir-intake:partner:{partner}:message"
    found: datetime | None = None
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "Provenance":
            continue
        for entity in resource.get("entity") or ():
            what = (entity.get("what") or {}).get("identifier") or {}
            if what.get("system") == system:
                found = _instant(resource.get("recorded")) or found
    if found is not None and latest is not None:
        found = min(found, latest)
    return found


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def with_source(resource: Mapping[str, Any], partner: str) -> dict[str, Any]:
    """The resource with ``meta.source`` saying which partner it came from (a value the
    sender wrote itself is kept only when it already names that partner)."""
    ours = local_system_prefix(partner).rstrip(":")
    meta = dict(resource.get("meta") or {})
    said = str(meta.get("source") or "")
    if said != ours and not said.startswith(f"{ours}#"):
        meta["source"] = ours
    return {**resource, "meta": meta}


def _write(entry: Mapping[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """The resource an entry writes and whether it deletes it; None if it writes nothing."""
    resource = dict(entry.get("resource") or {})
    request = entry.get("request") or {}
    delete = request.get("method") == "DELETE"
    if delete and not resource:
        kind, _, ident = str(request.get("url", "")).partition("/")
        resource = {"resourceType": kind, "id": ident}
    if not resource.get("resourceType") or not resource.get("id"):
        return None
    return resource, delete


class StoreStage:
    """Runs the stage for one envelope; a Bundle's resources are written ``concurrency``
    at a time (they are independent, and each write is a few storage round trips: a
    1,000-resource chunk is seconds of waiting on Azure, while the host already runs
    several messages at once, so a few in flight per message is enough)."""

    def __init__(
        self,
        payloads: PayloadStore,
        sender: EnvelopeSender,
        status: IngestionLog,
        store: _Store,
        linker: _Linker,
        trust: TrustPolicy | None = None,
        concurrency: int = 4,
        forwarder: FhirForwarder | None = None,
    ) -> None:
        self._payloads = payloads
        self._sender = sender
        self._status = status
        self._store = store
        self._linker = linker
        self._trust = trust or TrustPolicy()
        self._concurrency = max(1, concurrency)
        self._forwarder = forwarder

    def _each(self, work: Callable[[_T], _R], items: list[_T]) -> list[_R]:
        """``work`` over ``items`` in order of items; the first failure is raised."""
        return each(work, items, self._concurrency)

    def handle(self, envelope: Envelope) -> StoreOutcome:
        """Store the Bundle a ``bundle.permitted`` envelope points at (``hand_over``'s, or
        one a consent stage of before queued: a replay from store-poison).

        Raises:
            StorageUnavailableError, ResourceConflictError: retry through the queue.
        """
        if envelope.kind is not EnvelopeKind.BUNDLE_PERMITTED or envelope.blob is None:
            self._status.record(
                envelope.partner,
                envelope.correlation_id,
                wrong_envelope("store", "bundle.permitted", str(envelope.kind)),
            )
            return StoreOutcome({}, 0)
        data, metadata, _ = self._payloads.read(envelope.blob)
        quarantine = envelope.blob.name.removesuffix(".permitted.json")
        return self.accept(
            envelope, json_codec.loads(data), metadata.get("normalized", ""), quarantine
        )

    def hand_over(
        self,
        envelope: Envelope,
        bundle: dict[str, Any],
        normalized: str,
        quarantine: str,
        before: StageReport,
    ) -> None:
        """Queue a permitted Bundle that ``accept`` could not finish storing, as it is,
        for this stage's own queue (``handle`` stores it): the consent decision is made,
        and a retry must finish storing what it permitted rather than decide again (a
        consent indexed in between would leave the versions already written unlisted
        and unannounced). ``before``, the consent report, goes on the journey now.

        Raises:
            StorageUnavailableError: storage failed too (the caller's message is retried).
        """
        ref = self._payloads.write(
            Container.NORMALIZED,
            f"{quarantine}.permitted.json",
            json_codec.dumps(bundle).encode(),
            "application/fhir+json",
            metadata={"normalized": normalized},
        )
        self._status.record(envelope.partner, envelope.correlation_id, before)
        # Last: once the message is queued, nothing here may fail and make the caller's
        # message retry (and decide again) while the permitted Bundle gets stored.
        self._sender.send(Queue.STORE, envelope.next(EnvelopeKind.BUNDLE_PERMITTED, ref))

    def accept(
        self,
        envelope: Envelope,
        bundle: dict[str, Any],
        normalized: str,
        quarantine: str,
        before: StageReport | None = None,
    ) -> StoreOutcome:
        """Store a Bundle consent permitted, for the ingestion ``envelope`` belongs to:
        ``normalized`` names the Bundle it came from, ``quarantine`` the folder of what
        was held back (both for erasure); ``before`` is the consent stage's report,
        written with this stage's in one journey write.

        Raises:
            StorageUnavailableError, ResourceConflictError: retry (the consent-check
                stage then ``hand_over``s the Bundle to the store queue, whose message
                runs again; every write is idempotent).
        """
        started = time.perf_counter()
        partner = envelope.partner
        arrived = receipt_time(bundle, envelope.partner, envelope.created) or envelope.created
        said, received = message_source_time(bundle, arrived)
        made = bounded_source_time(said, received, self._trust)
        issues = []
        if made != said:
            ahead = round((said - received).total_seconds())
            issues.append(
                {
                    "severity": "warning",
                    "code": "business-rule",
                    "diagnostics": f"the message's own time is {ahead} s after it was received; "
                    "its versions are ordered by the time of receipt instead",
                }
            )
        entries = [e for e in bundle.get("entry") or () if _write(e) is not None]
        fallback = SubjectResolver(entries, partner, lambda _s, _v: [])
        owned: list[tuple[dict[str, Any], bool, tuple[str, ...]]] = []
        for entry in entries:
            resource, delete = _write(entry) or ({}, False)
            patients = placed_patients(bundle, entry)
            if patients is None:  # a Bundle placed by no consent stage: place it here
                patients = fallback.of(resource).patients
            owned.append((with_source(resource, partner), delete, patients))

        def put(item: tuple[dict[str, Any], bool, tuple[str, ...]]) -> Change:
            resource, delete, patients = item
            return self._store.put(
                resource,
                made,
                patients,
                delete,
                envelope.correlation_id,
                source=partner,
                received=arrived,
            )

        changes = self._each(put, owned)
        ingestion = ingestion_ref(
            bundle,
            partner,
            envelope.correlation_id,
            normalized,
            quarantine,
            {p for c in changes for p in c.compartments},
        )
        self._store.list_in_compartments(changes, ingestion)
        for (resource, delete, _), change in zip(owned, changes, strict=True):
            if resource.get("resourceType") == "Patient" and not delete and change.compartments:
                self._linker.link(resource, partner, envelope.correlation_id)
        issues += [
            {
                "severity": "error",
                "code": "forbidden",
                "diagnostics": f"{c.reference} belongs to another partner; not written",
            }
            for c in changes
            if c.outcome is WriteOutcome.FOREIGN
        ]
        due = [
            c
            for c in changes
            if c.outcome in _NOTIFIED
            or (c.outcome is WriteOutcome.UNCHANGED and c.correlation_id == envelope.correlation_id)
        ]
        for group in _messages([_change_ref(c) for c in due]):
            self._sender.send(Queue.NOTIFY, envelope.changed(group))
        notified = len(due)
        counts = Counter(c.outcome for c in changes)  # names, not values: table columns
        result = StoreOutcome({o.name.lower(): counts.get(o, 0) for o in WriteOutcome}, notified)
        written = [  # ids only (ours, never the partner's): Type/id/_history/version
            f"{c.reference}/_history/{c.version}"
            for c in changes
            if c.outcome is not WriteOutcome.FOREIGN and c.version
        ]
        stored = StageReport(
            stage="store",
            outcome="stored",
            counts=result.counts,
            issues=issues,
            labels={"written": json.dumps(written[:WRITTEN_LISTED])},
        )
        self._status.record(partner, envelope.correlation_id, *filter(None, (before, stored)))
        log.info(
            "store: stored",
            extra={
                "stage": "store",
                "correlation_id": envelope.correlation_id,
                "partner": partner,
                "outcome": "stored",
                **{f"count_{k}": v for k, v in result.counts.items()},  # "created" is taken
                "notified": notified,
                "clamped": made != said,
                "duration_ms": round((time.perf_counter() - started) * 1000),
            },
        )
        if self._forwarder is not None:  # after "stored" is on record: the status reads in order
            self._forward(envelope, bundle)
        return result

    def _forward(self, envelope: Envelope, bundle: Mapping[str, Any]) -> None:
        """Send the Bundle's resources on to the existing FHIR server; report per entry.

        Raises:
            ForwardingUnavailableError: the server kept asking to retry (queue retries).
        """
        assert self._forwarder is not None
        entries = [
            e
            for e in bundle.get("entry") or ()
            if (e.get("request") or {}).get("method") != "DELETE"
        ]
        result = self._forwarder.forward(entries)
        outcome = "forwarded" if not result.refused else "partial" if result.accepted else "refused"
        self._status.record(
            envelope.partner,
            envelope.correlation_id,
            StageReport(
                stage="forward",
                outcome=outcome,
                counts={
                    "sent": result.sent,
                    "accepted": result.accepted,
                    "refused": len(result.refused),
                    "attempts": result.attempts,
                },
                issues=[
                    {
                        "severity": "error",
                        "code": "processing",
                        "diagnostics": f"{url}: the FHIR server answered {status}",
                    }
                    for url, status in result.refused
                ],
            ),
        )
