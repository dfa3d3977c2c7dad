"""FHIR dates and periods as instants, so "now" and a clinical date can be compared.

A FHIR date may be partial (``2016``, ``2016-01``, ``2016-01-01``) or a dateTime with a
time zone. A partial value stands for a whole span: as a period start it means the
first instant of that span, as an end the last, so an end of ``2016-01-01`` covers the
whole of that day (FHIR Period: both ends inclusive). Values without a zone are read
in the deployment's zone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

__all__ = ["Span", "parse_span", "period_contains", "span_within"]

_DATE = re.compile(r"^(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2}))?)?\Z")

Span = tuple[datetime, datetime]
"""First and last instant a FHIR date or dateTime stands for."""


def parse_span(value: str, zone: tzinfo) -> Span:
    """The instants a FHIR date/dateTime covers.

    Raises:
        ValueError: not a FHIR date or dateTime.
    """
    text = value.strip()
    found = _DATE.match(text)
    if found:
        year = int(found["y"])
        if found["d"]:
            first = date(year, int(found["m"]), int(found["d"]))
            after = first + timedelta(days=1)
        elif found["m"]:
            first = date(year, int(found["m"]), 1)
            after = date(year + (first.month == 12), first.month % 12 + 1, 1)
        else:
            first, after = date(year, 1, 1), date(year + 1, 1, 1)
        start = datetime.combine(first, time(), zone)
        return start, datetime.combine(after, time(), zone) - timedelta(microseconds=1)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if len(text) <= 16:  # hh:mm without seconds: the whole minute
        return moment, moment + timedelta(minutes=1, microseconds=-1)
    return moment, moment


def period_contains(period: Mapping[str, Any] | None, at: datetime, zone: tzinfo) -> bool:
    """Whether an instant lies in a FHIR Period (inclusive; an open end is unbounded).

    Raises:
        ValueError: a bound is not a FHIR dateTime.
    """
    if not period:
        return True
    start, end = period.get("start"), period.get("end")
    if start and at < parse_span(start, zone)[0]:
        return False
    return not (end and at > parse_span(end, zone)[1])


def span_within(span: Span, period: Mapping[str, Any], zone: tzinfo) -> bool:
    """Whether all of a clinical date's span lies in a FHIR Period.

    Raises:
        ValueError: a bound is not a FHIR dateTime.
    """
    return period_contains(period, span[0], zone) and period_contains(period, span[1], zone)
