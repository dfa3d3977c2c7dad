"""The store stage: what consent permitted becomes the unified record.

Reads a ``bundle.permitted`` Bundle, stores each entry as a new version where it changes
something (``records.versions`` decides: idempotent, ordered by the source's own time),
records the counts on the ingestion, and emits one ``resource.changed`` envelope per
created, updated or deleted resource on ``notify``, pointing at the version's blob.

The source time of a message is its Provenance's ``occurredDateTime`` (what the sender
says, e.g. MSH-7), else its ``recorded`` (when we received it), else the envelope's time.
A retried message re-sends the notifications for versions this ingestion wrote, so none
is lost between storing and enqueueing; the notify stage de-duplicates by version.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from shared.consent.resources import resource_patient_ref
from shared.intake.status import IngestionLog, StageReport, wrong_envelope
from shared.normalize import json_codec
from shared.normalize.ids import is_global_system, resource_id
from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.names import Container, Queue
from shared.platform.ports import EnvelopeSender, PayloadStore

from .forwarding import FhirForwarder
from .ingestions import ingestion_ref
from .models import Change, IngestionRef, WriteOutcome

__all__ = ["StoreOutcome", "StoreStage", "message_source_time"]

log = logging.getLogger(__name__)
_NOTIFIED = {WriteOutcome.CREATED, WriteOutcome.UPDATED, WriteOutcome.DELETED}
_T = TypeVar("_T")
_R = TypeVar("_R")


class _Store(Protocol):
    def put(
        self,
        resource: Mapping[str, Any],
        source_time: datetime,
        patient: str | None,
        delete: bool = False,
        correlation_id: str = "",
    ) -> Change: ...

    def list_in_compartments(
        self, changes: Iterable[Change], ingestion: IngestionRef | None = None
    ) -> None: ...

    def index_identifiers(self, patients: Iterable[Mapping[str, Any]]) -> None: ...


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """What the stage did, for logs and tests (ids and counts only)."""

    counts: dict[str, int]
    notified: int


def message_source_time(bundle: Mapping[str, Any], fallback: datetime) -> datetime:
    """When the message was made, by its Provenance; ``fallback`` when it does not say."""
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "Provenance":
            continue
        for name in ("occurredDateTime", "recorded"):
            value = resource.get(name)
            if isinstance(value, str):
                try:
                    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    continue
                if moment.tzinfo is not None:
                    return moment
    return fallback


def _patient(resource: Mapping[str, Any], partner: str) -> str | None:
    """``Patient/<id>`` whose compartment the resource is in: its literal reference, or
    the id our converters give the Patient its identifier names (a Consent that names
    its patient by identifier belongs to that patient too)."""
    named = resource_patient_ref(resource) or {}
    reference = named.get("reference")
    if isinstance(reference, str) and reference.startswith("Patient/"):
        return "Patient/" + reference.split("/_history/")[0].rsplit("/", 1)[-1]
    identifier = named.get("identifier") or {}
    if identifier.get("system") and identifier.get("value"):
        system = str(identifier["system"])
        scope = "" if is_global_system(system) else partner
        return f"Patient/{resource_id('Patient', scope, system, str(identifier['value']))}"
    return None


def _compartments(writes: list[tuple[dict[str, Any], bool]], partner: str) -> list[str | None]:
    """Each write's patient; a Provenance belongs to its message's patient when the
    message concerned exactly one (FHIR puts Provenance in the compartment of its target)."""
    found = [
        None if r.get("resourceType") == "Provenance" else _patient(r, partner) for r, _ in writes
    ]
    patients = {p for p in found if p}
    only = next(iter(patients)) if len(patients) == 1 else None
    return [
        only if r.get("resourceType") == "Provenance" else p
        for (r, _), p in zip(writes, found, strict=True)
    ]


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
        concurrency: int = 4,
        forwarder: FhirForwarder | None = None,
    ) -> None:
        self._payloads = payloads
        self._sender = sender
        self._status = status
        self._store = store
        self._concurrency = max(1, concurrency)
        self._forwarder = forwarder

    def _each(self, work: Callable[[_T], _R], items: list[_T]) -> list[_R]:
        """``work`` over ``items`` in order of items; the first failure is raised."""
        if self._concurrency == 1 or len(items) < 2:
            return [work(item) for item in items]
        with ThreadPoolExecutor(min(self._concurrency, len(items))) as pool:
            return list(pool.map(work, items))

    def handle(self, envelope: Envelope) -> StoreOutcome:
        """Store the Bundle an envelope points at.

        Raises:
            StorageUnavailableError, ResourceConflictError: retry through the queue.
        """
        started = time.perf_counter()
        if envelope.kind is not EnvelopeKind.BUNDLE_PERMITTED or envelope.blob is None:
            self._status.record(
                envelope.partner,
                envelope.correlation_id,
                wrong_envelope("store", "bundle.permitted", str(envelope.kind)),
            )
            return StoreOutcome({}, 0)
        data, metadata, _ = self._payloads.read(envelope.blob)
        bundle = json_codec.loads(data)
        made = message_source_time(bundle, envelope.created)
        writes = [w for w in (_write(e) for e in bundle.get("entry") or ()) if w is not None]

        owned = list(zip(writes, _compartments(writes, envelope.partner), strict=True))

        def put(item: tuple[tuple[dict[str, Any], bool], str | None]) -> Change:
            (resource, delete), owner = item
            return self._store.put(resource, made, owner, delete, envelope.correlation_id)

        def announce(change: Change) -> None:
            blob = BlobRef(container=Container.FHIR.value, name=change.blob)
            self._sender.send(Queue.NOTIFY, envelope.next(EnvelopeKind.RESOURCE_CHANGED, blob))

        changes = self._each(put, owned)
        ingestion = ingestion_ref(
            bundle,
            envelope.partner,
            envelope.correlation_id,
            metadata.get("normalized", ""),
            envelope.blob.name.removesuffix(".permitted.json"),
            {c.compartment for c in changes if c.compartment},
        )
        self._store.list_in_compartments(changes, ingestion)
        self._store.index_identifiers(
            resource
            for (resource, delete), change in zip(writes, changes, strict=True)
            if resource.get("resourceType") == "Patient" and not delete and change.compartment
        )
        due = [
            c
            for c in changes
            if c.outcome in _NOTIFIED
            or (c.outcome is WriteOutcome.UNCHANGED and c.correlation_id == envelope.correlation_id)
        ]
        self._each(announce, due)
        notified = len(due)
        if self._forwarder is not None:
            self._forward(envelope, bundle)
        counts = Counter(c.outcome for c in changes)  # names, not values: table columns
        result = StoreOutcome({o.name.lower(): counts.get(o, 0) for o in WriteOutcome}, notified)
        self._status.record(
            envelope.partner,
            envelope.correlation_id,
            StageReport(stage="store", outcome="stored", counts=result.counts),
        )
        log.info(
            "store: stored",
            extra={
                "stage": "store",
                "correlation_id": envelope.correlation_id,
                "partner": envelope.partner,
                "outcome": "stored",
                **{f"count_{k}": v for k, v in result.counts.items()},  # "created" is taken
                "notified": notified,
                "duration_ms": round((time.perf_counter() - started) * 1000),
            },
        )
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
