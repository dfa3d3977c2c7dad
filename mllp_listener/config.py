"""What each listener does: its port, its partner, TLS, its ACK mode and its limits,
from ``intake mllp`` options or a JSON file with several listeners."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.security.models import PARTNER_ID_PATTERN

__all__ = ["ListenerConfig", "ListenersFile", "load_listeners"]


class ListenerConfig(BaseModel):
    """One port, one partner: every frame on it is submitted as that partner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = Field(ge=0, le=65535)  # 0: any free port (tests)
    partner: str = Field(pattern=PARTNER_ID_PATTERN)
    host: str = "0.0.0.0"  # noqa: S104 - a listener is meant to be reached
    tls_cert: Path | None = None  # PEM certificate chain: MLLP over TLS
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: senders must present a certificate it signed
    enhanced: bool = False  # messages without MSH-15/16 get enhanced-mode ACKs too
    max_bytes: int | None = Field(default=None, gt=0)  # unset: INTAKE_HTTP_MAX_BYTES
    idle_timeout: float = Field(default=300.0, gt=0)  # seconds without a byte between frames
    read_timeout: float = Field(default=30.0, gt=0)  # seconds a started frame may take
    application_ack_timeout: float = Field(default=120.0, gt=0)  # then the HTTP status tells
    max_connections: int = Field(default=256, gt=0)

    @model_validator(mode="after")
    def _tls_pair(self) -> ListenerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key")
        return self


class ListenersFile(BaseModel):
    """``{"listeners": [{"port": 2575, "partner": "lab-a"}, ...]}``"""

    model_config = ConfigDict(frozen=True, extra="forbid")

    listeners: list[ListenerConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_ports(self) -> ListenersFile:
        ports = [(x.host, x.port) for x in self.listeners if x.port]
        if len(ports) != len(set(ports)):
            raise ValueError("two listeners share a port")
        return self


def load_listeners(path: Path) -> list[ListenerConfig]:
    """The listeners a JSON file names.

    Raises:
        ValueError: the file cannot be read or is not a valid listeners file.
    """
    try:
        return ListenersFile.model_validate(json.loads(path.read_text())).listeners
    except (OSError, ValueError, ValidationError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
