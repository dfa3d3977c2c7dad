"""Console sessions in the ``consolesessions`` table: one row per session, keyed by the
token's hash, holding the partner id, roles and times (no credential, no patient data)."""

from __future__ import annotations

from datetime import datetime, timedelta

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.platform.storage import storage_errors
from shared.security.models import Role

from ..models import Session

__all__ = ["TableSessionStore"]


class TableSessionStore:
    """``SessionStore`` on a table."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def save(self, key: str, session: Session) -> None:
        with storage_errors("keeping a console session"):
            self._table.upsert_entity(
                {
                    "PartitionKey": key,
                    "RowKey": "",
                    "partner": session.partner,
                    "roles": " ".join(sorted(session.roles)),
                    "key": session.key,
                    "csrf": session.csrf,
                    "created": session.created,
                    "expires": session.expires,
                    "seen": session.seen,
                },
                mode=UpdateMode.REPLACE,
            )

    def load(self, key: str) -> Session | None:
        with storage_errors("reading a console session"):
            try:
                row = self._table.get_entity(key, "")
            except ResourceNotFoundError:
                return None
        roles = frozenset(
            Role(r) for r in str(row.get("roles") or "").split() if r in Role._value2member_map_
        )
        return Session(
            partner=str(row["partner"]),
            roles=roles,
            key=str(row.get("key") or ""),
            csrf=str(row["csrf"]),
            created=_aware(row["created"]),
            expires=_aware(row["expires"]),
            seen=_aware(row["seen"]),
        )

    def delete(self, key: str) -> None:
        with storage_errors("ending a console session"):
            self._table.delete_entity(key, "")

    def delete_ended(self, now: datetime, idle: timedelta) -> int:
        with storage_errors("sweeping console sessions"):
            ended = list(
                self._table.query_entities(
                    "expires le @now or seen le @idle",
                    parameters={"now": now, "idle": now - idle},
                    select=["PartitionKey", "RowKey"],
                )
            )
            for row in ended:
                self._table.delete_entity(row["PartitionKey"], row["RowKey"])
        return len(ended)


def _aware(value: object) -> datetime:
    """The table's datetimes come back as aware UTC ``TablesEntityDatetime``."""
    if not isinstance(value, datetime):
        raise TypeError("a session time is not a datetime")
    return value
