"""The partner directory: partners, their keys, and checking a presented key.

Rows in the ``partners`` table: ``("partner", <id>)`` holds the partner,
``("key", <key id>)`` a key's salted hash, its partner and whether it is revoked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.platform.errors import StorageUnavailableError

from .api_keys import IssuedKey, KeyHash, hash_secret, mint_key, parse_key, verify_secret
from .errors import AuthenticationError, UnknownPartnerError
from .models import Partner, Role

__all__ = ["PartnerDirectory", "PartnerLookup", "TablePartnerDirectory", "authenticate_api_key"]

_PARTNER, _KEY = "partner", "key"


class PartnerLookup(Protocol):
    """Port: a partner by id (what stages need to know about a sender)."""

    def get(self, partner_id: str) -> Partner | None:
        """A partner by id, or None."""


class PartnerDirectory(Protocol):
    """Port: where partners and their keys are kept."""

    def upsert(self, partner: Partner) -> None:
        """Create or update a partner."""

    def issue_key(self, partner_id: str) -> IssuedKey:
        """Mint a key for a partner; the token is returned once and never stored."""

    def authenticate(self, token: str) -> Partner | None:
        """The partner a presented key belongs to, or None."""


class TablePartnerDirectory:
    """``PartnerDirectory`` on Azure Table storage."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def upsert(self, partner: Partner) -> None:
        try:
            self._table.upsert_entity(
                {
                    "PartitionKey": _PARTNER,
                    "RowKey": partner.id,
                    "name": partner.name,
                    "roles": json.dumps(sorted(partner.roles)),
                    "time_zone": partner.time_zone,
                    "code_systems": json.dumps(partner.code_systems),
                    "identifiers": json.dumps(sorted(partner.identifiers)),
                },
                mode=UpdateMode.REPLACE,
            )
        except AzureError as exc:
            raise StorageUnavailableError(f"saving partner failed: {type(exc).__name__}") from exc

    def _row(self, partition: str, row_key: str) -> dict[str, Any] | None:
        try:
            return dict(self._table.get_entity(partition, row_key))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StorageUnavailableError(
                f"reading {partition} failed: {type(exc).__name__}"
            ) from exc

    def get(self, partner_id: str) -> Partner | None:
        """A partner by id, or None."""
        row = self._row(_PARTNER, partner_id)
        if row is None:
            return None
        return Partner(
            id=partner_id,
            name=row["name"],
            roles=frozenset(Role(r) for r in json.loads(row["roles"])),
            time_zone=row.get("time_zone") or "UTC",
            code_systems=json.loads(row.get("code_systems") or "{}"),
            identifiers=frozenset(json.loads(row.get("identifiers") or "[]")),
        )

    def issue_key(self, partner_id: str) -> IssuedKey:
        if self.get(partner_id) is None:
            raise UnknownPartnerError(partner_id)
        issued = mint_key()
        stored = hash_secret(issued.secret)
        try:
            self._table.create_entity(
                {
                    "PartitionKey": _KEY,
                    "RowKey": issued.key_id,
                    "partner": partner_id,
                    "salt": stored.salt,
                    "digest": stored.digest,
                    "created": datetime.now(UTC),
                    "revoked": False,
                }
            )
        except AzureError as exc:
            raise StorageUnavailableError(f"saving key failed: {type(exc).__name__}") from exc
        return issued

    def authenticate(self, token: str) -> Partner | None:
        parsed = parse_key(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = self._row(_KEY, key_id)
        if row is None:
            return None
        if row.get("revoked") or not verify_secret(secret, KeyHash(row["salt"], row["digest"])):
            return None
        return self.get(row["partner"])


def authenticate_api_key(directory: PartnerDirectory, presented: str | None) -> Partner:
    """The partner an ``X-API-Key`` value belongs to.

    Raises:
        AuthenticationError: no key, or not a valid one (the same answer for both).
        StorageUnavailableError: the directory could not be read.
    """
    partner = directory.authenticate(presented) if presented else None
    if partner is None:
        raise AuthenticationError("a valid partner API key is required in X-API-Key")
    return partner
