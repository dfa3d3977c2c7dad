"""How many messages wait in each queue and each poison queue.

Azure Storage has no per-queue metric, so the sweeper timer reads every queue's
approximate count: as the ``fhir_intake.queue.depth`` and ``fhir_intake.queue.poison_depth``
gauges (``telemetry``), which the poison-depth alert in ``infra/modules/alerts.bicep`` and
the workbook read, and as a log line for each poison queue that is not empty.
"""

from __future__ import annotations

from azure.core.exceptions import AzureError, ResourceNotFoundError

from .errors import StorageUnavailableError
from .names import Queue, poison_queue
from .storage import StorageClients

__all__ = ["poison_depths", "queue_depths"]


def poison_depths(clients: StorageClients) -> dict[str, int]:
    """Approximate message counts of every poison queue, by logical name (a queue that
    does not exist yet holds nothing).

    Raises:
        StorageUnavailableError: the queue service did not answer.
    """
    return _depths(clients, [poison_queue(queue) for queue in Queue])


def queue_depths(clients: StorageClients) -> dict[str, int]:
    """Approximate message counts of every stage queue, by logical name.

    Raises:
        StorageUnavailableError: the queue service did not answer.
    """
    return _depths(clients, [str(queue) for queue in Queue])


def _depths(clients: StorageClients, names: list[str]) -> dict[str, int]:
    depths: dict[str, int] = {}
    for name in names:
        try:
            properties = clients.queue_client(name).get_queue_properties()
        except ResourceNotFoundError:
            depths[name] = 0
            continue
        except AzureError as exc:
            raise StorageUnavailableError(f"reading {name} failed: {type(exc).__name__}") from exc
        depths[name] = properties.approximate_message_count or 0
    return depths
