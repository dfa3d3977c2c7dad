"""What the partner-facing CLI commands share: where the API is and which keys to use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

__all__ = ["CONTENT_TYPES_BY_SUFFIX", "ApiTarget", "content_type_for"]

CONTENT_TYPES_BY_SUFFIX = {
    ".hl7": "x-application/hl7-v2+er7",
    ".er7": "x-application/hl7-v2+er7",
    ".json": "application/fhir+json",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
}


def content_type_for(path: Path, fmt: str | None) -> str:
    """The Content-Type to send for a file (``--format`` wins over the suffix)."""
    by_format = {
        "hl7v2": "x-application/hl7-v2+er7",
        "fhir": "application/fhir+json",
        "ndjson": "application/x-ndjson",
        "csv": "text/csv",
    }
    if fmt:
        return by_format[fmt]
    suffixes = [s for s in path.suffixes if s != ".gz"]
    found = CONTENT_TYPES_BY_SUFFIX.get(suffixes[-1].lower() if suffixes else "")
    if found is None:
        raise click.UsageError(f"cannot tell the format of {path.name}; pass --format")
    return found


@dataclass(frozen=True)
class ApiTarget:
    """The API's base URL and the caller's keys, from options or .intake/dev.json."""

    base_url: str
    function_key: str | None
    api_key: str | None
    partner_id: str | None = None

    @classmethod
    def resolve(
        cls,
        url: str | None,
        key: str | None,
        function_key: str | None,
        partner_id: str | None = None,
    ) -> ApiTarget:
        """Options first; the local stack's .intake/dev.json fills what is missing."""
        state: dict[str, Any] = {}
        dev = Path(".intake/dev.json")
        if dev.exists():
            state = json.loads(dev.read_text(encoding="utf-8"))
        partner: dict[str, Any] = state.get("partner") or {}
        base = url or str(state.get("base_url") or "")
        if not base:
            raise click.UsageError("no API URL: pass --url (or run 'make run' here first)")
        return cls(
            base.rstrip("/"),
            function_key or state.get("function_key") or None,
            key or partner.get("api_key") or None,
            partner_id or partner.get("id") or None,
        )

    def headers(self) -> dict[str, str]:
        """Authentication headers."""
        found = {}
        if self.function_key:
            found["x-functions-key"] = self.function_key
        if self.api_key:
            found["X-API-Key"] = self.api_key
        return found
