"""HTTP triggers through the local host: routing, auth levels, mapping, limits, errors."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def http(semantics_host) -> httpx.Client:  # type: ignore[no-untyped-def]
    host, _ = semantics_host
    with host.client() as client:
        yield client  # type: ignore[misc]


def test_route_parameters_reach_the_function(http: httpx.Client, keys: dict[str, str]) -> None:
    response = http.post(
        "/api/items/books/42?q=a%20b",
        headers={"x-functions-key": keys["function"], "content-type": "text/plain"},
        content=b"hello",
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["route"] == {"category": "books", "id": "42"}
    assert seen["params"] == {"q": "a b"}
    assert seen["method"] == "POST"
    assert seen["body_bytes"] == 5
    assert seen["content_type"] == "text/plain"
    assert response.headers["x-echo"] == "yes"
    assert response.headers["content-type"].startswith("application/json")


def test_optional_parameter_may_be_left_out(http: httpx.Client, keys: dict[str, str]) -> None:
    response = http.get("/api/items/books", params={"code": keys["function"]})
    assert response.status_code == 200
    assert response.json()["route"] == {"category": "books"}


def test_constraint_mismatch_is_not_found(http: httpx.Client, keys: dict[str, str]) -> None:
    response = http.get(
        "/api/items/books/not-a-number", headers={"x-functions-key": keys["function"]}
    )
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_catch_all_keeps_slashes_and_decodes(http: httpx.Client) -> None:
    response = http.get("/api/files/a/b%20c/d.txt")
    assert response.status_code == 200
    assert response.text == "a/b c/d.txt"


def test_the_key_is_the_header_when_there_is_one_else_code(
    http: httpx.Client, keys: dict[str, str]
) -> None:
    """As the Functions host (AuthenticationLevelHandler): x-functions-key first, even
    empty, then ?code=; the function sees ``code`` in its query either way."""
    in_query = http.get("/api/items/books", params={"code": keys["function"]})
    assert (in_query.status_code, in_query.json()["params"]) == (200, {"code": keys["function"]})
    in_header = http.get(
        "/api/items/books", params={"code": "2093-3"}, headers={"x-functions-key": keys["function"]}
    )
    assert (in_header.status_code, in_header.json()["params"]) == (200, {"code": "2093-3"})
    for header in ("", "wrong"):  # a header that is there is the key, however bad
        refused = http.get(
            "/api/items/books",
            params={"code": keys["function"]},
            headers={"x-functions-key": header},
        )
        assert refused.status_code == 401, header


@pytest.mark.parametrize("headers", [{}, {"x-functions-key": "wrong"}])
def test_missing_or_wrong_function_key_is_401(http: httpx.Client, headers: dict[str, str]) -> None:
    response = http.get("/api/items/books/1", headers=headers)
    assert response.status_code == 401
    assert response.json()["issue"][0]["code"] == "login"


def test_admin_level_takes_only_the_master_key(http: httpx.Client, keys: dict[str, str]) -> None:
    assert (
        http.get("/api/admin-only", headers={"x-functions-key": keys["function"]}).status_code
        == 401
    )
    response = http.get("/api/admin-only", headers={"x-functions-key": keys["master"]})
    assert (response.status_code, response.text) == (200, "admin ok")


def test_master_key_also_opens_function_level(http: httpx.Client, keys: dict[str, str]) -> None:
    assert (
        http.get("/api/items/books/1", headers={"x-functions-key": keys["master"]}).status_code
        == 200
    )


def test_unknown_route_is_404_outcome(http: httpx.Client) -> None:
    response = http.get("/api/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert "no function" in response.json()["issue"][0]["diagnostics"]


def test_wrong_method_is_405_with_allow(http: httpx.Client, keys: dict[str, str]) -> None:
    response = http.delete("/api/items/books/1", headers={"x-functions-key": keys["function"]})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_a_raising_function_gives_500_and_the_host_lives_on(http: httpx.Client) -> None:
    response = http.get("/api/boom")
    assert response.status_code == 500
    assert "deliberate failure" not in response.text  # no exception text leaks to callers
    assert http.get("/api/files/still-here").text == "still-here"


def test_large_response_arrives_intact(http: httpx.Client) -> None:
    response = http.get("/api/big", params={"n": "3000000"})
    assert response.status_code == 200
    assert len(response.content) == 3_000_000
    assert response.content[:5] == bytes([0, 1, 2, 3, 4])
    assert response.content[-1] == (3_000_000 - 1) % 251


def test_concurrent_requests_run_in_parallel(http: httpx.Client) -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: http.get("/api/slow", params={"s": "1"}), range(4)))
    assert [r.text for r in responses] == ["finished"] * 4
    starts = [float(r.headers["x-started"]) for r in responses]
    ends = [float(r.headers["x-ended"]) for r in responses]
    # every handler started before any finished: all four ran side by side
    assert max(starts) < min(ends)


def test_body_over_the_limit_is_413(azurite, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.e2e.conftest import start_host

    host, _ = start_host(tmp_path, azurite, keys, {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "1000"})
    try:
        with host.client() as client:
            ok = client.post(
                "/api/items/x", content=b"a" * 1000, headers={"x-functions-key": keys["function"]}
            )
            assert ok.status_code == 200
            too_big = client.post(
                "/api/items/x", content=b"a" * 1001, headers={"x-functions-key": keys["function"]}
            )
            assert too_big.status_code == 413
            assert "1000-byte limit" in too_big.json()["issue"][0]["diagnostics"]

            def chunks():  # type: ignore[no-untyped-def]
                yield b"a" * 800
                yield b"a" * 800

            streamed = client.post(
                "/api/items/x", content=chunks(), headers={"x-functions-key": keys["function"]}
            )
            assert streamed.status_code == 413
            assert client.get("/api/files/alive").text == "alive"
    finally:
        assert host.stop() == 0


def test_request_limits_from_host_json(azurite, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """maxConcurrentRequests 1 runs one at a time; maxOutstandingRequests 2 turns away the rest."""
    import concurrent.futures

    from tests.e2e.conftest import start_host

    host, _ = start_host(tmp_path, azurite, keys, host_json="host-throttled.json")
    try:
        with host.client() as client, concurrent.futures.ThreadPoolExecutor(5) as pool:
            statuses = sorted(
                pool.map(lambda _: client.get("/api/slow", params={"s": "1"}).status_code, range(5))
            )
            throttled = client.get("/api/files/x")
        assert statuses.count(200) == 2 and statuses.count(429) == 3, statuses
        assert throttled.status_code == 200  # the limit is on requests in flight, not a ban
    finally:
        assert host.stop() == 0


def test_blob_output_binding_writes_after_success(semantics_host) -> None:  # type: ignore[no-untyped-def]
    from tests.e2e.conftest import clients_for

    host, env = semantics_host
    with host.client() as client:
        assert client.put("/api/archive/report", content=b"\x00binary\xff").status_code == 201
    container = clients_for(env).container("results")  # type: ignore[arg-type]
    names = [b.name for b in container.list_blobs(name_starts_with="archive/report-")]
    assert len(names) == 1 and names[0].endswith(".txt")
    assert container.download_blob(names[0]).readall() == b"\x00binary\xff"
