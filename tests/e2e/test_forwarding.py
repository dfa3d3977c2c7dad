"""The store stage also feeds an existing FHIR server (a loopback stand-in here): what it
refuses is in the ingestion's status, what it asks to retry is sent again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.security import Partner
from tests.e2e.conftest import post_ingest, product_api, wait_stage
from tests.support.fhir_stub import FhirStub, batch_response, fhir_stub

pytestmark = pytest.mark.azurite

ORU = (
    b"MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500||ORU^R01^ORU_R01|FWD-1|P|2.5.1\r"
    b"PID|1||MRN-F^^^&2.16.840.1.113883.19.12&ISO^MR||Roe^Ann||19800101|F\r"
    b"OBX|1|NM|8867-4^Heart rate^LN||72|/min^^UCUM|||||F|||202603010800\r"
)


def _first_refused(batch: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    statuses = ["201 Created"] * len(batch["entry"])
    statuses[0] = "422 Unprocessable Entity"
    return 200, {}, batch_response(statuses)


@pytest.fixture(scope="module")
def setup(
    azurite: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], FhirStub]]:
    script = [lambda b: (429, {"Retry-After": "1"}, None), _first_refused]
    with fhir_stub(script) as stub:
        env = {"FHIR_SERVER_URL": stub.url, "FHIR_SERVER_AUTH": "none"}
        with product_api(
            azurite, tmp_path_factory.mktemp("fwd"), [Partner(id="lab", name="Lab")], "fk-fwd", env
        ) as api:
            yield api, stub


def test_stored_bundles_reach_the_fhir_server_with_per_entry_outcomes(setup: Any) -> None:
    api, stub = setup
    ingestion = post_ingest(api, "lab", ORU, "x-application/hl7-v2+er7")
    row = wait_stage(api, "lab", ingestion, "forward")
    assert row["store_status"] == "stored"
    assert (row["forward_status"], row["forward_attempts"]) == ("partial", 2)
    assert row["forward_refused"] == 1 and row["forward_accepted"] == row["forward_sent"] - 1
    (first, _, _), (second, batch, _) = stub.received
    assert second - first >= 0.95  # Retry-After honoured
    refused = batch["entry"][0]["request"]["url"]
    assert f"{refused}: the FHIR server answered 422" in row["forward_issues"]
    assert {e["request"]["method"] for e in batch["entry"]} == {"PUT"}
