"""How many messages wait in each poison queue.

Azure Storage has no per-queue metric, so the sweeper timer reads each ``-poison`` queue's
approximate count and logs the ones that are not empty; the poison-depth alert in
``infra/modules/alerts.bicep`` fires on those lines and resolves once the queues are empty.
"""

from __future__ import annotations

from azure.core.exceptions import AzureError, ResourceNotFoundError

from .errors import StorageUnavailableError
from .names import Queue, poison_queue
from .storage import StorageClients

__all__ = ["poison_depths"]


def poison_depths(clients: StorageClients) -> dict[str, int]:
    """Approximate message counts of every poison queue, by logical name (a queue that
    does not exist yet holds nothing).

    Raises:
        StorageUnavailableError: the queue service did not answer.
    """
    depths: dict[str, int] = {}
    for queue in Queue:
        name = poison_queue(queue)
        try:
            properties = clients.queue_client(name).get_queue_properties()
        except ResourceNotFoundError:
            depths[name] = 0
            continue
        except AzureError as exc:
            raise StorageUnavailableError(f"reading {name} failed: {type(exc).__name__}") from exc
        depths[name] = properties.approximate_message_count or 0
    return depths
