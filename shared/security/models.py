"""Who calls us: partners and the roles their keys carry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["PARTNER_ID_PATTERN", "ApiKeyInfo", "Partner", "Role", "UnmappedTypes"]

PARTNER_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"  # also a folder of ingest-drop and a key


class Role(StrEnum):
    """What a caller may do (``docs/security.md``, "Trust model")."""

    INGEST = "ingest"  # submit data, read its own ingestion status
    READ = "read"  # clinical reads of the persons it has a relationship with, through consent
    ADMIN = "admin"  # partners, subscriptions, replay, purge; reads any person (HOPERAT)
    POPULATION = "population"  # system $export and patient-less subscriptions (SMART system/)
    CONSENT_SOURCE = "consent-source"  # its Consents count for its consent_systems' patients
    REGISTRY = "registry"  # a consent source whose opt-out registry entries count
    BREAK_GLASS = "break-glass"  # ETREAT/BTG reads beyond its relationships, always audited


class UnmappedTypes(StrEnum):
    """What intake does with an HL7 v2 message of a type we do not convert."""

    REFUSE = "refuse"  # AR (HTTP 422) before anything is stored: the default
    STORE = "store"  # stored, answered AA saying it is not converted; normalization reports it


# Purposes of use a partner may state when it registered none of its own, by role.
_DEFAULT_PURPOSES = {Role.READ: "TREAT", Role.POPULATION: "TREAT", Role.ADMIN: "HOPERAT"}


class Partner(BaseModel):
    """A sending organization (or an operator principal, with the admin role)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=PARTNER_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    roles: frozenset[Role] = frozenset({Role.INGEST})
    # IANA name: how the partner's times without an offset are read. Unset: HL7 v2 times
    # take the offset MSH-7 carries, else UTC (with a warning on the journey).
    time_zone: str | None = None
    code_systems: dict[str, str] = Field(default_factory=dict)  # their coding-system names -> URIs
    identifiers: frozenset[str] = frozenset()  # "system|value" they are known by (NPI, OID)
    principals: frozenset[str] = frozenset()  # Entra app ids (azp/appid) or user object ids
    # Identifier systems it is the assigning authority for (its MRN OIDs): its Patients
    # link to other partners' on these only where those partners are authorities too.
    authorities: frozenset[str] = frozenset()
    # Identifier systems whose patients its Consents may speak for (consent-source, registry).
    consent_systems: frozenset[str] = frozenset()
    # v3 ActReason purposes of use it may state (empty: its roles' defaults).
    purposes: frozenset[str] = frozenset()
    # HL7 v2 types we do not convert: refused at the door, or stored and reported.
    unmapped_types: UnmappedTypes = UnmappedTypes.REFUSE
    # May internal producers submit in its name through the intake-requests queue?
    queue_intake: bool = False
    # A C-CDA document any part of which cannot be converted is refused whole.
    ccda_strict: bool = False

    @field_validator("authorities", "consent_systems")
    @classmethod
    def _systems(cls, value: frozenset[str]) -> frozenset[str]:
        for item in value:
            if not item or "|" in item or item != item.strip() or len(item) > 512:
                raise ValueError(f"an identifier system is a URI without '|', got {item!r}")
        return value

    @field_validator("purposes")
    @classmethod
    def _purposes(cls, value: frozenset[str]) -> frozenset[str]:
        for item in value:
            if not item.isascii() or not item.isupper() or not 2 <= len(item) <= 32:
                raise ValueError(f"a purpose of use is a v3 ActReason code, got {item!r}")
        return value

    def allowed_purposes(self) -> frozenset[str]:
        """The purposes of use it may state: as registered, else its roles' defaults."""
        if self.purposes:
            return self.purposes
        return frozenset(_DEFAULT_PURPOSES[r] for r in self.roles if r in _DEFAULT_PURPOSES)

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
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
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
