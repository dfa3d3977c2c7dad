"""A running local host with the semantics test app, shared by a test module."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError

from shared.pipeline.journey import TableIngestionLog
from shared.platform.names import Table
from shared.platform.provision import provision_storage
from shared.platform.settings import Settings
from shared.platform.storage import StorageClients, build_storage_clients
from shared.security import Partner, TablePartnerDirectory
from tests.support.hostproc import REPO, HostProcess, wait_for, write_settings

APPS = REPO / "tests" / "apps"
# How the local host reports a function that raised (HTTP, timer, queue message), with
# the exception type last. Storage that did not answer in time is retried by design (an
# overloaded Azurite on a busy machine), so it is not counted as a bug here.
_FAILED = re.compile(r"' failed(?::| on message [^:]*:) (?!StorageUnavailableError\b)\w+")


class Results:
    """Reads what the test app recorded in its ``results`` container."""

    def __init__(self, clients: StorageClients) -> None:
        self.container = clients.container("results")  # type: ignore[arg-type]
        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()

    def list(self, prefix: str) -> list[dict[str, object]]:
        return [
            json.loads(self.container.download_blob(b.name).readall())
            for b in self.container.list_blobs(name_starts_with=prefix)
        ]


def make_env(azurite: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": azurite,
        "INTAKE_STORAGE_PREFIX": "t" + secrets.token_hex(5),
        "INTAKE_ENVIRONMENT": "development",
    }


def clients_for(env: dict[str, str]) -> StorageClients:
    return build_storage_clients(Settings(**env))  # type: ignore[arg-type]


def storage_with_partner(env: dict[str, str], partner: Partner) -> tuple[StorageClients, str]:
    """Storage for ``env``, provisioned, with ``partner`` registered: clients and its key."""
    clients = clients_for(env)
    provision_storage(clients)
    directory = TablePartnerDirectory(clients.table_client(Table.PARTNERS))
    directory.upsert(partner)
    return clients, directory.issue_key(partner.id).token


def product_host(
    tmp: Path,
    env: dict[str, str],
    host_json: Path = APPS / "host.json",  # fast retries
    app: str = "function_app:app",
    name: str = "host",
) -> HostProcess:
    """The product's Function App (or ``app``) on a local host child process, not started;
    function key ``fk``."""
    return HostProcess(
        root=REPO if app == "function_app:app" else APPS,
        app=app,
        env=env,
        log_path=tmp / f"{name}.log",
        host_json=host_json,
        settings=write_settings(tmp / f"{name}.json", "fk", "mk"),
    )


def post_hl7(client: httpx.Client, key: str, message: bytes, idempotency: str) -> httpx.Response:
    """POST one HL7 v2 message to a ``product_host``'s ``/api/ingest`` as partner ``key``;
    a resend carries the same ``idempotency`` key. Transport errors are the caller's."""
    return client.post(
        "/api/ingest",
        content=message,
        headers={
            "x-functions-key": "fk",
            "x-api-key": key,
            "content-type": "x-application/hl7-v2+er7",
            "idempotency-key": idempotency,
        },
    )


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {"function": secrets.token_urlsafe(24), "master": secrets.token_urlsafe(24)}


def start_host(
    tmp: Path,
    azurite: str,
    keys: dict[str, str],
    extra_env: dict[str, str] | None = None,
    host_json: str = "host.json",
) -> tuple[HostProcess, dict[str, str]]:
    env = {**make_env(azurite), **(extra_env or {})}
    settings = write_settings(tmp / "local.settings.json", keys["function"], keys["master"])
    host = HostProcess(
        root=APPS,
        app="semantics_app:app",
        env=env,
        log_path=tmp / "host.log",
        host_json=APPS / host_json,
        settings=settings,
    )
    return host.start(), env


@pytest.fixture(scope="module")
def semantics_host(
    azurite: str, keys: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HostProcess, dict[str, str]]]:
    host, env = start_host(tmp_path_factory.mktemp("host"), azurite, keys)
    yield host, env
    code = host.stop()
    assert code == 0, host.logs()


@contextlib.contextmanager
def product_api(
    azurite: str,
    tmp: Path,
    partners: list[Partner],
    function_key: str,
    extra_env: dict[str, str] | None = None,
    allow_failures: bool = False,
) -> Iterator[dict[str, Any]]:
    """The product's Function App on a local host with fresh storage and these partners:
    an httpx client (function key set), each partner's API key, storage clients, host.

    At the end no function may have failed (HTTP, timer or queue invocation), unless the
    module's tests make them fail on purpose (``allow_failures``)."""
    env = {**make_env(azurite), **(extra_env or {})}
    clients = clients_for(env)
    provision_storage(clients)
    directory = TablePartnerDirectory(clients.table_client(Table.PARTNERS))
    keys = {}
    for partner in partners:
        directory.upsert(partner)
        keys[partner.id] = directory.issue_key(partner.id).token
    host = HostProcess(
        root=REPO,
        app="function_app:app",
        env=env,
        log_path=tmp / "host.log",
        host_json=APPS / "host.json",  # fast retries
        settings=write_settings(tmp / "s.json", function_key, "mk"),
    )
    # As a deployment names its origin: links use it whatever Host a caller sends.
    host.env.setdefault("INTAKE_PUBLIC_BASE_URL", host.base_url)
    host.start()
    with httpx.Client(
        base_url=f"{host.base_url}/api", timeout=30, headers={"x-functions-key": function_key}
    ) as client:
        yield {"client": client, "keys": keys, "clients": clients, "host": host}
    assert host.stop() == 0, host.logs()
    # Every input these tests send is handled: a function that raised is a bug (the
    # queue would retry it and finally park it in a poison queue).
    if not allow_failures:
        failures = [line for line in host.logs().splitlines() if _FAILED.search(line)]
        assert not failures, "\n".join(failures)


def post_ingest(
    api: dict[str, Any], partner: str, body: bytes, content_type: str, mapping: str = ""
) -> str:
    """Submit over HTTP as ``partner`` (a fresh Idempotency-Key: a deliberate resend is a
    new ingestion); the ingestion id."""
    response = api["client"].post(
        "/ingest",
        params={"mapping": mapping} if mapping else None,
        content=body,
        headers={
            "content-type": content_type,
            "x-api-key": api["keys"][partner],
            "idempotency-key": secrets.token_hex(16),
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_stage(
    api: dict[str, Any], partner: str, ingestion: str, stage: str, timeout: float = 60
) -> dict[str, Any]:
    """The ingestion's row once ``stage`` has reported on it."""
    log = TableIngestionLog(api["clients"].table_client(Table.INGESTIONS))
    row: dict[str, Any] = wait_for(
        lambda: (found := log.get(partner, ingestion)) and f"{stage}_status" in found and found,
        what=f"{stage} status of {ingestion}",
        timeout=timeout,
    )
    return row
