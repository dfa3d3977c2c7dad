"""Searching the record: a patient's resources of one type, or Patients by identifier,
one page at a time, every hit read through consent like a single read.

Candidates come in id order from the compartment (or identifier) index; each is read
at its current version, filtered, and consent-checked; a page ends after ``_count``
hits, and its token is the last id looked at, so the next page starts after it. What
consent withholds is left out without a trace in the page. A search of a patient the
caller has no way to (no relationship) is an empty page at once, audited once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol

from shared.security.trust import Access

from .reads import Reader, RecordReader
from .search_params import Search, SearchError

__all__ = ["Page", "RecordSearch", "decode_token", "encode_token"]


class _Index(Protocol):
    def compartment(
        self, patient_id: str, resource_type: str, after: str | None = None
    ) -> Iterator[str]: ...

    def patients_with_identifier(self, system: str, value: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Page:
    """One page of hits, and the token of the next page (None: this was the last)."""

    resources: list[dict[str, Any]]
    next_page: str | None


def encode_token(key: str) -> str:
    """An opaque page token for a position in an index."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_token(token: str | None) -> str | None:
    """The position a page token stands for.

    Raises:
        SearchError: not a token this server gave.
    """
    if not token:
        return None
    try:
        padded = (token + "=" * (-len(token) % 4)).encode()
        key = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise SearchError("_page: not a page token this server gave") from exc
    if not key:
        raise SearchError("_page: not a page token this server gave")
    return key


class RecordSearch:
    """Searches through the compartment and identifier indexes."""

    def __init__(self, index: _Index, reader: RecordReader, zone: tzinfo) -> None:
        self._index = index
        self._reader = reader
        self._zone = zone

    def _candidates(self, search: Search, after: str | None) -> Iterator[str]:
        if search.identifier is not None:
            ids = self._index.patients_with_identifier(*search.identifier)
            wanted = [i for i in ids if after is None or i > after]
            if search.patient is not None:
                wanted = [i for i in wanted if i == search.patient]
            yield from wanted
            return
        assert search.patient is not None
        yield from self._index.compartment(search.patient, search.resource_type, after)

    def run(self, reader: Reader, search: Search) -> Page:
        """One page of results.

        Raises:
            SearchError: the page token is not one of ours.
            ConsentUnavailableError, StorageUnavailableError: no answer now.
        """
        hits: list[dict[str, Any]] = []
        if search.patient is not None and search.identifier is None:
            _, access = self._reader.person(reader, search.patient)
            if access is Access.NONE:  # answered at once: a walk would tell the size, and
                self._reader.refuse(reader, search.patient)  # flood the audit trail
                return Page([], None)
        candidates = self._candidates(search, decode_token(search.page))
        for ident in candidates:
            resource = self._reader.read(reader, search.resource_type, ident)
            if resource is None or not search.matches(resource, self._zone):
                continue
            if search.identifier is not None and not _carries(resource, search.identifier):
                continue  # the index row outlived the identifier
            hits.append(resource)
            if len(hits) == search.count:
                more = next(candidates, None) is not None
                return Page(hits, encode_token(ident) if more else None)
        return Page(hits, None)


def _carries(patient: dict[str, Any], identifier: tuple[str, str]) -> bool:
    return any(
        (i.get("system"), i.get("value")) == identifier for i in patient.get("identifier") or ()
    )
