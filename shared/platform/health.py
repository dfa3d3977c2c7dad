"""Answers "can this app do its work": storage reachability per service, and the version.

Health checks must answer fast when storage is down, so they use clients that do
not retry and give up after a couple of seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

from azure.core.exceptions import AzureError, ResourceNotFoundError
from pydantic import BaseModel, ConfigDict

from shared import __version__

from .names import Container, Queue, Table
from .storage import StorageClients

__all__ = ["HealthReport", "ProbeStatus", "ServiceProbe", "check_health"]


class ProbeStatus(StrEnum):
    """The outcome of one probe."""

    OK = "ok"
    MISSING = "missing"  # the service answered, but our resource is not provisioned
    UNREACHABLE = "unreachable"


class ServiceProbe(BaseModel):
    """One storage service's answer, with how long it took."""

    model_config = ConfigDict(frozen=True)

    status: ProbeStatus
    duration_ms: int
    error: str | None = None  # an exception type name only: no URLs, no keys


class HealthReport(BaseModel):
    """What ``GET /api/health`` returns."""

    model_config = ConfigDict(frozen=True)

    status: ProbeStatus
    version: str
    storage: dict[str, ServiceProbe]

    @property
    def healthy(self) -> bool:
        """True when every service answered and every probed resource exists."""
        return self.status is ProbeStatus.OK


def _probe(check: Callable[[], object]) -> ServiceProbe:
    started = time.perf_counter()
    status, error = ProbeStatus.OK, None
    try:
        check()
    except ResourceNotFoundError:
        status = ProbeStatus.MISSING
    except AzureError as exc:
        status, error = ProbeStatus.UNREACHABLE, type(exc).__name__
    return ServiceProbe(
        status=status, duration_ms=round((time.perf_counter() - started) * 1000), error=error
    )


def check_health(clients: StorageClients) -> HealthReport:
    """Probe blob, queue and table in parallel with one cheap call each."""

    def blob() -> None:
        clients.container(Container.RAW).get_container_properties()

    def queue() -> None:
        clients.queue_client(Queue.NORMALIZE).get_queue_properties()

    def table() -> None:
        next(iter(clients.table_client(Table.INGESTIONS).list_entities(results_per_page=1)), None)

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="health") as pool:
        probes = dict(
            zip(("blob", "queue", "table"), pool.map(_probe, (blob, queue, table)), strict=True)
        )
    worst = max((p.status for p in probes.values()), key=list(ProbeStatus).index)
    return HealthReport(status=worst, version=__version__, storage=probes)
