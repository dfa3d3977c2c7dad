"""Creates every container, queue (with its poison twin) and table the code names.

In Azure the Bicep templates provision them; locally and in tests this does, and it
is idempotent so every start can call it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from azure.core.exceptions import AzureError, ResourceExistsError

from .errors import StorageUnavailableError
from .names import LOCAL_ONLY_TABLES, Container, Queue, Table, poison_queue
from .storage import StorageClients

__all__ = ["provision_storage"]


def provision_storage(clients: StorageClients, *, local: bool = True) -> int:
    """Create what is missing; leave what exists untouched.

    Args:
        clients: the account to provision.
        local: also create the tables only the local host uses.

    Returns:
        How many containers, queues and tables are now known to exist.

    Raises:
        StorageUnavailableError: storage refused or did not answer.
    """
    ensured = 0

    def _count(create: Callable[[], object]) -> None:
        nonlocal ensured
        with contextlib.suppress(ResourceExistsError):
            create()
        ensured += 1

    try:
        for container in Container:
            _count(clients.container(container).create_container)
        for queue in Queue:
            _count(clients.queue_client(queue).create_queue)
            _count(clients.queue_client(poison_queue(queue)).create_queue)
        for table in Table:
            if local or table not in LOCAL_ONLY_TABLES:
                _count(clients.table_client(table).create_table)
    except AzureError as exc:
        raise StorageUnavailableError(f"provisioning storage failed: {type(exc).__name__}") from exc
    return ensured
