"""What the partner-facing CLI commands share: where the API is and which keys to use,
and batch uploads (ask the API for a URL, PUT the file to storage with it)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote
from xml.sax.saxutils import escape

import click
import httpx

__all__ = [
    "BLOCK_SIZE",
    "CONTENT_TYPES_BY_SUFFIX",
    "ApiTarget",
    "UploadFailedError",
    "content_type_for",
    "put_file",
    "request_upload",
]

BLOCK_SIZE = 8 * 1024 * 1024  # a file larger than this goes up in blocks of this size

CONTENT_TYPES_BY_SUFFIX = {
    ".hl7": "x-application/hl7-v2+er7",
    ".er7": "x-application/hl7-v2+er7",
    ".json": "application/fhir+json",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
    ".xml": "application/cda+xml",
    ".ccda": "application/cda+xml",
    ".cda": "application/cda+xml",
}


def content_type_for(path: Path, fmt: str | None) -> str:
    """The Content-Type to send for a file (``--format`` wins over the suffix)."""
    by_format = {
        "hl7v2": "x-application/hl7-v2+er7",
        "fhir": "application/fhir+json",
        "ndjson": "application/x-ndjson",
        "csv": "text/csv",
        "ccda": "application/cda+xml",
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

    @classmethod
    def resolve(cls, url: str | None, key: str | None, function_key: str | None) -> ApiTarget:
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
        )

    def headers(self) -> dict[str, str]:
        """Authentication headers."""
        found = {}
        if self.function_key:
            found["x-functions-key"] = self.function_key
        if self.api_key:
            found["X-API-Key"] = self.api_key
        return found


class UploadFailedError(click.ClickException):
    """The API refused an upload, or storage refused the file."""


def request_upload(
    client: httpx.Client, base_url: str, headers: Mapping[str, str], file_name: str
) -> dict[str, Any]:
    """``POST /ingest/uploads``: the upload's id, SAS ``url``, ``blob`` name and expiry.

    Raises:
        UploadFailedError: the API said no (the OperationOutcome's words).
    """
    answer = client.post(
        f"{base_url}/ingest/uploads", json={"filename": file_name}, headers=headers
    )
    if answer.status_code != 201:
        try:
            reason = answer.json()["issue"][0]["diagnostics"]
        except (ValueError, KeyError, IndexError, TypeError):
            reason = answer.text[:200]
        raise UploadFailedError(f"upload refused ({answer.status_code}): {reason}")
    issued: dict[str, Any] = answer.json()
    return issued


def put_file(
    client: httpx.Client,
    sas_url: str,
    data: BinaryIO,
    size: int,
    content_type: str,
    mapping: str | None = None,
    block_size: int = BLOCK_SIZE,
) -> None:
    """PUT a file to its upload URL (Blob REST API with the SAS, no other credential): one
    Put Blob up to ``block_size``, else Put Block per ``block_size`` bytes and a Put Block
    List, so memory holds one block whatever the file's size.

    Raises:
        UploadFailedError: storage refused a request (its error code, e.g. an expired URL's
            AuthenticationFailed).
    """
    properties = {"x-ms-meta-mapping": mapping} if mapping else {}
    if size <= block_size:
        _check(
            client.put(
                sas_url,
                content=data.read(),
                headers={"x-ms-blob-type": "BlockBlob", "content-type": content_type, **properties},
            )
        )
        return
    ids: list[str] = []
    while chunk := data.read(block_size):
        block = base64.b64encode(f"{len(ids):08d}".encode()).decode()  # equal lengths
        # the SAS is the URL's query: add to it (httpx's params would replace it)
        _check(client.put(f"{sas_url}&comp=block&blockid={quote(block, safe='')}", content=chunk))
        ids.append(block)
    listing = "".join(f"<Latest>{escape(b)}</Latest>" for b in ids)
    _check(
        client.put(
            f"{sas_url}&comp=blocklist",
            content=f'<?xml version="1.0" encoding="utf-8"?><BlockList>{listing}</BlockList>',
            headers={"x-ms-blob-content-type": content_type, **properties},
        )
    )


def _check(answer: httpx.Response) -> None:
    if answer.status_code != 201:
        code = answer.headers.get("x-ms-error-code", "")
        raise UploadFailedError(f"storage refused the file ({answer.status_code} {code})")
