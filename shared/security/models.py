"""Who calls us: partners and the roles their keys carry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ApiKeyInfo", "Partner", "Role"]


class Role(StrEnum):
    """What a caller may do."""

    INGEST = "ingest"  # submit data, read its own ingestion status
    READ = "read"  # clinical reads, with a purpose of use and consent
    ADMIN = "admin"  # partners, subscriptions, replay, purge


class Partner(BaseModel):
    """A sending organization (or an operator principal, with the admin role)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str = Field(min_length=1, max_length=200)
    roles: frozenset[Role] = frozenset({Role.INGEST})
    time_zone: str = "UTC"  # IANA name: how the partner's times without an offset are read
    code_systems: dict[str, str] = Field(default_factory=dict)  # their coding-system names -> URIs
    identifiers: frozenset[str] = frozenset()  # "system|value" they are known by (NPI, OID)
    principals: frozenset[str] = frozenset()  # Entra app ids (azp/appid) or user object ids

    @field_validator("identifiers")
    @classmethod
    def _system_value(cls, value: frozenset[str]) -> frozenset[str]:
        for item in value:
            system, bar, code = item.rpartition("|")
            if not bar or not system or not code:
                raise ValueError(f"identifiers are system|value, got {item!r}")
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What an operator may see of a key: never its secret or hash."""

    key_id: str
    partner: str
    created: datetime | None
    last_used: datetime | None
    revoked: bool
