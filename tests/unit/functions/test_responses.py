"""A request's query without the function key: ``code`` is FHIR's ``code`` search only
when the key came in the ``x-functions-key`` header (the Functions host reads the header
first, then ``?code=``, and passes the query on as sent)."""

from __future__ import annotations

import azure.functions as func
import pytest

from functions.responses import query_params, url_without_key

BASE = "https://intake.example/api/fhir/Observation"


def _request(query: str, **headers: str) -> func.HttpRequest:
    return func.HttpRequest(method="GET", url=f"{BASE}?{query}", headers=headers, body=b"")


@pytest.mark.parametrize("header", ["x-functions-key", "X-Functions-Key"])
def test_with_the_key_in_the_header_code_is_a_search_parameter(header: str) -> None:
    req = _request("patient=p1&code=http://loinc.org|2093-3&code=2345-7", **{header: "k"})
    assert query_params(req) == {
        "patient": ["p1"],
        "code": ["http://loinc.org|2093-3", "2345-7"],
    }
    assert url_without_key(req, req.url) == req.url


def test_without_the_header_code_was_the_key_and_is_read_as_nothing() -> None:
    req = _request("patient=p1&code=SECRETKEY&_count=2")
    assert query_params(req) == {"patient": ["p1"], "_count": ["2"]}
    assert url_without_key(req, req.url) == f"{BASE}?patient=p1&_count=2"
    other = _request("code=SECRETKEY&_type=Patient&_since=")
    assert url_without_key(other, other.url) == f"{BASE}?_type=Patient&_since="


def test_an_empty_header_is_still_the_header() -> None:
    req = _request("code=2093-3", **{"x-functions-key": ""})
    assert query_params(req) == {"code": ["2093-3"]}
