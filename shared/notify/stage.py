"""The notify stage: the changes one Bundle made in, one ``deliver`` message per change and
matching subscription.

Each (subscription, resource version) gets one delivery row with the subscription's next
event number, created once: a change announced twice (the store stage re-announces on
a retry) finds its row and sends nothing new, so subscribers see each version once.
Fanning out to one message per subscription means a slow endpoint delays no one else.
A subscriber hears only of what it may read: a change to a patient's data matches only
subscriptions whose owner has a way to that person (a relationship, or the population
role: ``security/trust.read_access``), decided per change, so a relationship that ends
ends the notifications with it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.normalize import json_codec
from shared.pipeline.journey import IngestionLog, wrong_envelope
from shared.platform.adapters.blobs import PayloadMissingError
from shared.platform.concurrency import each
from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.names import Container, Queue
from shared.platform.ports import EnvelopeSender, PayloadStore
from shared.platform.telemetry import note_report
from shared.records.models import version_blob
from shared.records.people import Person
from shared.security.models import Partner
from shared.security.trust import Access, read_access

from .criteria import Criteria, parse_criteria
from .errors import SubscriptionInvalidError
from .models import Delivery, DeliveryState, Event, Subscription, SubscriptionStatus, Topic
from .ports import DeliveryLog, SubscriptionStore
from .topics import topics_of

__all__ = ["SUBSCRIPTIONS_REFRESH_SECONDS", "NotifyStage", "event_key", "parse_version_blob"]

log = logging.getLogger(__name__)
# Each instance re-reads the subscriptions this often rather than per change (a table
# query per stored resource would double the storage calls): a new, changed or paused
# subscription applies to changes matched from this many seconds after it was saved.
SUBSCRIPTIONS_REFRESH_SECONDS = 2.0
_VERSION_BLOB = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})/_history/(\d+)\.json\Z")
# What matching one subscription may raise on data nobody foresaw (a bug, never a reason
# to fail the change for every other subscriber).
_MATCH_FAILURES = (ArithmeticError, ValueError, TypeError, LookupError, RecursionError)
_EVENTS = {"created": Event.CREATE, "updated": Event.UPDATE, "deleted": Event.DELETE}
_AT_ONCE = 8  # changes of one message matched at once (each claim is a round trip)


class _Versions(Protocol):
    def read_version(
        self, resource_type: str, resource_id: str, version: int
    ) -> dict[str, Any] | None: ...


class _People(Protocol):
    def person(self, patient_id: str, memo: dict[str, Person] | None = None) -> Person: ...


@dataclass(frozen=True, slots=True)
class _Change:
    """One change to match: patients None when only the version's metadata says them."""

    type: str
    id: str
    version: int
    event: str | None
    patients: tuple[str, ...] | None


def _changes(envelope: Envelope) -> list[_Change] | None:
    """The changes a message announces (a version-2 list, or a version-1 blob), or None
    if it is not such a message."""
    if envelope.kind is EnvelopeKind.RESOURCES_CHANGED and envelope.changes is not None:
        return [_Change(c.type, c.id, c.version, c.event, c.patients) for c in envelope.changes]
    if envelope.kind is EnvelopeKind.RESOURCE_CHANGED and envelope.blob is not None:
        where = parse_version_blob(envelope.blob.name)
        if envelope.blob.container == Container.FHIR and where is not None:
            return [_Change(*where, None, None)]
    return None


def parse_version_blob(name: str) -> tuple[str, str, int] | None:
    """(type, id, version) of a version blob name in ``fhir``, or None."""
    found = _VERSION_BLOB.match(name)
    return (found[1], found[2], int(found[3])) if found else None


def event_key(resource_type: str, resource_id: str, version: int) -> str:
    """The delivery row key of one version: ``Type|id|version``."""
    return f"{resource_type}|{resource_id}|{version}"


