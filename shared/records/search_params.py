"""FHIR search parameters the record answers, parsed and matched without I/O.

Supported: ``patient`` (the compartment), ``identifier`` (Patient only), ``_lastUpdated``
and ``date`` with the prefixes eq, ne, gt, lt, ge, le (a partial date is the whole span,
as FHIR says), ``code`` as ``system|code``, ``|code`` or ``code``, ``_count`` and our
page token. Anything else is refused by name, rather than silently ignored, so a caller
never mistakes an unfiltered page for a filtered one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from shared.consent.periods import Span, parse_span
from shared.consent.resources import describe_resource

__all__ = [
    "CODED_TYPES",
    "DATED_TYPES",
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "Search",
    "SearchError",
    "parse_search",
]

DEFAULT_COUNT, MAX_COUNT = 50, 200
_PREFIX = re.compile(r"^(eq|ne|gt|lt|ge|le)?(.+)\Z")
CODED_TYPES = {
    "Observation",
    "Condition",
    "Procedure",
    "DiagnosticReport",
    "ServiceRequest",
    "AllergyIntolerance",
    "MedicationRequest",
    "Immunization",
    "Encounter",
}
DATED_TYPES = {
    "Observation",
    "Condition",
    "Procedure",
    "DiagnosticReport",
    "Encounter",
    "Immunization",
    "MedicationRequest",
    "AllergyIntolerance",
}


class SearchError(ValueError):
    """A search the record cannot answer as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class _DateTest:
    prefix: str
    span: Span

    def holds(self, value: Span) -> bool:
        low, high = self.span
        start, end = value
        return {
            "eq": low <= start and end <= high,
            "ne": not (low <= start and end <= high),
            "gt": end > high,
            "lt": start < low,
            "ge": end >= low,
            "le": start <= high,
        }[self.prefix]


@dataclass(frozen=True, slots=True)
class Search:
    """A parsed search of one resource type."""

    resource_type: str
    patient: str | None = None  # the id, without "Patient/"
    identifier: tuple[str, str] | None = None  # (system, value)
    last_updated: tuple[_DateTest, ...] = ()
    date: tuple[_DateTest, ...] = ()
    codes: tuple[tuple[bool, str | None, str], ...] = ()  # (exact system?, system, code)
    count: int = DEFAULT_COUNT
    page: str | None = None
    echo: tuple[tuple[str, str], ...] = field(default=())  # the parameters, for links

    def matches(self, resource: Mapping[str, Any], zone: tzinfo) -> bool:
        """Whether a resource passes every filter but the compartment and consent."""
        if self.last_updated:
            updated = (resource.get("meta") or {}).get("lastUpdated")
            if not updated:
                return False
            updated_span = parse_span(str(updated), UTC)
            if not all(t.holds(updated_span) for t in self.last_updated):
                return False
        if self.date:
            clinical = describe_resource(resource, zone).span
            if clinical is None or not all(t.holds(clinical) for t in self.date):
                return False
        if self.codes:
            have = {
                (c.get("system"), c.get("code"))
                for c in ((resource.get("code") or {}).get("coding") or ())
            }
            if not any(
                (system, code) in have if exact else code in {c for _, c in have}
                for exact, system, code in self.codes
            ):
                return False
        return True


def _last(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name) or []
    return values[-1] if values else None


def _dates(name: str, values: list[str], zone: tzinfo) -> tuple[_DateTest, ...]:
    tests = []
    for value in values:
        found = _PREFIX.match(value.strip())
        if not found:
            raise SearchError(f"{name}: {value!r} is not a date")
        try:
            tests.append(_DateTest(found[1] or "eq", parse_span(found[2], zone)))
        except ValueError as exc:
            raise SearchError(f"{name}: {value!r} is not a FHIR date or dateTime") from exc
    return tuple(tests)


def parse_search(resource_type: str, query: Mapping[str, list[str]], zone: tzinfo) -> Search:
    """Read a search's query parameters (each name with all its values).

    Raises:
        SearchError: an unsupported parameter, a bad value, or no compartment to search.
    """
    allowed = {"patient", "_lastUpdated", "_count", "_page"}
    allowed |= {"identifier"} if resource_type == "Patient" else set()
    allowed |= {"code"} if resource_type in CODED_TYPES else set()
    allowed |= {"date"} if resource_type in DATED_TYPES else set()
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise SearchError(
            f"{resource_type} cannot be searched by {', '.join(unknown)} here; "
            f"supported: {', '.join(sorted(allowed))}"
        )
    patient = _last(query, "patient")
    if patient is not None:
        patient = patient.removeprefix("Patient/")
        if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", patient):  # "$" let "id\n" through
            raise SearchError("patient: not a Patient id (1-64 letters, digits, '-' or '.')")
    identifier = None
    if query.get("identifier"):
        system, bar, value = query["identifier"][-1].rpartition("|")
        if not bar or not system or not value:
            raise SearchError("identifier: give it as system|value")
        identifier = (system, value)
    if patient is None and identifier is None:
        needed = "patient= or identifier=" if resource_type == "Patient" else "patient="
        raise SearchError(f"a search of {resource_type} needs {needed}")
    try:
        count = int(_last(query, "_count") or DEFAULT_COUNT)
    except ValueError as exc:
        raise SearchError("_count: a whole number") from exc
    codes = []
    for value in ",".join(query.get("code") or []).split(","):
        if value:
            system, bar, code = value.rpartition("|")
            codes.append((bool(bar), system or None, code))
    echo = tuple(
        (name, value) for name in sorted(query) if name != "_page" for value in query[name]
    )
    return Search(
        resource_type=resource_type,
        patient=patient,
        identifier=identifier,
        last_updated=_dates("_lastUpdated", query.get("_lastUpdated") or [], UTC),
        date=_dates("date", query.get("date") or [], zone),
        codes=tuple(codes),
        count=max(1, min(count, MAX_COUNT)),
        page=_last(query, "_page"),
        echo=echo,
    )
