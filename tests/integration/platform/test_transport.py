"""The storage transport on a real Azurite: each request names the function it serves,
the enqueue notice, and no proxy from the environment. Counted through the proxy
``make bench-ops`` uses, which must itself forward every request intact."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.storage.queue import QueueClient

from bench.ops_proxy import CountingProxy
from shared.platform.concurrency import each
from shared.platform.names import Container, Queue, Table
from shared.platform.provision import provision_storage
from shared.platform.settings import Settings, development_connection_string
from shared.platform.storage import StorageClients, build_storage_clients
from shared.platform.transport import invoking, on_enqueue

pytestmark = pytest.mark.azurite


def _clients(connection: str, prefix: str) -> StorageClients:
    return build_storage_clients(
        Settings(AzureWebJobsStorage=connection, INTAKE_STORAGE_PREFIX=prefix)  # type: ignore[call-arg]
    )


def _port(connection: str) -> int:
    return int(connection.split("BlobEndpoint=http://127.0.0.1:")[1].split("/")[0])


def test_requests_carry_the_invoking_function_even_from_worker_threads(azurite: str) -> None:
    with CountingProxy((p := _port(azurite), p + 1, p + 2), "tx1") as proxy:
        clients = _clients(development_connection_string(blob_port=proxy.ports[0]), "tx1")
        provision_storage(clients)
        proxy.take()
        raw = clients.container(Container.RAW)
        with invoking("normalize"):
            raw.upload_blob("a/one.txt", b"1" * 300)
            each(lambda n: raw.upload_blob(f"a/{n}.txt", b"x"), range(4), 4)
            clients.queue_client(Queue.STORE).send_message(b"m")
            clients.table_client(Table.CHECKPOINTS).submit_transaction(
                [("upsert", {"PartitionKey": "p", "RowKey": str(n)}) for n in range(3)]
            )
        assert raw.download_blob("a/one.txt").readall() == b"1" * 300
        seen = [(r.function, r.service, r.operation, r.target, r.status) for r in proxy.take()]
    assert seen[0] == ("normalize", "blob", "write", "raw", 201)
    assert sorted(seen[1:5]) == [("normalize", "blob", "write", "raw", 201)] * 4
    assert seen[5:] == [
        ("normalize", "queue", "send", "store", 201),
        ("normalize", "table", "batch", "checkpoints", 202),
        ("host", "blob", "read", "raw", 206),  # outside the block: untagged (a ranged read)
    ]


def test_each_enqueue_is_announced_by_physical_queue_name(storage_env: dict[str, str]) -> None:
    clients = _clients(storage_env["AzureWebJobsStorage"], storage_env["INTAKE_STORAGE_PREFIX"])
    provision_storage(clients)
    heard: list[str] = []
    stop = on_enqueue(heard.append)
    clients.queue_client(Queue.NOTIFY).send_message(b"a")
    clients.queue_client(Queue.DELIVER).send_message(b"b")
    list(clients.queue_client(Queue.NOTIFY).receive_messages())  # not an enqueue
    stop()
    clients.queue_client(Queue.NOTIFY).send_message(b"c")
    prefix = storage_env["INTAKE_STORAGE_PREFIX"]
    assert heard == [f"{prefix}-notify", f"{prefix}-deliver"]


def test_proxy_settings_in_the_environment_are_not_used(
    storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:1")  # nothing listens there
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    clients = _clients(storage_env["AzureWebJobsStorage"], storage_env["INTAKE_STORAGE_PREFIX"])
    provision_storage(clients)
    clients.queue_client(Queue.NOTIFY).send_message(b"direct")
    # The SDK's own transport would have gone to the dead proxy.
    default = QueueClient.from_connection_string(
        storage_env["AzureWebJobsStorage"], "anything", retry_total=0
    )
    with pytest.raises(ServiceRequestError):
        default.get_queue_properties()
