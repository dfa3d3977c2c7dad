"""The deliver stage: success, scheduled retries (injected clock and random), 410, the
dead-letter store, replay, consent on full-resource payloads, stale messages."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from shared.consent.models import Action
from shared.notify.delivery import DeliveryStage
from shared.notify.models import (
    Answer,
    Content,
    Delivery,
    DeliveryState,
    Event,
    Subscription,
    SubscriptionStatus,
    secret_name,
)
from shared.notify.replay import replay_dead_letters
from shared.notify.schedule import RetrySchedule
from shared.notify.signing import new_secret
from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.names import Queue

from .fakes import (
    DeadLetters,
    Deliveries,
    Payloads,
    Record,
    Secrets,
    Sender,
    Subscriptions,
    Transport,
)

START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
SUB = "a" * 32
OBSERVATION = {"resourceType": "Observation", "id": "o1", "status": "final"}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(
        self, *answers: Answer, content: Content = Content.ID_ONLY, permit: bool = True
    ) -> None:
        self.clock = Clock()
        self.secret = new_secret()
        self.secrets = Secrets()
        self.secrets.set(secret_name(SUB, 1), self.secret)
        self.subs = Subscriptions(
            Subscription(
                id=SUB,
                owner="acme",
                criteria="Observation",
                endpoint="https://hooks.example.org/in",
                content=content,
                base_url="https://intake.example.org/api/fhir",
                created=START,
                updated=START,
            )
        )
        self.payloads = Payloads()
        self.blob = self.payloads.put(OBSERVATION, 1, "created")
        self.deliveries = Deliveries()
        self.deliveries.claim(
            Delivery(
                subscription=SUB,
                key="Observation|o1|1",
                event=Event.CREATE,
                correlation_id="ing-1",
                partner="hosp",
                blob=self.blob.name,
                created=START,
            )
        )
        self.dead = DeadLetters()
        self.sender = Sender()
        self.transport = Transport(*answers)
        self.record = Record(self.payloads, permit)
        self.stage = DeliveryStage(
            self.subs,
            self.deliveries,
            self.dead,
            self.record,
            {"acme": None},  # type: ignore[arg-type]
            self.secrets,
            self.transport,
            self.sender,
            RetrySchedule(SCHEDULE, random.Random(3)),
            clock=self.clock,
        )

    def envelope(self, attempt: int = 0) -> Envelope:
        return Envelope(
            correlation_id="ing-1",
            partner="hosp",
            kind=EnvelopeKind.DELIVERY_DUE,
            blob=BlobRef(container="fhir", name=self.blob.name),
            subscription=SUB,
            attempt=attempt,
        )

    def delivery(self) -> Delivery:
        found = self.deliveries.get(SUB, "Observation|o1|1")
        assert found is not None
        return found

    def run_until_settled(self) -> list[int]:
        """Feed each scheduled retry back, moving the clock by its delay; the delays."""
        delays = []
        state = self.stage.handle(self.envelope())
        while state is DeliveryState.PENDING:
            queue, retry, delay = self.sender.sent[-1]
            assert queue is Queue.DELIVER
            delays.append(delay)
            self.clock.now += timedelta(seconds=delay)
            state = self.stage.handle(retry)
        return delays


def test_success_is_signed_and_recorded() -> None:
    world = World(Answer(200))
    assert world.stage.handle(world.envelope()) is DeliveryState.DELIVERED
    url, body, headers = world.transport.posts[0]
    assert url == "https://hooks.example.org/in"
    assert headers["webhook-id"] == "msg_" + SUB + "_1"
    assert headers["webhook-timestamp"] == str(int(START.timestamp()))
    assert headers["Content-Type"] == "application/fhir+json"
    signer = Webhook(world.secret)
    assert signer.sign(headers["webhook-id"], START, body.decode()) == headers["webhook-signature"]
    assert world.delivery().state is DeliveryState.DELIVERED
    assert [a.status for a in world.delivery().attempts] == [200]
    assert "resource" not in json.loads(body)["entry"][1]  # id-only by default


def test_retries_follow_the_schedule_then_dead_letter(caplog: pytest.LogCaptureFixture) -> None:
    world = World(*[Answer(503)] * 7, Answer(None, error="time-out (ReadTimeout)"))
    with caplog.at_level(logging.INFO, logger="shared.notify.delivery"):
        delays = world.run_until_settled()
    assert len(delays) == 7
    for delay, base in zip(delays, SCHEDULE, strict=True):
        assert 0.9 * base - 1 <= delay <= 1.1 * base + 1
    assert len(world.transport.posts) == 8
    # Every attempt carried the same webhook-id and a fresh timestamp.
    assert {h["webhook-id"] for _, _, h in world.transport.posts} == {"msg_" + SUB + "_1"}
    stamps = [int(h["webhook-timestamp"]) for _, _, h in world.transport.posts]
    assert stamps == sorted(stamps) and len(set(stamps)) == 8
    dead, _ = world.dead.kept[(SUB, "Observation|o1|1")]
    assert [a.status for a in dead.attempts] == [503] * 7 + [None]
    assert dead.attempts[-1].error == "time-out (ReadTimeout)"
    sub = world.subs.get(SUB)
    assert sub is not None and sub.status is SubscriptionStatus.ERROR
    assert "after 8 attempts" in (sub.error or "")
    # The outcome is in the message text: Azure's traces keep only that, and the
    # dead-letter alert in infra/modules/alerts.bicep matches it.
    outcomes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("deliver: ")]
    assert outcomes == ["deliver: pending"] * 7 + ["deliver: dead"]


def test_retry_after_is_honoured() -> None:
    world = World(Answer(429, retry_after=120), Answer(200))
    assert world.run_until_settled() == [120]


def test_gone_turns_the_subscription_off_and_keeps_the_event() -> None:
    world = World(Answer(410))
    assert world.stage.handle(world.envelope()) is DeliveryState.DEAD
    sub = world.subs.get(SUB)
    assert sub is not None and sub.status is SubscriptionStatus.OFF
    assert "410" in (sub.error or "")
    assert (SUB, "Observation|o1|1") in world.dead.kept
    assert world.sender.sent == []  # no retry


def test_replay_delivers_again_with_the_same_webhook_id() -> None:
    world = World(*[Answer(500)] * 8)
    world.run_until_settled()
    errored = world.subs.get(SUB)
    assert errored is not None and errored.status is SubscriptionStatus.ERROR
    assert replay_dead_letters(SUB, world.dead, world.deliveries, world.sender) == 1
    assert world.dead.kept == {}
    _, replayed, delay = world.sender.sent[-1]
    assert delay == 0 and replayed.attempt == 0
    assert world.stage.handle(replayed) is DeliveryState.DELIVERED
    assert world.transport.posts[-1][2]["webhook-id"] == "msg_" + SUB + "_1"
    assert len(world.delivery().attempts) == 9  # the history is kept across rounds
    sub = world.subs.get(SUB)
    assert sub is not None and sub.status is SubscriptionStatus.ACTIVE and sub.error is None


def test_replay_since_skips_older_dead_letters() -> None:
    world = World(*[Answer(500)] * 8)
    world.run_until_settled()
    later = world.clock.now + timedelta(seconds=1)
    assert replay_dead_letters(SUB, world.dead, world.deliveries, world.sender, later) == 0


def test_stale_and_duplicate_messages_are_dropped() -> None:
    world = World(Answer(500), Answer(200))
    assert world.stage.handle(world.envelope()) is DeliveryState.PENDING
    assert world.stage.handle(world.envelope()) is None  # attempt 0 again: stale
    assert len(world.transport.posts) == 1
    _, retry, _ = world.sender.sent[-1]
    assert world.stage.handle(retry) is DeliveryState.DELIVERED
    assert world.stage.handle(retry) is None  # delivered already
    assert len(world.transport.posts) == 2


def test_every_payload_passes_consent_as_disclose_and_a_withheld_one_sends_nothing() -> None:
    allowed = World(Answer(200), content=Content.FULL_RESOURCE)
    allowed.stage.handle(allowed.envelope())
    body = json.loads(allowed.transport.posts[0][1])
    assert body["entry"][1]["resource"]["id"] == "o1"
    reader = allowed.record.readers[0]
    assert reader.action is Action.DISCLOSE and reader.purpose.code == "TREAT"
    assert "urn:fhir-intake:partner|acme" in reader.actor.identifiers

    for content in (Content.FULL_RESOURCE, Content.ID_ONLY):
        denied = World(Answer(200), content=content, permit=False)
        assert denied.stage.handle(denied.envelope()) is DeliveryState.SKIPPED
        assert denied.transport.posts == []  # not even the id: it says a change happened
        (row,) = denied.deliveries.rows.values()
        assert denied.record.readers and row.state is DeliveryState.SKIPPED


def test_rotation_overlap_signs_with_both_secrets() -> None:
    world = World(Answer(200), Answer(200))
    newer = new_secret()
    world.secrets.set(secret_name(SUB, 2), newer)
    world.subs.update(
        SUB,
        lambda s: s.model_copy(
            update={
                "secret_generation": 2,
                "previous_generation": 1,
                "previous_until": START + timedelta(hours=1),
            }
        ),
    )
    world.stage.handle(world.envelope())
    _, body, headers = world.transport.posts[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    current, previous = headers["webhook-signature"].split(" ")
    assert current == Webhook(newer).sign(headers["webhook-id"], START, body.decode())
    assert previous == Webhook(world.secret).sign(headers["webhook-id"], START, body.decode())
    # After the overlap only the new secret signs.
    world.clock.now = START + timedelta(hours=2)
    world.deliveries.save(
        world.delivery().model_copy(update={"state": DeliveryState.PENDING, "sent": 0})
    )
    world.stage.handle(world.envelope())
    assert len(world.transport.posts[-1][2]["webhook-signature"].split(" ")) == 1


def test_a_missing_secret_is_a_failed_attempt_not_a_crash() -> None:
    world = World()
    world.secrets.delete(secret_name(SUB, 1))
    assert world.stage.handle(world.envelope()) is DeliveryState.PENDING
    assert world.transport.posts == []
    assert world.delivery().attempts[0].error == "the subscription's signing secret is missing"


def test_deliveries_for_a_deleted_or_paused_subscription_are_skipped() -> None:
    world = World()
    world.subs.update(SUB, lambda s: s.model_copy(update={"status": SubscriptionStatus.OFF}))
    assert world.stage.handle(world.envelope()) is DeliveryState.SKIPPED
    assert world.transport.posts == []