class NotifyStage:
    """Matches stored changes against subscriptions and queues their deliveries."""

    def __init__(
        self,
        payloads: PayloadStore,
        versions: _Versions,
        subscriptions: SubscriptionStore,
        deliveries: DeliveryLog,
        sender: EnvelopeSender,
        status: IngestionLog,
        people: _People,
        partners: Callable[[str], Partner | None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache_seconds: float = SUBSCRIPTIONS_REFRESH_SECONDS,
        parse: Callable[[str], Criteria] = parse_criteria,
    ) -> None:
        self._parse = parse  # the criteria reader (a unit test passes one that misbehaves)
        self._people = people
        self._partners = partners
        self._payloads = payloads
        self._versions = versions
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._sender = sender
        self._status = status
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, list[tuple[Subscription, Criteria]]] | None = None
        self._said: set[tuple[str, str]] = set()  # failures written since the last re-read

    def _active(self) -> list[tuple[Subscription, Criteria]]:
        """Subscriptions that are not off, with parsed criteria (re-read when stale)."""
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self._cache_seconds:
            found = []
            self._said.clear()
            for sub in self._subscriptions.list():
                if sub.status is SubscriptionStatus.OFF:
                    continue
                try:
                    found.append((sub, self._parse(sub.criteria)))
                except SubscriptionInvalidError as exc:  # saved by a version that read more
                    self._failed(sub, f"criteria can no longer be read: {exc}")
            self._cached = (now, found)
        return self._cached[1]

    def handle(self, envelope: Envelope) -> int:
        """Queue a delivery for every subscription each change matches; how many were queued.

        Raises:
            StorageUnavailableError, SubscriptionConflictError: retry through the queue
                (every change again: a delivery claimed already sends nothing new).
        """
        changes = _changes(envelope)
        if changes is None:
            self._status.record(
                envelope.partner,
                envelope.correlation_id,
                wrong_envelope("notify", "resources.changed", str(envelope.kind)),
            )
            return 0
        active = self._active()
        wanted = {c.resource_type for _, c in active}
        matching = [c for c in changes if c.type in wanted]  # most: no blob read, no table call
        queued = sum(each(lambda c: self._one(envelope, active, c), matching, _AT_ONCE))
        log.info(
            "notify: matched",
            extra={
                "stage": "notify",
                "correlation_id": envelope.correlation_id,
                "partner": envelope.partner,
                "changes": len(changes),
                "deliveries": queued,
            },
        )
        note_report("notify", "matched", {"changes": len(changes), "deliveries": queued})
        return queued

    def _one(
        self, envelope: Envelope, active: list[tuple[Subscription, Criteria]], change: _Change
    ) -> int:
        """Match one change; how many deliveries it queued."""
        subscriptions = [(s, c) for s, c in active if c.resource_type == change.type]
        where = (change.type, change.id, change.version)
        blob = BlobRef(container=Container.FHIR.value, name=version_blob(*where))
        try:
            data, metadata, _ = self._payloads.read(blob)
        except PayloadMissingError:
            log.info("notify: version gone (purged)", extra={"stage": "notify"})
            return 0
        current: dict[str, Any] = json_codec.loads(data)
        event = _EVENTS.get(change.event or metadata.get("event", ""), Event.UPDATE)
        previous: list[dict[str, Any] | None] = []  # read once, when a rule needs it

        def before() -> dict[str, Any] | None:
            if not previous:
                previous.append(
                    self._versions.read_version(change.type, change.id, change.version - 1)
                    if change.version > 1
                    else None
                )
            return previous[0]

        if change.patients is not None:
            patients = list(change.patients)
        else:  # version 1: the version's own metadata says whose it is
            patients = [
                p for p in (metadata.get("patients") or "").split(",") if p not in ("", "-")
            ]
        memo: dict[str, Person] = {}
        queued = 0
        for sub, criteria in subscriptions:
            try:
                matched, topic = self._match(sub, criteria, event, current, before)
            except _MATCH_FAILURES as exc:  # one subscription's failure is its own
                self._failed(sub, f"criteria could not be matched ({type(exc).__name__})")
                continue
            if not matched or not self._may_know(sub, patients, memo):
                continue
            delivery = self._claim(sub, envelope, event, topic, where, blob.name)
            if delivery.state is DeliveryState.PENDING and delivery.sent == 0:
                self._sender.send(
                    Queue.DELIVER,
                    envelope.next(EnvelopeKind.DELIVERY_DUE, blob).model_copy(
                        update={"subscription": sub.id}
                    ),
                )
                queued += 1
        return queued

    def _failed(self, sub: Subscription, reason: str) -> None:
        """Put a subscription whose criteria fail in ``error`` with the reason (once)."""
        said = (sub.id, reason)
        if said in self._said or (sub.status is SubscriptionStatus.ERROR and sub.error == reason):
            return  # said already: no table write or log line per change
        self._said.add(said)
        log.warning(
            "notify: subscription criteria failed",
            extra={"stage": "notify", "subscription": sub.id, "outcome": "error"},
        )

        def change(found: Subscription) -> Subscription:
            if found.criteria != sub.criteria or found.status is SubscriptionStatus.OFF:
                return found  # changed or paused since we read it: not ours to overwrite
            update = {"status": SubscriptionStatus.ERROR, "error": reason[:500]}
            return found.model_copy(update={**update, "updated": self._clock()})

        self._subscriptions.update(sub.id, change)

    def _may_know(self, sub: Subscription, patients: list[str], memo: dict[str, Person]) -> bool:
        """Whether a subscription's owner may hear of a change to these patients' data."""
        owner = self._partners(sub.owner) if patients else None
        for patient in patients:
            person = self._people.person(patient.removeprefix("Patient/"), memo)
            access = read_access(owner, sub.purpose, person.sources, person.related)
            if access not in (Access.RELATIONSHIP, Access.POPULATION) or person.truncated:
                return False
        return True

    @staticmethod
    def _match(
        sub: Subscription,
        criteria: Criteria,
        event: Event,
        current: Mapping[str, Any],
        before: Callable[[], dict[str, Any] | None],
    ) -> tuple[bool, Topic | None]:
        """Whether a change matches a subscription, and the topic it raised (if by topic)."""
        if criteria.resource_type != current.get("resourceType"):
            return False, None
        if sub.topics:
            if event is Event.DELETE or not criteria.matches(current):
                return False, None
            raised = sorted(topics_of(before(), current) & sub.topics)
            return (True, raised[0]) if raised else (False, None)
        if event not in sub.events:
            return False, None
        # A deletion marker has no content: filters look at what was deleted.
        subject = before() if event is Event.DELETE else current
        return subject is not None and criteria.matches(subject), None

    def _claim(
        self,
        sub: Subscription,
        envelope: Envelope,
        event: Event,
        topic: Topic | None,
        where: tuple[str, str, int],
        blob: str,
    ) -> Delivery:
        key = event_key(*where)
        return self._deliveries.claim(  # a key seen before returns its row
            Delivery(
                subscription=sub.id,
                key=key,
                event=event,
                topic=topic,
                correlation_id=envelope.correlation_id,
                partner=envelope.partner,
                blob=blob,
                created=self._clock(),
            )
        )
