"""FHIR dates as spans: partial dates cover their whole day, month or year."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.consent.periods import parse_span, period_contains

BERLIN_WINTER = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("value", "first", "last"),
    [
        (
            "2016",
            datetime(2016, 1, 1, tzinfo=UTC),
            datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        ),
        (
            "2016-02",
            datetime(2016, 2, 1, tzinfo=UTC),
            datetime(2016, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        ),
        (
            "2016-12",
            datetime(2016, 12, 1, tzinfo=UTC),
            datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        ),
        (
            "2016-01-01",
            datetime(2016, 1, 1, tzinfo=UTC),
            datetime(2016, 1, 1, 23, 59, 59, 999999, tzinfo=UTC),
        ),
        (
            "2016-06-23T17:02:33+10:00",
            datetime(2016, 6, 23, 7, 2, 33, tzinfo=UTC),
            datetime(2016, 6, 23, 7, 2, 33, tzinfo=UTC),
        ),
    ],
)
def test_spans(value: str, first: datetime, last: datetime) -> None:
    assert parse_span(value, UTC) == (first, last)


def test_a_date_without_zone_is_read_in_the_deployment_zone() -> None:
    start, _ = parse_span("2026-01-10", BERLIN_WINTER)
    assert start == datetime(2026, 1, 9, 23, 0, tzinfo=UTC)


def test_period_ends_are_inclusive_and_open_ends_unbounded() -> None:
    period = {"start": "2026-01-01", "end": "2026-01-31"}
    assert period_contains(period, datetime(2026, 1, 1, tzinfo=UTC), UTC)
    assert period_contains(period, datetime(2026, 1, 31, 23, 59, tzinfo=UTC), UTC)
    assert not period_contains(period, datetime(2026, 2, 1, tzinfo=UTC), UTC)
    assert period_contains({"start": "2026-01-01"}, datetime(2099, 1, 1, tzinfo=UTC), UTC)
    with pytest.raises(ValueError):
        parse_span("next tuesday", UTC)
