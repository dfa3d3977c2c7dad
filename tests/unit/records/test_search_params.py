"""Search parameters: what is accepted, how dates and codes match, what is refused."""

from __future__ import annotations

from datetime import UTC

import pytest

from shared.records.search_params import MAX_COUNT, SearchError, parse_search

OBS = {
    "resourceType": "Observation",
    "id": "o1",
    "meta": {"lastUpdated": "2026-03-05T10:00:00.000Z"},
    "code": {"coding": [{"system": "http://loinc.org", "code": "2093-3"}]},
    "effectiveDateTime": "2026-03-01T06:45:00+00:00",
}


def _search(**query: str | list[str]):  # type: ignore[no-untyped-def]
    params = {k: v if isinstance(v, list) else [v] for k, v in query.items()}
    return parse_search("Observation", params, UTC)


@pytest.mark.parametrize(
    ("date", "hit"),
    [
        ("2026-03-01", True),  # a day covers the instant inside it
        ("2026-03", True),
        ("eq2026-03-02", False),
        ("ge2026-03-01", True),
        ("gt2026-03-01", False),  # not after the whole of that day
        ("lt2026-03-02", True),
        ("le2026-02-28", False),
        ("ne2026-03-01", False),
    ],
)
def test_date_prefixes(date: str, hit: bool) -> None:
    assert _search(patient="p1", date=date).matches(OBS, UTC) is hit


def test_codes_and_last_updated() -> None:
    assert _search(patient="p1", code="http://loinc.org|2093-3").matches(OBS, UTC)
    assert _search(patient="p1", code="2093-3").matches(OBS, UTC)  # any system
    assert not _search(patient="p1", code="|2093-3").matches(OBS, UTC)  # no system only
    assert _search(patient="p1", code="x|1,http://loinc.org|2093-3").matches(OBS, UTC)  # OR
    assert not _search(patient="p1", code="http://snomed.info/sct|2093-3").matches(OBS, UTC)
    both = _search(patient="p1", _lastUpdated=["ge2026-03-05", "lt2026-03-06"])
    assert both.matches(OBS, UTC)  # AND across repeats
    assert not _search(patient="p1", _lastUpdated="gt2026-03-05").matches(OBS, UTC)


def test_what_is_refused_is_named() -> None:
    with pytest.raises(SearchError, match="needs patient="):
        _search(code="2093-3")
    with pytest.raises(SearchError, match="cannot be searched by name"):
        _search(patient="p1", name="Doe")
    with pytest.raises(SearchError, match="not a FHIR date"):
        _search(patient="p1", date="ge-yesterday")
    with pytest.raises(SearchError, match=r"give it as system\|value"):
        parse_search("Patient", {"identifier": ["12345"]}, UTC)
    with pytest.raises(SearchError, match="cannot be searched by identifier"):
        _search(patient="p1", identifier="s|v")
    for odd in ("p1\n", "Patient/p1\n", "p/1", "ZZCANARY Smith"):  # the review's INFO item
        with pytest.raises(SearchError, match="not a Patient id") as refused:
            _search(patient=odd)
        assert odd.strip() not in str(refused.value)  # the value is not echoed


def test_count_is_bounded_and_patient_may_be_a_reference() -> None:
    search = _search(patient="Patient/p1", _count="100000")
    assert (search.patient, search.count) == ("p1", MAX_COUNT)
    assert ("_count", "100000") in search.echo
