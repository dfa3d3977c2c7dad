"""Queue triggers through the local host on Azurite: success, retries, poison, encoding."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.platform.names import poison_queue
from tests.e2e.conftest import Results, clients_for
from tests.support.hostproc import wait_for

pytestmark = pytest.mark.azurite


def peek(queue: Any) -> list[Any]:
    """Messages on a queue without taking them; none while the queue does not exist yet."""
    try:
        return list(queue.peek_messages(max_messages=32))
    except ResourceNotFoundError:
        return []


def test_output_binding_message_reaches_the_queue_trigger(semantics_host) -> None:  # type: ignore[no-untyped-def]
    host, env = semantics_host
    results = Results(clients_for(env))
    marker = str(uuid.uuid4())
    with host.client() as client:
        assert (
            client.post("/api/enqueue", content=json.dumps({"marker": marker})).status_code == 202
        )
    seen = wait_for(
        lambda: [r for r in results.list("work/") if marker in str(r["body"])], what="work result"
    )
    assert len(seen) == 1
    assert json.loads(str(seen[0]["body"])) == {"marker": marker}
    assert seen[0]["dequeue_count"] == 1
    assert seen[0]["function"] == "work"
    queue = clients_for(env).queue_client("work")
    # deleted after success: nothing left, visible or not
    wait_for(lambda: queue.get_queue_properties().approximate_message_count == 0, what="delete")


def test_failing_handler_is_retried_then_poisoned_with_body_intact(semantics_host) -> None:  # type: ignore[no-untyped-def]
    _, env = semantics_host
    clients = clients_for(env)
    results = Results(clients)
    body = json.dumps({"case": "poison", "n": str(uuid.uuid4())}).encode()
    sent = clients.queue_client("flaky").send_message(body)
    poison = clients.queue_client(poison_queue("flaky"))
    poisoned = wait_for(lambda: peek(poison), timeout=60, what="poison message")
    assert [m.content for m in poisoned] == [body]
    attempts = sorted(results.list(f"flaky/{sent.id}/"), key=lambda r: r["dequeue_count"])  # type: ignore[arg-type, return-value]
    assert [a["dequeue_count"] for a in attempts] == [
        1,
        2,
        3,
    ]  # maxDequeueCount in tests/apps/host.json
    gaps = [float(b["at"]) - float(a["at"]) for a, b in itertools.pairwise(attempts)]  # type: ignore[arg-type]
    # visibilityTimeout is 3 s: a failed message stays invisible that long before its retry
    assert all(gap >= 2.9 for gap in gaps), gaps
    assert clients.queue_client("flaky").get_queue_properties().approximate_message_count == 0


def test_undecodable_message_goes_to_poison_and_host_lives_on(semantics_host) -> None:  # type: ignore[no-untyped-def]
    host, env = semantics_host
    clients = clients_for(env)
    from azure.storage.queue import QueueClient

    conn = env["AzureWebJobsStorage"]
    raw = QueueClient.from_connection_string(conn, clients.queue_client("work").queue_name)
    raw.send_message("this is not base64 !!")
    poison = clients.queue_client(poison_queue("work"))
    raw_poison = QueueClient.from_connection_string(conn, poison.queue_name)
    found = wait_for(lambda: peek(raw_poison), what="poisoned raw message")
    assert [m.content for m in found] == ["this is not base64 !!"]
    assert "is not valid base64" in host.logs()
    with host.client() as client:
        assert client.get("/api/files/ok").text == "ok"


def test_str_annotated_trigger_gets_the_decoded_text(semantics_host) -> None:  # type: ignore[no-untyped-def]
    _, env = semantics_host
    clients = clients_for(env)
    results = Results(clients)
    clients.queue_client("slowq").send_message("plain text ✓".encode())
    seen = wait_for(lambda: results.list("slowq/"), timeout=30, what="slowq result")
    assert [r["body"] for r in seen] == ["plain text ✓"]


def test_batch_size_and_threshold_bound_concurrency(semantics_host) -> None:  # type: ignore[no-untyped-def]
    """batchSize 4 + newBatchThreshold 2 (tests/apps/host.json): at most 6 at once, and more
    than one batch's worth in parallel."""
    _, env = semantics_host
    clients = clients_for(env)
    results = Results(clients)
    queue = clients.queue_client("parallel")
    for n in range(14):
        queue.send_message(str(n).encode())
    runs = wait_for(
        lambda: (r := results.list("parallel/")) and len(r) == 14 and r, timeout=60, what="14 runs"
    )
    moments = sorted({float(r["start"]) for r in runs} | {float(r["end"]) for r in runs})  # type: ignore[arg-type]
    peak = max(
        sum(1 for r in runs if float(r["start"]) <= t < float(r["end"]))  # type: ignore[arg-type]
        for t in moments
    )
    assert 4 < peak <= 6, peak


def test_a_message_sent_with_the_sdk_wakes_its_listener_at_once(azurite, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An idle listener backs off to maxPollingInterval (10 minutes in this host.json); a
    message a function of the same host sends with the storage SDK, as every stage does,
    wakes it as an output binding's message does, instead of waiting for the next poll."""
    import time

    from tests.e2e.conftest import start_host

    host, env = start_host(tmp_path, azurite, keys, host_json="host-slow-polls.json")
    try:
        # Polls of the idle queue: at 0.2, 0.6, 1.4, 3.0, 6.2 and 12.6 s, then at 25.4 s.
        time.sleep(13)
        results = Results(clients_for(env))
        marker = str(uuid.uuid4())
        with host.client() as client:
            sent = client.post("/api/enqueue-sdk", content=json.dumps({"marker": marker}))
        assert sent.status_code == 202
        seen = wait_for(
            lambda: [r for r in results.list("work/") if marker in str(r["body"])],
            timeout=9,
            what="the SDK message handled before the listener's next poll",
        )
        assert json.loads(str(seen[0]["body"])) == {"marker": marker}
    finally:
        assert host.stop() == 0
