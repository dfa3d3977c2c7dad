"""The partner directory: partners, their keys, and checking a presented key.

Rows in the ``partners`` table: ``("partner", <id>)`` holds the partner,
``("key", <key id>)`` a key's salted hash, its partner, whether it is revoked and when it
was last used, and ``("principal", <Entra app or object id>)`` the partner a token's
principal belongs to.

Rows read are kept for ``cache_seconds`` (``INTAKE_PARTNER_CACHE_SECONDS``, 30 s): the
partner and key rows were read on every request and again in three stages, four storage
requests of about fifty per message. The price is the delay of a change made elsewhere:
a key revoked, or a partner changed, through another instance or the CLI takes effect
here within that time (at once in the instance that made it). Only rows found are kept,
so a partner or key added is seen at once.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.platform.errors import StorageUnavailableError

from .api_keys import IssuedKey, KeyHash, hash_secret, mint_key, parse_key, verify_secret
from .errors import AuthenticationError, PrincipalTakenError, UnknownPartnerError
from .models import ApiKeyInfo, Partner, Role, UnmappedTypes

__all__ = [
    "PARTNER_CACHE_SECONDS",
    "PartnerDirectory",
    "PartnerLookup",
    "TablePartnerDirectory",
    "authenticate_api_key",
]

_PARTNER, _KEY, _PRINCIPAL = "partner", "key", "principal"
_LAST_USED_EVERY = timedelta(minutes=5)  # last-use writes are rationed, not per request
PARTNER_CACHE_SECONDS = 30.0
_CACHED_ROWS = 4096  # rows kept at most (every partner, key and principal, in practice)


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


def _partner(row: dict[str, Any]) -> Partner:
    """A partner from its row in the ``partners`` table."""
    return Partner(
        id=str(row["RowKey"]),
        name=row["name"],
        roles=frozenset(Role(r) for r in json.loads(row["roles"])),
        time_zone=row.get("time_zone") or None,
        code_systems=json.loads(row.get("code_systems") or "{}"),
        identifiers=frozenset(json.loads(row.get("identifiers") or "[]")),
        principals=frozenset(json.loads(row.get("principals") or "[]")),
        authorities=frozenset(json.loads(row.get("authorities") or "[]")),
        consent_systems=frozenset(json.loads(row.get("consent_systems") or "[]")),
        purposes=frozenset(json.loads(row.get("purposes") or "[]")),
        unmapped_types=UnmappedTypes(row.get("unmapped_types") or UnmappedTypes.REFUSE),
        queue_intake=bool(row.get("queue_intake")),
        ccda_strict=bool(row.get("ccda_strict")),
    )


class TablePartnerDirectory:
    """``PartnerDirectory`` on Azure Table storage."""

    def __init__(
        self,
        table: TableClient,
        cache_seconds: float = PARTNER_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def upsert(self, partner: Partner) -> None:
        """Create or update a partner, and the index of its principals.

        Raises:
            PrincipalTakenError: a principal is registered to another partner already.
            StorageUnavailableError: storage failed.
        """
        self._forget(_PARTNER, partner.id)
        before = self.get(partner.id)
        for principal in sorted(partner.principals):
            self._forget(_PRINCIPAL, principal)
            owner = self._row(_PRINCIPAL, principal)
            if owner is not None and owner.get("partner") != partner.id:
                raise PrincipalTakenError(principal, str(owner.get("partner")))
        try:
            for principal in sorted(partner.principals):
                self._table.upsert_entity(
                    {"PartitionKey": _PRINCIPAL, "RowKey": principal, "partner": partner.id},
                    mode=UpdateMode.REPLACE,
                )
            for principal in sorted(
                (before.principals if before else frozenset()) - partner.principals
            ):
                self._table.delete_entity(_PRINCIPAL, principal)  # ours: checked when added
                self._forget(_PRINCIPAL, principal)
            self._table.upsert_entity(
                {
                    "PartitionKey": _PARTNER,
                    "RowKey": partner.id,
                    "name": partner.name,
                    "roles": json.dumps(sorted(partner.roles)),
                    "time_zone": partner.time_zone or "",
                    "code_systems": json.dumps(partner.code_systems),
                    "identifiers": json.dumps(sorted(partner.identifiers)),
                    "principals": json.dumps(sorted(partner.principals)),
                    "authorities": json.dumps(sorted(partner.authorities)),
                    "consent_systems": json.dumps(sorted(partner.consent_systems)),
                    "purposes": json.dumps(sorted(partner.purposes)),
                    "unmapped_types": partner.unmapped_types.value,
                    "queue_intake": partner.queue_intake,
                    "ccda_strict": partner.ccda_strict,
                },
                mode=UpdateMode.REPLACE,
            )
        except AzureError as exc:
            raise StorageUnavailableError(f"saving partner failed: {type(exc).__name__}") from exc
        finally:
            self._forget(_PARTNER, partner.id)

    def _row(self, partition: str, row_key: str) -> dict[str, Any] | None:
        """A row, from the cache while it is fresh."""
        now = self._clock()
        with self._lock:
            kept = self._cache.get((partition, row_key))
        if kept is not None and now - kept[0] < self._cache_seconds:
            return dict(kept[1])
        try:
            row = dict(self._table.get_entity(partition, row_key))
        except ResourceNotFoundError:
            self._forget(partition, row_key)
            return None
        except AzureError as exc:
            raise StorageUnavailableError(
                f"reading {partition} failed: {type(exc).__name__}"
            ) from exc
        if self._cache_seconds > 0:
            with self._lock:
                if len(self._cache) >= _CACHED_ROWS:
                    self._cache.clear()
                self._cache[(partition, row_key)] = (now, row)
        return dict(row)

    def _forget(self, partition: str, row_key: str) -> None:
        with self._lock:
            self._cache.pop((partition, row_key), None)

    def get(self, partner_id: str) -> Partner | None:
        """A partner by id, or None."""
        row = self._row(_PARTNER, partner_id)
        return _partner(row) if row is not None else None

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
        self._note_use(key_id, row)
        return self.get(row["partner"])

    def _note_use(self, key_id: str, row: dict[str, Any]) -> None:
        """Record when a key was last used (best effort, at most every few minutes)."""
        now = datetime.now(UTC)
        last = row.get("last_used")
        if isinstance(last, datetime) and now - last < _LAST_USED_EVERY:
            return
        with contextlib.suppress(AzureError):  # a missed timestamp never refuses a caller
            self._table.update_entity(
                {"PartitionKey": _KEY, "RowKey": key_id, "last_used": now}, mode=UpdateMode.MERGE
            )
            with self._lock:  # the cached row knows it was just written
                kept = self._cache.get((_KEY, key_id))
                if kept is not None:
                    self._cache[(_KEY, key_id)] = (kept[0], {**kept[1], "last_used": now})

    def key_live(self, key_id: str) -> bool:
        """Whether a key exists and is not revoked (a console session opened with it ends
        once it is not, within ``cache_seconds``)."""
        row = self._row(_KEY, key_id)
        return row is not None and not row.get("revoked")

    def by_principal(self, principal: str) -> Partner | None:
        """The partner an Entra app id or user object id is registered to, or None."""
        row = self._row(_PRINCIPAL, principal)
        return self.get(str(row["partner"])) if row else None

    def api_keys(self, partner_id: str | None = None) -> list[ApiKeyInfo]:
        """Every key (or one partner's), without secrets."""
        query = f"PartitionKey eq '{_KEY}'"
        try:
            rows = list(self._table.query_entities(query))
        except AzureError as exc:
            raise StorageUnavailableError(f"listing keys failed: {type(exc).__name__}") from exc
        found = [
            ApiKeyInfo(
                key_id=str(row["RowKey"]),
                partner=str(row["partner"]),
                created=row.get("created"),
                last_used=row.get("last_used"),
                revoked=bool(row.get("revoked")),
            )
            for row in rows
            if partner_id is None or row.get("partner") == partner_id
        ]
        return sorted(
            found, key=lambda k: (k.partner, k.created or datetime.min.replace(tzinfo=UTC))
        )

    def revoke_key(self, key_id: str) -> str | None:
        """Revoke a key for good; the partner it belonged to, or None if there is none.
        Other instances refuse it within ``cache_seconds``."""
        self._forget(_KEY, key_id)
        row = self._row(_KEY, key_id)
        if row is None:
            return None
        try:
            self._table.update_entity(
                {
                    "PartitionKey": _KEY,
                    "RowKey": key_id,
                    "revoked": True,
                    "revoked_at": datetime.now(UTC),
                },
                mode=UpdateMode.MERGE,
            )
        except AzureError as exc:
            raise StorageUnavailableError(f"revoking a key failed: {type(exc).__name__}") from exc
        finally:
            self._forget(_KEY, key_id)
        return str(row["partner"])

    def list(self) -> list[Partner]:
        """Every partner, by id."""
        try:
            rows = list(self._table.query_entities(f"PartitionKey eq '{_PARTNER}'"))
        except AzureError as exc:
            raise StorageUnavailableError(f"listing partners failed: {type(exc).__name__}") from exc
        return sorted((_partner(dict(r)) for r in rows), key=lambda p: p.id)


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
