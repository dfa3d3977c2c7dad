"""Blob events, timers and graceful shutdown of the local host, on Azurite."""

from __future__ import annotations

import signal
import threading
import time
import uuid

import httpx
import pytest

from shared.platform.names import Container
from tests.e2e.conftest import Results, clients_for, start_host
from tests.support.hostproc import wait_for

pytestmark = pytest.mark.azurite


def test_blob_dropped_in_ingest_drop_reaches_the_handler_exactly_once(
    azurite, keys, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    host, env = start_host(tmp_path, azurite, keys)
    clients = clients_for(env)
    results = Results(clients)
    name = f"demo-partner/batch/{uuid.uuid4()}.ndjson"
    try:
        drop = clients.container(Container.INGEST_DROP)
        drop.upload_blob(name, b'{"resourceType":"Patient"}\n')
        events = wait_for(lambda: results.list("events/"), what="BlobCreated event")
        time.sleep(3)  # several more scans: the same blob must not be announced again
        events = results.list("events/")
        assert len(events) == 1
        event = events[0]
        assert event["eventType"] == "Microsoft.Storage.BlobCreated"
        assert event["subject"] == (
            f"/blobServices/default/containers/{drop.container_name}/blobs/{name}"
        )
        assert event["data"]["contentLength"] == 27  # type: ignore[index]
        assert event["data"]["url"].endswith(f"/{drop.container_name}/{name}")  # type: ignore[index]
        etag = drop.get_blob_client(name).get_blob_properties().etag
        assert event["data"]["eTag"] == etag.strip('"')  # Event Grid sends it unquoted  # type: ignore[index]
    finally:
        assert host.stop() == 0
    # A restarted host remembers what it announced.
    host.start()
    try:
        time.sleep(3)
        assert len(results.list("events/")) == 1
        # A new version of the blob (new ETag) is a new BlobCreated event, as in Azure.
        drop.upload_blob(name, b'{"resourceType":"Patient","id":"x"}\n', overwrite=True)
        wait_for(lambda: len(results.list("events/")) == 2, what="event for the overwrite")
    finally:
        assert host.stop() == 0


def test_timer_fires_on_its_schedule(semantics_host) -> None:  # type: ignore[no-untyped-def]
    _, env = semantics_host
    results = Results(clients_for(env))
    before = len(results.list("ticks/"))
    time.sleep(3.5)
    fired = len(results.list("ticks/")) - before
    assert 2 <= fired <= 5  # every second ("* * * * * *"), give or take scheduling


def test_sigterm_lets_a_slow_http_handler_finish(azurite, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    host, _ = start_host(tmp_path, azurite, keys)
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["response"] = httpx.get(
                f"{host.base_url}/api/slow", params={"s": "3"}, timeout=30
            )
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: "Executing 'Functions.slow'" in host.logs(), what="slow handler start")
    host.send(signal.SIGTERM)

    def refused() -> bool:
        try:
            httpx.get(f"{host.base_url}/api/files/x", timeout=1)
        except httpx.HTTPError:
            return True
        return False

    # no new work while stopping: new connections are refused, while the slow one runs on
    wait_for(refused, timeout=2.5, interval=0.1, what="new connections to be refused")
    assert caller.is_alive()
    caller.join(30)
    response = outcome.get("response")
    assert isinstance(response, httpx.Response), outcome
    assert (response.status_code, response.text) == (200, "finished")
    assert host.process is not None
    assert host.process.wait(30) == 0
    assert "Host stopped" in host.logs()


def test_sigterm_lets_a_slow_queue_handler_finish_and_delete(azurite, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    host, env = start_host(tmp_path, azurite, keys)
    clients = clients_for(env)
    results = Results(clients)
    clients.queue_client("slowq").send_message(b"finish me")
    wait_for(lambda: "Executing 'Functions.slow_queue'" in host.logs(), what="queue handler start")
    assert host.stop(signal.SIGTERM) == 0
    assert [r["body"] for r in results.list("slowq/")] == ["finish me"]
    props = clients.queue_client("slowq").get_queue_properties()
    assert props.approximate_message_count == 0


def test_health_of_the_real_app_through_the_host(azurite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shared.platform.provision import provision_storage
    from tests.e2e.conftest import make_env
    from tests.support.hostproc import REPO, HostProcess, write_settings

    env = make_env(azurite)
    host = HostProcess(
        root=REPO,
        app="function_app:app",
        env=env,
        log_path=tmp_path / "host.log",
        settings=write_settings(tmp_path / "s.json", "k", "m"),
    )
    host.start()
    try:
        with host.client() as client:
            before = client.get("/api/health")
            # storage answers, but nothing is provisioned under this prefix yet
            assert before.status_code == 503
            assert before.json()["storage"]["blob"]["status"] == "missing"
            provision_storage(clients_for(env))
            after = client.get("/api/health")
            assert after.status_code == 200
            body = after.json()
            assert body["status"] == "ok"
            assert {k: v["status"] for k, v in body["storage"].items()} == {
                "blob": "ok",
                "queue": "ok",
                "table": "ok",
            }
            assert body["version"] == __import__("shared").__version__
            assert "AccountKey" not in after.text and "devstoreaccount1" not in after.text
    finally:
        assert host.stop() == 0
