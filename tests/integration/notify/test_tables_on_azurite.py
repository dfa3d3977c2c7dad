"""Subscriptions, deliveries and dead letters on Azurite."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from shared import wiring
from shared.notify.adapters import BlobDeadLetters, TableDeliveryLog
from shared.notify.models import Delivery, DeliveryState, Event, Subscription
from shared.platform.names import Table
from shared.platform.provision import provision_storage

pytestmark = pytest.mark.azurite
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def subscription(ident: str, owner: str) -> Subscription:
    return Subscription(
        id=ident * 32,
        owner=owner,
        criteria="Observation",
        endpoint="https://hooks.example.org/in",
        base_url="https://intake.example.org/api/fhir",
        created=NOW,
        updated=NOW,
    )


def delivery(number: int, key: str = "Observation|o1|1") -> Delivery:
    return Delivery(
        subscription="a" * 32,
        key=key,
        number=number,
        event=Event.CREATE,
        correlation_id="ing-1",
        partner="hosp",
        blob="Observation/o1/_history/1.json",
        created=NOW,
    )


@pytest.fixture
def provisioned(storage_env):  # type: ignore[no-untyped-def]
    provision_storage(wiring.storage())


def test_subscriptions_round_trip_and_list_by_owner(provisioned: None) -> None:
    store = wiring.subscription_store()
    store.add(subscription("a", "acme"))
    store.add(subscription("b", "other"))
    assert store.get("a" * 32) == subscription("a", "acme")
    assert [s.id for s in store.list("acme")] == ["a" * 32]
    assert len(store.list()) == 2
    assert store.get("c" * 32) is None
    assert store.update("a" * 32, lambda s: None) is not None
    assert store.get("a" * 32) is None


def test_claims_number_events_once_across_instances(provisioned: None) -> None:
    """Three instances (own counter caches) claim 30 events at once: 1..30, each once."""
    table = wiring.storage().table_client(Table.DELIVERIES)
    instances = [TableDeliveryLog(table) for _ in range(3)]

    def claim(n: int) -> int:
        return instances[n % 3].claim(delivery(0, f"Observation|o{n}|1")).number

    with ThreadPoolExecutor(6) as pool:
        numbers = list(pool.map(claim, range(30)))
    assert sorted(numbers) == list(range(1, 31))
    assert instances[0].count("a" * 32) == 30
    again = instances[1].claim(delivery(0, "Observation|o7|1"))  # a key seen before
    assert again.number == numbers[7]
    assert instances[2].count("a" * 32) == 30  # no number spent on it


def test_delivery_rows_are_saved_under_their_etag(provisioned: None) -> None:
    log: TableDeliveryLog = wiring.deliveries()
    first = log.claim(delivery(0))
    assert first.number == 1
    assert log.save(first.model_copy(update={"sent": 1}))
    assert not log.save(first.model_copy(update={"sent": 2}))  # stale ETag: refused
    found = log.get("a" * 32, "Observation|o1|1")
    assert found is not None and found.sent == 1
    fresh = delivery(5, "Observation|o9|1")  # no ETag: created, once
    assert log.save(fresh) and not log.save(fresh)


def test_dead_letters_keep_attempts_and_filter_by_time(provisioned: None) -> None:
    dead: BlobDeadLetters = wiring.dead_letters()
    early = delivery(1).model_copy(update={"state": DeliveryState.DEAD})
    late = delivery(2, "Observation|o2|1").model_copy(update={"state": DeliveryState.DEAD})
    dead.put(early, NOW)
    dead.put(late, NOW + timedelta(hours=1))
    assert [d.number for d in dead.list("a" * 32)] == [1, 2]
    assert [d.number for d in dead.list("a" * 32, NOW + timedelta(minutes=30))] == [2]
    dead.remove(early)
    dead.remove(early)  # twice is fine
    assert [d.number for d in dead.list("a" * 32)] == [2]
    assert dead.list("b" * 32) == []
