"""The notify stage: which changes match which subscriptions, numbered once each, and only
for subscribers that may read the patient's data."""

from __future__ import annotations

import decimal
from datetime import UTC, datetime
from typing import Any

from shared.notify.criteria import parse_criteria
from shared.notify.models import Event, Subscription, SubscriptionStatus, Topic
from shared.notify.stage import NotifyStage
from shared.platform.envelope import BlobRef, ChangeRef, Envelope, EnvelopeKind
from shared.platform.names import Queue
from shared.records.people import Person
from shared.security.models import Partner, Role

from .fakes import Deliveries, Payloads, Sender, Status, Subscriptions

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def sub(ident: str, criteria: str, owner: str = "acme", **fields: Any) -> Subscription:
    return Subscription(
        id=ident * 32,
        owner=owner,
        criteria=criteria,
        endpoint="https://hooks.example.org/in",
        base_url="https://intake.example.org/api/fhir",
        created=NOW,
        updated=NOW,
        **fields,
    )


def encounter(status: str, place: str = "Location/w3") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": "e1",
        "status": status,
        "class": {"code": "IMP"},
        "location": [{"location": {"reference": place}}],
    }


def heart_rate(value: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"hr-{value}",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "valueQuantity": {"value": value, "unit": "/min"},
    }


class People:
    """Every patient's data was sent by ``hosp``; ``acme`` relates to p-acme only."""

    def person(self, patient_id: str, memo: Any = None) -> Person:
        related = frozenset({"acme"}) if patient_id == "p-acme" else frozenset()
        return Person((patient_id,), sources=frozenset({"hosp"}), related=related)


PARTNERS = {
    "acme": Partner(id="acme", name="Acme", roles=frozenset({Role.READ})),
    "moh": Partner(id="moh", name="MoH", roles=frozenset({Role.POPULATION})),
    "er": Partner(id="er", name="ER", roles=frozenset({Role.READ, Role.BREAK_GLASS})),
}


def announce(*changes: tuple[dict[str, Any], int, str | None, str]) -> Envelope:
    """The resources.changed envelope of these (resource, version, event, patients)."""
    return Envelope(
        version=2,
        correlation_id="ing-1",
        partner="hosp",
        kind=EnvelopeKind.RESOURCES_CHANGED,
        changes=tuple(
            ChangeRef(
                type=resource["resourceType"],
                id=resource["id"],
                version=version,
                event=event,  # type: ignore[arg-type]
                patients=tuple(p for p in patients.split(",") if p not in ("", "-")),
            )
            for resource, version, event, patients in changes
        ),
    )


class World:
    def __init__(self, *subs: Subscription) -> None:
        self.payloads = Payloads()
        self.subs = Subscriptions(*subs)
        self.deliveries = Deliveries()
        self.sender = Sender()
        self.status = Status()
        self.stage = NotifyStage(
            self.payloads,
            self.payloads,
            self.subs,
            self.deliveries,
            self.sender,
            self.status,
            People(),
            PARTNERS.get,
            clock=lambda: NOW,
            cache_seconds=0,
        )

    def change(
        self, resource: dict[str, Any], version: int, event: str, patients: str = "-"
    ) -> int:
        """Store a version and announce it as the store stage does (version 2)."""
        self.payloads.put(resource, version, event, patients)
        return self.stage.handle(announce((resource, version, event, patients)))

    def change_v1(self, resource: dict[str, Any], version: int, event: str) -> int:
        """Announce a version as the store stage did before version 2: its blob named."""
        blob = self.payloads.put(resource, version, event, "-")
        envelope = Envelope(
            correlation_id="ing-1", partner="hosp", kind=EnvelopeKind.RESOURCE_CHANGED, blob=blob
        )
        return self.stage.handle(envelope)

    def due(self) -> list[tuple[str | None, str]]:
        return [(e.subscription, e.blob.name if e.blob else "") for _, e, _ in self.sender.sent]


