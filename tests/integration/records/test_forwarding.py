"""Forwarding to a FHIR server over real HTTP on loopback: Retry-After honoured, per-entry
outcomes, only the entries to retry sent again, and retries that run out."""

from __future__ import annotations

import httpx
import pytest

from shared.records.forwarding import FhirForwarder, ForwardingUnavailableError
from tests.support.fhir_stub import batch_response, fhir_stub


def _entries(n: int) -> list[dict[str, object]]:
    return [
        {
            "resource": {"resourceType": "Observation", "id": f"o{i}", "status": "final"},
            "request": {"method": "PUT", "url": f"Observation/o{i}"},
        }
        for i in range(n)
    ]


def test_429_is_retried_after_the_servers_retry_after() -> None:
    with fhir_stub([lambda b: (429, {"Retry-After": "1"}, None)]) as stub, httpx.Client() as client:
        result = FhirForwarder(stub.url, client, token=lambda: "t0k").forward(_entries(2))
    assert (result.accepted, result.refused, result.attempts) == (2, [], 2)
    (first, _, headers), (second, batch, _) = stub.received
    assert second - first >= 0.95  # waited as told
    assert headers["authorization"] == "Bearer t0k"
    assert (
        batch["type"] == "batch" and [e["request"]["method"] for e in batch["entry"]] == ["PUT"] * 2
    )


def test_per_entry_outcomes_and_only_the_retryable_are_sent_again() -> None:
    script = [lambda b: (200, {}, batch_response(["201 Created", "400 Bad Request", "503"]))]
    with fhir_stub(script) as stub, httpx.Client() as client:
        result = FhirForwarder(stub.url, client, max_wait=0.1).forward(_entries(3))
    assert result.accepted == 2 and result.refused == [("Observation/o1", "400")]
    assert [e["request"]["url"] for e in stub.received[1][1]["entry"]] == ["Observation/o2"]


def test_a_server_that_keeps_failing_makes_a_retryable_error() -> None:
    always = [lambda b: (500, {}, None)] * 3
    with fhir_stub(always) as stub, httpx.Client() as client:
        forwarder = FhirForwarder(stub.url, client, attempts=3, max_wait=0.05)
        with pytest.raises(ForwardingUnavailableError) as raised:
            forwarder.forward(_entries(1))
    assert raised.value.retryable and len(stub.received) == 3


def test_a_refused_batch_is_reported_not_retried() -> None:
    with fhir_stub([lambda b: (401, {}, None)]) as stub, httpx.Client() as client:
        result = FhirForwarder(stub.url, client).forward(_entries(2))
    assert len(stub.received) == 1 and [s for _, s in result.refused] == ["401", "401"]


def test_the_wired_client_takes_no_proxy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The review's LOW-5: the forwarding client kept httpx's trust_env, so the bearer
    # token followed HTTP(S)_PROXY / ALL_PROXY wherever they pointed.
    from shared import wiring

    with fhir_stub([]) as stub, fhir_stub([]) as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
        monkeypatch.setenv("INTAKE_ENVIRONMENT", "development")
        monkeypatch.setenv("FHIR_SERVER_URL", stub.url)
        monkeypatch.setenv("FHIR_SERVER_AUTH", "none")
        wiring.reset_caches()
        try:
            forwarder = wiring.forwarder()
            assert forwarder is not None
            assert forwarder.forward(_entries(1)).accepted == 1
        finally:
            wiring.reset_caches()
    assert len(stub.received) == 1 and proxy.received == []
