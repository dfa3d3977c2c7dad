"""What each listener does: its port, its partner, TLS, its ACK mode and its limits,
from ``intake mllp`` options or a JSON file with several listeners."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
    idle_timeout: float = Field(default=300.0, gt=0)  # seconds without a frame begun
    read_timeout: float = Field(default=30.0, gt=0)  # seconds a started frame may take in all
    write_timeout: float = Field(default=30.0, gt=0)  # seconds an ACK may wait to be read
    max_connections: int = Field(default=256, gt=0)
    max_connections_per_peer: int = Field(default=32, gt=0)  # per sender address
    max_skipped_bytes: int = Field(default=1 << 20, gt=0)  # garbage and broken frames, then close
    # Where application ACKs (enhanced mode) go: "host:port" of the sender's own MLLP
    # listener (a new connection per ACK, as HL7 enhanced mode intends), "connection" (on
    # the inbound connection, for engines that read replies asynchronously), or unset
    # (only GET /api/ingest/{id}/ack). Inbound, replies are only ever commit ACKs.
    application_ack_to: str | None = None
    application_ack_tls: bool = False  # TLS (system CAs) to the return address
    application_ack_timeout: float = Field(default=120.0, gt=0)  # then the HTTP status tells
    max_pending_application_acks: int = Field(default=100, gt=0)  # per connection

    @field_validator("application_ack_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value == "connection":
            return value
        host, colon, port = value.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('application_ack_to is "host:port" or "connection"')
        return value

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
