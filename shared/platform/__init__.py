"""Platform: settings, storage names and clients, the queue envelope, health."""

from __future__ import annotations

from .envelope import ENVELOPE_VERSION, BlobRef, Envelope, EnvelopeKind
from .errors import ConfigurationError, EnvelopeError, IntakeError, StorageUnavailableError
from .health import HealthReport, ProbeStatus
from .names import Container, Queue, Setting, Table, physical_name, poison_queue
from .settings import Environment, Settings, load_settings
from .storage import StorageClients, build_storage_clients

__all__ = [
    "ENVELOPE_VERSION",
    "BlobRef",
    "ConfigurationError",
    "Container",
    "Envelope",
    "EnvelopeError",
    "EnvelopeKind",
    "Environment",
    "HealthReport",
    "IntakeError",
    "ProbeStatus",
    "Queue",
    "Setting",
    "Settings",
    "StorageClients",
    "StorageUnavailableError",
    "Table",
    "build_storage_clients",
    "load_settings",
    "physical_name",
    "poison_queue",
]
