"""The host's own log lines carry ids and counts, never what callers sent."""

from __future__ import annotations

import base64

import pytest

from tests.e2e.conftest import clients_for
from tests.support.hostproc import wait_for

pytestmark = pytest.mark.azurite

CANARY = "CANARY-Jane-Q-Public-1970-01-01"


def test_no_body_query_or_path_value_reaches_the_log(semantics_host, keys) -> None:  # type: ignore[no-untyped-def]
    host, env = semantics_host
    with host.client() as client:
        client.post(
            f"/api/items/books/1?name={CANARY}",
            content=CANARY.encode(),
            headers={"x-functions-key": keys["function"], "X-Patient": CANARY},
        )
        client.get(f"/api/no-such/{CANARY}")
        client.get(f"/api/items/books/1?name={CANARY}", headers={"x-functions-key": CANARY})
        client.post("/api/enqueue", content=CANARY)
    clients = clients_for(env)
    clients.queue_client("flaky").send_message(CANARY.encode())
    from azure.storage.queue import QueueClient

    raw = QueueClient.from_connection_string(
        env["AzureWebJobsStorage"], clients.queue_client("work").queue_name
    )
    raw.send_message(f"{CANARY} not base64")
    wait_for(lambda: "moving it to 'flaky-poison'" in host.logs(), timeout=60, what="poisoned")
    logs = host.logs()
    assert "Executed 'Functions.enqueue'" in logs  # the log was written: it is not empty
    for leaked in (CANARY, base64.b64encode(CANARY.encode()).decode()):
        assert leaked not in logs
