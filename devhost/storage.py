"""Async storage clients for the host's listeners and output bindings.

The host reads and writes queue messages as raw text and does the base64 step itself
(``messageEncoding`` in host.json decides), so a poison message keeps its exact body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from shared.platform.names import physical_name
from shared.platform.settings import Settings
from shared.platform.storage import connect_services

__all__ = ["HostStorage"]


@dataclass
class HostStorage:
    """The app's storage account, addressed by logical names."""

    blob: BlobServiceClient
    queue: QueueServiceClient
    table: TableServiceClient
    prefix: str
    _closers: tuple[Any, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> HostStorage:
        """Connect with the connection string, or with DefaultAzureCredential."""
        from azure.identity.aio import DefaultAzureCredential

        credentials: list[DefaultAzureCredential] = []

        def credential() -> DefaultAzureCredential:
            credentials.append(
                DefaultAzureCredential(managed_identity_client_id=settings.storage_client_id)
            )
            return credentials[0]

        blob, queue, table = connect_services(
            settings, (BlobServiceClient, QueueServiceClient, TableServiceClient), credential
        )
        return cls(blob, queue, table, settings.storage_prefix, tuple(credentials))

    def physical(self, name: str, *, table: bool = False) -> str:
        """The account-level name for a logical one."""
        return physical_name(name, self.prefix, table=table)

    def queue_client(self, name: str) -> QueueClient:
        """A raw-text client for a logical queue name."""
        return self.queue.get_queue_client(self.physical(name))

    def container(self, name: str) -> ContainerClient:
        """A client for a logical container name."""
        return self.blob.get_container_client(self.physical(name))

    def table_client(self, name: str) -> TableClient:
        """A client for a logical table name."""
        return self.table.get_table_client(self.physical(name, table=True))

    async def close(self) -> None:
        """Close every connection pool."""
        for client in (self.blob, self.queue, self.table, *self._closers):
            await client.close()