def test_admission_and_discharge_topics_follow_the_adt_events() -> None:
    admissions = sub("a", "Encounter?class=IMP", topics=frozenset({Topic.ADMISSION}))
    discharges = sub("b", "Encounter", topics=frozenset({Topic.DISCHARGE}))
    world = World(admissions, discharges)
    assert world.change(encounter("in-progress"), 1, "created") == 1  # A01
    assert world.change(encounter("in-progress", "Location/w4"), 2, "updated") == 0  # A02
    assert world.change(encounter("finished"), 3, "updated") == 1  # A03
    assert world.due() == [
        ("a" * 32, "Encounter/e1/_history/1.json"),
        ("b" * 32, "Encounter/e1/_history/3.json"),
    ]
    first = world.deliveries.get("a" * 32, "Encounter|e1|1")
    assert first is not None and first.topic is Topic.ADMISSION and first.number == 1
    assert all(queue is Queue.DELIVER for queue, _, _ in world.sender.sent)


def test_threshold_filter_on_observations() -> None:
    world = World(sub("c", "Observation?code=http://loinc.org|8867-4&value-quantity=gt120"))
    assert world.change(heart_rate(90), 1, "created") == 0
    assert world.change(heart_rate(135), 1, "created") == 1
    assert world.due() == [("c" * 32, "Observation/hr-135/_history/1.json")]


def test_events_filter_and_deletions_match_what_was_deleted() -> None:
    world = World(sub("d", "Observation?value-quantity=gt120", events=frozenset({Event.DELETE})))
    assert world.change(heart_rate(130), 1, "created") == 0  # not subscribed to create
    marker = {"resourceType": "Observation", "id": "hr-130"}
    assert world.change(marker, 2, "deleted") == 1  # the deleted version was over 120
    delivery = world.deliveries.get("d" * 32, "Observation|hr-130|2")
    assert delivery is not None and delivery.event is Event.DELETE


def test_a_version_announced_twice_keeps_one_row_and_one_number() -> None:
    world = World(sub("e", "Observation"))
    world.change(heart_rate(100), 1, "created")
    world.change(heart_rate(100), 1, "created")  # the store stage's retry re-announces
    world.change(heart_rate(101), 1, "created")
    # The pending row is queued again (the first send may have been lost in a crash);
    # the deliver stage drops whichever message comes second (tests/unit/notify/test_delivery.py).
    assert [n for _, n in world.due()].count("Observation/hr-100/_history/1.json") == 2
    numbers = sorted(d.number for d in world.deliveries.rows.values())
    assert numbers == [1, 2]
    assert world.deliveries.count("e" * 32) == 2


def test_subscriptions_that_are_off_get_nothing() -> None:
    world = World(sub("f", "Observation", status=SubscriptionStatus.OFF))
    assert world.change(heart_rate(100), 1, "created") == 0


def test_a_wrong_envelope_is_reported_not_raised() -> None:
    world = World(sub("g", "Observation"))
    envelope = Envelope(
        correlation_id="ing-1",
        partner="hosp",
        kind=EnvelopeKind.BUNDLE_PERMITTED,
        blob=BlobRef(container="normalized", name="x.json"),
    )
    assert world.stage.handle(envelope) == 0
    assert world.status.reports[0].outcome == "rejected"


