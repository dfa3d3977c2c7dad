"""In-memory collaborators the record's unit tests share."""

from __future__ import annotations

from typing import Any


class Audit:
    """An audit log that keeps what was written."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def write(self, event: dict[str, Any]) -> str:
        self.events.append(event)
        return str(event["id"])
