"""``Patient/{id}/$everything``: every resource of one person, across the Patient records
partners sent for them, a page at a time, each through the read scope and consent.

One person, several Patients: every partner's Patient is its own, and the person is the
Patients the trust model links (``records.people``: shared identifiers the partners
assert, a partner's own merges, never across an operator's unlink), resolved when asked,
so it follows the record and the partners' registrations as they change. A caller with
no way to the person (no relationship, no population role) gets the same answer as for
a Patient that does not exist. Each returned Patient carries a ``seealso`` link to the
person's other records; every resource says which partner it came from (``meta.source``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.consent.periods import parse_span
from shared.security.trust import Access

from .reads import Reader, RecordReader
from .search import Page, decode_token, encode_token
from .search_params import DEFAULT_COUNT, MAX_COUNT, SearchError

__all__ = ["Everything", "PatientEverything", "parse_everything"]


class _Index(Protocol):
    def compartment_all(self, patient_id: str, after: str | None = None) -> Iterator[str]: ...


@dataclass(frozen=True, slots=True)
class Everything:
    """What ``$everything`` was asked."""

    patient_id: str
    since: datetime | None = None
    count: int = DEFAULT_COUNT
    page: str | None = None


def parse_everything(patient_id: str, query: dict[str, list[str]]) -> Everything:
    """Read ``_since``, ``_count`` and ``_page``.

    Raises:
        SearchError: another parameter, or a bad value.
    """
    unknown = sorted(set(query) - {"_since", "_count", "_page"})
    if unknown:
        raise SearchError(f"$everything takes _since, _count and _page, not {', '.join(unknown)}")
    since = None
    if query.get("_since"):
        try:
            since = parse_span(query["_since"][-1], UTC)[0]
        except ValueError as exc:
            raise SearchError("_since: not a FHIR instant") from exc
    try:
        count = int((query.get("_count") or [str(DEFAULT_COUNT)])[-1])
    except ValueError as exc:
        raise SearchError("_count: a whole number") from exc
    page = (query.get("_page") or [""])[-1] or None
    return Everything(patient_id, since, max(1, min(count, MAX_COUNT)), page)


def _decode(token: str | None) -> tuple[str, str] | None:
    key = decode_token(token)
    if key is None:
        return None
    patient, slash, row = key.partition("/")
    if not slash or not row:
        raise SearchError("_page: not a page token this server gave")
    return patient, row


class PatientEverything:
    """Pages of one person's resources."""

    def __init__(self, index: _Index, reader: RecordReader) -> None:
        self._index = index
        self._reader = reader

    def person(self, reader: Reader, patient_id: str) -> list[str] | None:
        """The Patient ids that are this person (the asked one first), or None if the
        caller cannot see that Patient (no way to the person, consent, or absent).

        Raises:
            ConsentUnavailableError, StorageUnavailableError: no answer now.
        """
        if self._reader.read(reader, "Patient", patient_id) is None:
            return None
        person, access = self._reader.person(reader, patient_id)
        if access is Access.NONE:
            return None
        return list(person.patients)

    def run(self, reader: Reader, asked: Everything) -> Page | None:
        """One page; None when the Patient is absent or withheld.

        Raises:
            SearchError: the page token is not one of ours.
            ConsentUnavailableError, StorageUnavailableError: no answer now.
        """
        people = self.person(reader, asked.patient_id)
        if people is None:
            return None
        start = _decode(asked.page)
        candidates = self._candidates(people, start)
        hits: list[dict[str, Any]] = []
        for patient, row in candidates:
            kind, _, ident = row.partition("|")
            resource = self._reader.read(reader, kind, ident)
            if resource is None or not _since(resource, asked.since):
                continue
            if kind == "Patient":
                resource = _with_links(resource, people)
            hits.append(resource)
            if len(hits) == asked.count:
                more = next(candidates, None) is not None
                return Page(hits, encode_token(f"{patient}/{row}") if more else None)
        return Page(hits, None)

    def _candidates(
        self, people: list[str], start: tuple[str, str] | None
    ) -> Iterator[tuple[str, str]]:
        begun = start is None
        for patient in people:
            after = None
            if not begun:
                assert start is not None
                if patient != start[0]:
                    continue
                begun, after = True, start[1]
            for row in self._index.compartment_all(patient, after):
                yield patient, row


def _since(resource: dict[str, Any], since: datetime | None) -> bool:
    if since is None:
        return True
    updated = (resource.get("meta") or {}).get("lastUpdated")
    return bool(updated) and parse_span(str(updated), UTC)[1] >= since


def _with_links(patient: dict[str, Any], people: list[str]) -> dict[str, Any]:
    """The Patient with a ``seealso`` link to each other record of the same person."""
    named = {str((k.get("other") or {}).get("reference")) for k in patient.get("link") or ()}
    extra = [
        {"other": {"reference": f"Patient/{p}"}, "type": "seealso"}
        for p in people
        if p != patient.get("id") and f"Patient/{p}" not in named
    ]
    return {**patient, "link": [*(patient.get("link") or []), *extra]} if extra else patient