def test_a_subscriber_hears_only_of_the_persons_it_may_read() -> None:
    # The review's HIGH-2: a read-role partner subscribing to Patient got every new patient.
    everyone = sub("f", "Patient", events=frozenset({Event.CREATE}))
    population = sub("g", "Patient", owner="moh", events=frozenset({Event.CREATE}))
    emergency = sub("h", "Patient", owner="er", purpose="ETREAT", events=frozenset({Event.CREATE}))
    world = World(everyone, population, emergency)
    patient = {"resourceType": "Patient", "id": "p-other"}
    assert world.change(patient, 1, "created", "Patient/p-other") == 1  # the population one
    assert [s for s, _ in world.due()] == ["g" * 32]  # break-the-glass is for reads only
    mine = {"resourceType": "Patient", "id": "p-acme"}
    assert world.change(mine, 1, "created", "Patient/p-acme") == 2  # acme relates to it
    organization = {"resourceType": "Organization", "id": "o1"}
    world.subs.rows["i" * 32] = sub("i", "Organization", events=frozenset({Event.CREATE}))
    assert world.change(organization, 1, "created") == 1  # no patient's data: anyone


class _Misbehaving:
    """Criteria whose matching raises, as a bug in matching would."""

    resource_type = "Observation"

    def matches(self, resource: Any) -> bool:
        raise decimal.InvalidOperation([decimal.InvalidOperation])


def test_one_subscription_that_fails_is_put_in_error_and_the_others_are_served() -> None:
    # The review's MEDIUM-1: one subscription's failure sent the change to notify-poison,
    # so no subscriber heard of it.
    saved_before = sub("j", "Observation?value-quantity=gt1e999999999")  # now unreadable
    broken = sub("k", "Observation?code=misbehaves")
    good = sub("l", "Observation?value-quantity=gt120")
    world = World(saved_before, broken, good)

    def parse(text: str) -> Any:
        return _Misbehaving() if text.endswith("misbehaves") else parse_criteria(text)

    world.stage = NotifyStage(
        world.payloads, world.payloads, world.subs, world.deliveries, world.sender,
        world.status, People(), PARTNERS.get, clock=lambda: NOW, cache_seconds=60, parse=parse,
    )  # fmt: skip
    assert world.change(heart_rate(135), 1, "created") == 1
    assert world.change(heart_rate(140), 1, "created") == 1
    assert [s for s, _ in world.due()] == [good.id, good.id]
    first, second = world.subs.rows[saved_before.id], world.subs.rows[broken.id]
    assert (first.status, second.status) == (SubscriptionStatus.ERROR, SubscriptionStatus.ERROR)
    assert first.error is not None and "can no longer be read" in first.error
    assert first.error.endswith("between 1e-100 and 1e100")
    assert second.error == "criteria could not be matched (InvalidOperation)"
    assert world.subs.rows[good.id].status is SubscriptionStatus.ACTIVE


def test_one_message_announces_a_bundles_changes_and_each_is_matched() -> None:
    world = World(sub("m", "Observation?value-quantity=gt120"))
    fast, slow, patient = heart_rate(130), heart_rate(60), {"resourceType": "Patient", "id": "p"}
    for resource in (fast, slow, patient):
        world.payloads.put(resource, 1, "created", "-")
    retried = (heart_rate(125), 1, None, "-")  # re-announced: the version's metadata says
    world.payloads.put(retried[0], 1, "created", "-")
    envelope = announce((fast, 1, "created", "-"), (slow, 1, "created", "-"), retried)
    assert world.stage.handle(envelope) == 2
    assert sorted(world.due()) == [
        ("m" * 32, "Observation/hr-125/_history/1.json"),
        ("m" * 32, "Observation/hr-130/_history/1.json"),
    ]
    delivery = world.deliveries.get("m" * 32, "Observation|hr-125|1")
    assert delivery is not None and delivery.event is Event.CREATE
    # A deliver message is version 1, named by the version's blob, as before.
    assert {e.version for _, e, _ in world.sender.sent} == {1}


def test_a_version_1_message_from_before_still_notifies() -> None:
    """A resource.changed message written before version 2 (in a queue, or replayed from
    notify-poison) is matched as it always was."""
    world = World(sub("v", "Observation?value-quantity=gt120"))
    assert world.change_v1(heart_rate(150), 1, "created") == 1
    assert world.due() == [("v" * 32, "Observation/hr-150/_history/1.json")]
