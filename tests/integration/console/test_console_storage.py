"""The console's adapters on a real Azurite: sessions round-trip (the token never stored),
journey rows found page by page within a time budget, poison queues peeked (left in
place, a body that is not base64 still shown), blob heads and names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared import wiring
from shared.console.adapters.storage import StorageConsoleReader, TableIngestionRows
from shared.console.adapters.table_sessions import TableSessionStore
from shared.console.models import Session
from shared.platform.names import Container, Queue, Table, poison_queue
from shared.platform.provision import provision_storage
from shared.security.models import Role

pytestmark = pytest.mark.azurite
NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def test_sessions_round_trip_and_end(storage_env) -> None:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    provision_storage(clients)
    store = TableSessionStore(clients.table_client(Table.CONSOLE_SESSIONS))
    session = Session(
        "ops",
        frozenset({Role.ADMIN, Role.INGEST}),
        "k1",
        "csrf-1",
        NOW,
        NOW + timedelta(hours=8),
        NOW,
    )
    store.save("a" * 64, session)
    assert store.load("a" * 64) == session
    assert store.load("b" * 64) is None
    (row,) = clients.table_client(Table.CONSOLE_SESSIONS).list_entities()
    assert set(row) == {
        "PartitionKey",
        "RowKey",
        "partner",
        "roles",
        "key",
        "csrf",
        "created",
        "expires",
        "seen",
    }
    store.delete("a" * 64)
    store.delete("a" * 64)  # twice: nothing to end is fine
    assert store.load("a" * 64) is None
    # The sweep removes what ended by idle or by lifetime, and nothing else.
    hour, later = timedelta(hours=1), timedelta(hours=8)
    for key, seen, expires in (
        ("idle", NOW, NOW + later),  # unused for an hour
        ("life", NOW + timedelta(minutes=55), NOW + hour),  # at its end
        ("live", NOW + timedelta(minutes=50), NOW + later),
    ):
        store.save(key, Session("ops", frozenset({Role.ADMIN}), "", "c", NOW, expires, seen))
    assert store.delete_ended(NOW + hour, timedelta(minutes=30)) == 2
    rows = clients.table_client(Table.CONSOLE_SESSIONS).list_entities()
    assert {r["PartitionKey"] for r in rows} == {"live"}


def test_rows_come_page_by_page_and_a_budget_stops_the_reading(storage_env) -> None:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    provision_storage(clients)
    table = clients.table_client(Table.INGESTIONS)
    for n in range(1200):  # three pages of 500
        table.upsert_entity(
            {
                "PartitionKey": f"p{n % 3}",
                "RowKey": f"r{n:05d}",
                "received_at": NOW - timedelta(seconds=n),
            }
        )
    rows = TableIngestionRows(table)
    found, complete = rows.find("", {}, 5000)
    assert len(found) == 1200 and complete
    some, complete = rows.find("PartitionKey eq @p", {"p": "p1"}, 100)
    assert len(some) == 100 and not complete and {r["PartitionKey"] for r in some} == {"p1"}
    recent, complete = rows.find(
        "received_at ge @since", {"since": NOW - timedelta(seconds=9.5)}, 5000
    )
    assert len(recent) == 10 and complete
    hurried, complete = TableIngestionRows(table, budget=0).find("", {}, 5000)
    assert len(hurried) == 500 and not complete  # one page, then the budget said stop
    assert rows.get("p0", "r00000") is not None and rows.get("p0", "nope") is None


def test_poison_queues_are_peeked_and_left_in_place(storage_env) -> None:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    provision_storage(clients)
    clients.queue_client(poison_queue(Queue.NORMALIZE)).send_message(b'{"not": "an envelope"}')
    raw = clients.queue.get_queue_client(
        clients.queue_client(poison_queue(Queue.NORMALIZE)).queue_name
    )
    raw.send_message("plain text, not base64!")
    reader = StorageConsoleReader(clients)
    bodies = [body for body, _, _ in reader.peek(Queue.NORMALIZE, 32)]
    assert bodies == [b'{"not": "an envelope"}', b"plain text, not base64!"]
    assert len(reader.peek(Queue.NORMALIZE, 32)) == 2  # still there
    assert reader.peek(Queue.STORE, 32) == []

    container = clients.container(Container.RAW)
    container.upload_blob("p/2026/12/04/x.hl7", b"MSH|" + b"x" * 5000)
    assert reader.head(Container.RAW, "p/2026/12/04/x.hl7", 10) == (b"MSH|xxxxxx", 5004)
    assert reader.head(Container.RAW, "p/nope", 10) is None
    assert reader.names(Container.RAW, "p/2026/", 5) == ["p/2026/12/04/x.hl7"]
