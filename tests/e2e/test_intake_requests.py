"""Internal producers submit through the intake-requests queue, through the product's
queue trigger on Azurite: inline and blob payloads stored and normalized like HTTP ones,
and every message we cannot accept parked in intake-requests-poison with a report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.platform.names import Container, Queue, Table, poison_queue
from shared.security import Partner
from tests.e2e.conftest import product_api
from tests.support.hostproc import REPO, wait_for

pytestmark = pytest.mark.azurite

HL7 = "x-application/hl7-v2+er7"
ADT = (
    "MSH|^~\\&|ORDERS|GENHOSP|FHIR-INTAKE|INTAKE|20260301101500||ADT^A04|Q-{n}|P|2.5.1\r"
    "PID|1||MRN-Q{n}^^^GENHOSP^MR||Queue^Quinn||19800101|F\r"
)


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    partners = [
        Partner(id="internal", name="Internal producer", queue_intake=True),
        Partner(id="outside", name="HTTP only"),
    ]
    with product_api(
        azurite,
        tmp_path_factory.mktemp("queue"),
        partners,
        "fk-queue",
        {"AzureWebJobs.deliver.Disabled": "true"},
    ) as api:
        yield api


def _put(api: dict[str, Any], message: dict[str, Any] | bytes) -> None:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    api["clients"].queue_client(Queue.INTAKE_REQUESTS).send_message(body)


def _inline(n: int, key: str | None = None) -> dict[str, Any]:
    """A valid request with ADT ``n`` inline (and an idempotency key, when given)."""
    request = {"partner": "internal", "content_type": HL7, "payload": ADT.format(n=n)}
    return {**request, "idempotency_key": key} if key else request


def _queue_rows(api: dict[str, Any]) -> list[dict[str, Any]]:
    table = api["clients"].table_client(Table.INGESTIONS)
    return [dict(r) for r in table.query_entities("received_channel eq 'queue'")]


def test_inline_and_blob_requests_are_stored_and_normalized(api: dict[str, Any]) -> None:
    _put(api, _inline(1, "q-1"))
    blob = "internal/2026/03/01/adt-2.hl7"
    api["clients"].container(Container.INTAKE_REQUESTS).upload_blob(blob, ADT.format(n=2).encode())
    _put(api, {"partner": "internal", "content_type": HL7, "blob": blob})
    rows = wait_for(
        lambda: (
            (found := _queue_rows(api))
            and len(found) == 2
            and all(r.get("normalize_status") == "normalized" for r in found)
            and found
        ),
        timeout=60,
        what="both queue submissions normalized",
    )
    assert {r["PartitionKey"] for r in rows} == {"internal"}
    raw = api["clients"].container(Container.RAW)
    stored = sorted(raw.download_blob(r["received_blob"]).readall() for r in rows)
    assert stored == sorted([ADT.format(n=1).encode(), ADT.format(n=2).encode()])
    # The same idempotency key again is the same ingestion, as over HTTP.
    _put(api, _inline(1, "q-1"))
    _put(api, _inline(3))
    wait_for(lambda: len(_queue_rows(api)) == 3, timeout=60, what="the third submission")
    assert len(_queue_rows(api)) == 3


def _poisoned(api: dict[str, Any]) -> list[bytes]:
    queue = api["clients"].queue_client(poison_queue(Queue.INTAKE_REQUESTS))
    return [m.content for m in queue.peek_messages(max_messages=32)]


def _reports(api: dict[str, Any]) -> list[dict[str, Any]]:
    reports = api["clients"].container(Container.REPORTS)
    return [
        json.loads(reports.download_blob(b.name).readall())
        for b in reports.list_blobs(name_starts_with="intake-requests/")
    ]


def test_requests_we_cannot_accept_go_to_poison_with_a_report_and_no_payload(
    api: dict[str, Any],
) -> None:
    refused = [
        b"{not json",
        {"partner": "internal", "content_type": HL7},  # no payload
        {"partner": "outside", "content_type": HL7, "payload": ADT.format(n=90)},
        {"partner": "nobody", "content_type": HL7, "payload": ADT.format(n=91)},
        {"partner": "internal", "content_type": HL7, "blob": "internal/missing.hl7"},
        {"partner": "internal", "content_type": HL7, "payload": "PID|1||MRN-Q92"},  # no MSH
        {"partner": "internal", "content_type": "text/plain", "payload": "MRN-Q93"},
    ]
    for message in refused:
        _put(api, message)
    reports = wait_for(
        lambda: (found := _reports(api)) and len(found) >= len(refused) and found,
        timeout=60,
        what="a report for every refused request",
    )
    assert len(_poisoned(api)) == len(refused)
    texts = {r["outcome"]["issue"][0]["diagnostics"] for r in reports}
    assert any("not a valid intake request" in t for t in texts)
    assert any("does not allow queue submission" in t for t in texts)
    assert any("does not exist" in t for t in texts)
    assert any("no such blob" in t for t in texts)
    assert any("MSH segment" in t for t in texts)
    assert any("Content-Type" in t for t in texts)
    assert all(r["poison_queue"] == "intake-requests-poison" for r in reports)
    assert not [r for r in reports if "MRN-Q9" in json.dumps(r)]  # the payload is never echoed
    assert not [r for r in _queue_rows(api) if r["PartitionKey"] == "outside"]


def test_the_schema_is_served_as_published(api: dict[str, Any]) -> None:
    answer = api["client"].get("/schemas/intake-request", headers={"x-functions-key": ""})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/schema+json")
    published = REPO / "docs" / "schemas" / "intake-request.schema.json"
    assert answer.json() == json.loads(published.read_text())
