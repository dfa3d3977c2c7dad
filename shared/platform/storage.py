"""Builds blob, queue and table service clients from settings.

Two ways to reach storage, as Azure Functions itself does: a connection string
(Azurite locally), or identity-based ``AzureWebJobsStorage__*`` settings with
``DefaultAzureCredential`` (managed identity in Azure). Queue clients speak base64,
the Functions queue trigger's default encoding, so every stage reads what another wrote.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    QueueClient,
    QueueServiceClient,
)

from .errors import ConfigurationError, StorageUnavailableError
from .names import Container, Setting, Table, physical_name
from .settings import Settings
from .transport import StorageTransport

__all__ = [
    "FAIL_FAST",
    "ServiceEndpoints",
    "StorageClients",
    "build_storage_clients",
    "connect_services",
    "is_table_key",
    "service_endpoints",
    "storage_errors",
]


@dataclass(frozen=True, slots=True)
class ServiceEndpoints:
    """The three service URLs of one storage account."""

    blob: str
    queue: str
    table: str


_BASE64: dict[str, Any] = {
    "message_encode_policy": BinaryBase64EncodePolicy(),
    "message_decode_policy": BinaryBase64DecodePolicy(),
}


# Storage calls give up within a few seconds: an HTTP caller then gets a 503 with
# Retry-After instead of a connection that hangs while storage is away, and a stage's
# message goes back to its queue, which retries it. The SDK defaults wait 15, 18 and 24 s
# between blob and queue attempts (about a minute), longer than most callers wait.
FAIL_FAST: dict[str, Any] = {
    "retry_total": 2,
    "initial_backoff": 0,  # blob and queue wait 0 + 1.5**attempt s: 1.5, then 2.3
    "increment_base": 1.5,
    "random_jitter_range": 0.5,
    "retry_backoff_factor": 0.5,  # tables: at once, then 1 s
    "retry_backoff_max": 2,
    "connection_timeout": 5,
}


@dataclass(frozen=True, slots=True)
class StorageClients:
    """Service clients for one storage account, handing out clients by logical name.

    Each client is thread-safe and reused; the prefix from settings is applied here,
    so callers never see physical names.
    """

    blob: BlobServiceClient
    queue: QueueServiceClient
    table: TableServiceClient
    prefix: str = ""

    def container(self, name: Container) -> ContainerClient:
        """A container client for a logical container name."""
        return self.blob.get_container_client(physical_name(name, self.prefix))

    def queue_client(self, name: str) -> QueueClient:
        """A base64 queue client for a logical queue name (poison twins included)."""
        return self.queue.get_queue_client(physical_name(name, self.prefix), **_BASE64)

    def table_client(self, name: Table) -> TableClient:
        """A table client for a logical table name."""
        return self.table.get_table_client(physical_name(name, self.prefix, table=True))


def service_endpoints(settings: Settings) -> ServiceEndpoints:
    """The endpoints for identity-based access, explicit URIs winning over the account name."""
    account = settings.storage_account_name
    return ServiceEndpoints(
        blob=settings.storage_blob_uri or f"https://{account}.blob.core.windows.net",
        queue=settings.storage_queue_uri or f"https://{account}.queue.core.windows.net",
        table=settings.storage_table_uri or f"https://{account}.table.core.windows.net",
    )


def connect_services(
    settings: Settings,
    kinds: tuple[type[Any], type[Any], type[Any]],
    credential: Callable[[], Any],
    transport: Callable[[], Any] | None = None,
    **options: Any,
) -> tuple[Any, Any, Any]:
    """Blob, queue and table service clients of the given (sync or async) classes.

    Args:
        settings: where the account is and how to authenticate.
        kinds: the blob, queue and table service client classes.
        credential: makes the token credential when storage is identity-based.
        transport: makes each client's HTTP transport (the SDK's default when None).
        options: Azure SDK client options (``retry_total``, ``connection_timeout``...).

    Raises:
        ConfigurationError: the connection string is malformed.
    """

    def own(kind: type[Any]) -> dict[str, Any]:
        return options if transport is None else {**options, "transport": transport()}

    conn = settings.connection_string
    if conn is not None:
        try:
            return tuple(  # type: ignore[return-value]
                kind.from_connection_string(conn, **own(kind)) for kind in kinds
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"{Setting.STORAGE} is not a valid storage connection string"
            ) from exc
    endpoints = service_endpoints(settings)
    token = credential()
    urls = (endpoints.blob, endpoints.queue, endpoints.table)
    return tuple(  # type: ignore[return-value]
        kind(url, credential=token, **own(kind)) for kind, url in zip(kinds, urls, strict=True)
    )


def build_storage_clients(settings: Settings, **options: Any) -> StorageClients:
    """Create the clients; no network call happens until one is used.

    Args:
        settings: where the account is and how to authenticate.
        options: Azure SDK client options over ``FAIL_FAST`` (``retry_total``...).

    Raises:
        ConfigurationError: the connection string is malformed.
    """
    from azure.identity import DefaultAzureCredential

    chosen = {**FAIL_FAST, **options}
    # A transport given to a client is used as it is: the timeouts go to it, not the client.
    timeouts = {
        "connection_timeout": chosen.pop("connection_timeout", 20),
        "read_timeout": chosen.pop("read_timeout", 60),
        "connection_data_block_size": 256 * 1024,
    }
    blob, queue, table = connect_services(
        settings,
        (BlobServiceClient, QueueServiceClient, TableServiceClient),
        lambda: DefaultAzureCredential(managed_identity_client_id=settings.storage_client_id),
        lambda: StorageTransport(**timeouts),
        **chosen,
    )
    return StorageClients(blob=blob, queue=queue, table=table, prefix=settings.storage_prefix)


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Azure SDK errors inside become ``StorageUnavailableError`` (retryable), naming
    ``what`` failed and the error's type (never its text)."""
    try:
        yield
    except AzureError as exc:
        raise StorageUnavailableError(f"{what} failed: {type(exc).__name__}") from exc


# Characters a table PartitionKey or RowKey may not hold (Azure Table service data model).
_NOT_IN_KEYS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def is_table_key(text: str) -> bool:
    """Whether ``text`` can name a table row at all: an id from a URL that cannot is one
    no row has (not found), where the service would answer an error that reads as an
    outage."""
    return 0 < len(text.encode("utf-8")) <= 1024 and not _NOT_IN_KEYS.search(text)
