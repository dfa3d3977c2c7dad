"""C-CDA documents through the real triggers on the local host and Azurite: a CCD over
HTTP is stored, its Patient is the one an ADT with the same OID and MRN made, and its
Observations are read through consent like any other; a hostile document is a 400; a
zip file of documents dropped into blob storage becomes one ingestion per document."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.normalize.ids import patient_id
from shared.platform.names import Container, Queue, Table
from shared.security import Partner, Role
from tests.e2e.conftest import post_ingest, product_api, wait_stage
from tests.support.ccda_documents import MRN_OID, document
from tests.support.consents import deny_partner_access
from tests.support.hostproc import wait_for

pytestmark = pytest.mark.azurite
SENDER = "ehr"


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    partners = [
        Partner(
            id=SENDER,
            name="EHR",
            authorities=frozenset({f"urn:oid:{MRN_OID}"}),
            queue_intake=True,
        ),
        Partner(id="reader", name="Reader", roles=frozenset({Role.READ})),
    ]
    env = {"INTAKE_DIRECT_DROP_PARTNERS": SENDER}
    with product_api(azurite, tmp_path_factory.mktemp("ccda"), partners, "fk-ccda", env) as api:
        yield api


def _get(api: dict[str, Any], path: str) -> httpx.Response:
    return api["client"].get(f"/fhir/{path}", headers={"x-api-key": api["keys"]["reader"]})


def _stored(api: dict[str, Any], kind: str) -> set[str]:
    container = api["clients"].container(Container.FHIR)
    return {
        b.name.split("/_history/")[0] for b in container.list_blobs(name_starts_with=f"{kind}/")
    }


def _relate(api: dict[str, Any], patient: str) -> None:
    from datetime import UTC, datetime

    from shared.platform.names import Table
    from shared.records.adapters import TablePersonIndex

    clients = api["clients"]
    TablePersonIndex(
        clients.table_client(Table.COMPARTMENTS), clients.table_client(Table.IDENTIFIERS)
    ).relate(patient, "reader", datetime.now(UTC))


def test_a_ccd_over_http_is_stored_linked_and_consent_checked(api: dict[str, Any]) -> None:
    ingestion = post_ingest(api, SENDER, document().encode(), "application/cda+xml")
    row = wait_stage(api, SENDER, ingestion, "store")
    assert row["store_status"] == "stored", row
    report = [i["diagnostics"] for i in json.loads(row["normalize_issues"])]
    assert any(line.startswith("section 1 (LOINC 11450-4, template") for line in report), report
    expected = patient_id(SENDER, f"urn:oid:{MRN_OID}", "MRN-1001")
    assert f"Patient/{expected}" in _stored(api, "Patient")
    adt = (
        "MSH|^~\\&|EHR|CLINIC|INTAKE|HUB|20240105120000||ADT^A08^ADT_A01|ADT-1|P|2.5.1\r"
        "EVN|A08|20240105120000\r"
        f"PID|1||MRN-1001^^^&{MRN_OID}&ISO^MR||Testpatient^Alex||19800101|F\r"
        "PV1|1|O\r"
    ).encode()
    wait_stage(api, SENDER, post_ingest(api, SENDER, adt, "x-application/hl7-v2+er7"), "store")
    assert _stored(api, "Patient") == {f"Patient/{expected}"}  # the same Patient, a new version
    (observation,) = _stored(api, "Observation")
    assert _get(api, observation).status_code == 404  # no relationship yet
    _relate(api, expected)
    read = _get(api, observation)
    assert read.status_code == 200, read.text
    assert (read.json()["valueQuantity"]["value"], read.json()["code"]["coding"][0]["code"]) == (
        95,
        "2345-7",
    )
    consent = deny_partner_access(
        "no-reader", {"system": f"urn:oid:{MRN_OID}", "value": "MRN-1001"}, "2024-01-06", "reader"
    )
    done = post_ingest(api, SENDER, json.dumps(consent).encode(), "application/fhir+json")
    wait_stage(api, SENDER, done, "store")
    assert _get(api, observation).status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type", "code", "text"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<ClinicalDocument xmlns="urn:hl7-org:v3">&x;</ClinicalDocument>',
            "application/cda+xml",
            "not-supported",
            "DTD or entity declaration",
        ),
        (b"<note>not a document</note>", "text/xml", "not-supported", "not a CDA ClinicalDocument"),
        (
            b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>',
            "application/xml",
            "structure",
            "not well-formed",
        ),
    ],
)
def test_a_hostile_or_broken_document_is_a_400_operation_outcome(
    api: dict[str, Any], body: bytes, content_type: str, code: str, text: str
) -> None:
    response = api["client"].post(
        "/ingest",
        content=body,
        headers={"content-type": content_type, "x-api-key": api["keys"][SENDER]},
    )
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert (response.json()["resourceType"], issue["code"]) == ("OperationOutcome", code)
    assert text in issue["diagnostics"]
    assert "passwd" not in response.text


def test_a_zip_of_documents_dropped_is_one_ingestion_per_document(api: dict[str, Any]) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("a.xml", document(mrn="MRN-2001", set_id="zip-a"))
        out.writestr("b.xml", document(mrn="MRN-2002", set_id="zip-b"))
        out.writestr("notes.txt", "not a document")
    drop = api["clients"].container(Container.INGEST_DROP)
    drop.upload_blob(f"{SENDER}/docs/day1.zip", archive.getvalue())
    reports = api["clients"].container(Container.REPORTS)

    def report() -> dict[str, Any] | None:
        try:
            blob = reports.download_blob(f"{SENDER}/docs/day1.zip.report.json").readall()
        except ResourceNotFoundError:  # not written yet
            return None
        return dict(json.loads(blob))

    found = wait_for(report, what="zip drop report", timeout=60)
    assert (found["format"], found["records"], found["chunks"], found["status"]) == (
        "ccda",
        2,
        2,
        "partial",
    )
    assert [(r["location"], r["outcome"]["issue"][0]["code"]) for r in found["rejected"]] == [
        ("member 3", "not-supported")
    ]
    for ingestion in found["ingestions"]:
        wait_stage(api, SENDER, ingestion, "store")
    patients = _stored(api, "Patient")
    for mrn in ("MRN-2001", "MRN-2002"):
        assert f"Patient/{patient_id(SENDER, f'urn:oid:{MRN_OID}', mrn)}" in patients


def test_an_internal_producer_sends_a_document_through_the_intake_queue(
    api: dict[str, Any],
) -> None:
    request = {
        "partner": SENDER,
        "content_type": "application/cda+xml",
        "payload": document(mrn="MRN-3001", set_id="queued"),
    }
    api["clients"].queue_client(Queue.INTAKE_REQUESTS).send_message(json.dumps(request).encode())
    table = api["clients"].table_client(Table.INGESTIONS)
    row = wait_for(
        lambda: next(
            (
                dict(r)
                for r in table.query_entities("received_channel eq 'queue'")
                if r.get("store_status")
            ),
            None,
        ),
        what="the queued document stored",
        timeout=60,
    )
    assert (row["normalize_status"], row["store_status"]) == ("normalized", "stored"), row
    expected = patient_id(SENDER, f"urn:oid:{MRN_OID}", "MRN-3001")
    assert f"Patient/{expected}" in _stored(api, "Patient")
