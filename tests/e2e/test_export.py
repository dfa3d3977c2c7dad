"""FHIR Bulk Data export on the local host and Azurite: kick-off, status, manifest and
NDJSON files that match the store, a patient's consent honoured, a read-role partner's
Patient export of the persons it relates to, cancel, and refusals."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.generate import ndjson_records
from shared.platform.names import Table
from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import post_ingest, product_api, wait_stage
from tests.support.consents import action_provision, privacy_consent

pytestmark = pytest.mark.azurite
# 400 Patients, 400 Observations and a Provenance for each patient's: several two-second
# slices per job
RECORDS = 800


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    partners = [
        Partner(id="feed", name="Feed", roles=frozenset({Role.INGEST, Role.READ})),
        Partner(id="analytics", name="Analytics", roles=frozenset({Role.POPULATION})),
        Partner(id="other", name="Other reader", roles=frozenset({Role.READ})),
    ]
    # Notifications are not what this module tests; their stage would double the queue
    # traffic of the 2,000-record seed on a two-core machine. Two-second slices: a job
    # takes several export messages, each well inside the test host's one-minute timeout.
    env = {"AzureWebJobs.notify.Disabled": "true", "INTAKE_EXPORT_SLICE_SECONDS": "2"}
    with product_api(azurite, tmp_path_factory.mktemp("export"), partners, "fk-export", env) as api:
        _ingest(api, b"".join(itertools.islice(ndjson_records(5), RECORDS)), "application/x-ndjson")
        yield api


def _ingest(api: dict[str, Any], body: bytes, content_type: str) -> None:
    wait_stage(api, "feed", post_ingest(api, "feed", body, content_type), "store", timeout=300)


def _kickoff(
    api: dict[str, Any], path: str = "$export", partner: str = "analytics", **headers: str
) -> httpx.Response:
    headers.setdefault("prefer", "respond-async")
    headers["x-api-key"] = api["keys"][partner]
    return api["client"].get(
        f"/fhir/{path}", headers={"accept": "application/fhir+json", **headers}
    )


def _finish(api: dict[str, Any], location: str, partner: str = "analytics") -> dict[str, Any]:
    headers = {"x-api-key": api["keys"][partner]}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = api["client"].get(location, headers=headers)
        if status.status_code == 200:
            return dict(status.json())
        assert status.status_code == 202, status.text
        assert status.headers.get("x-progress")
        time.sleep(0.5)
    raise AssertionError("the export did not finish")


def _files(api: dict[str, Any], manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for output in manifest["output"]:
        response = api["client"].get(output["url"], headers={"x-api-key": api["keys"]["analytics"]})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in response.text.splitlines() if line]
        assert len(lines) == output["count"]
        found.setdefault(output["type"], []).extend(lines)
    return found


def _stored(api: dict[str, Any]) -> dict[str, set[str]]:
    rows = api["clients"].table_client(Table.RESOURCES).list_entities()
    found: dict[str, set[str]] = {}
    for row in rows:
        if not row.get("deleted"):
            found.setdefault(row["PartitionKey"], set()).add(row["RowKey"])
    return found


def test_a_system_export_matches_the_store(api: dict[str, Any]) -> None:
    kickoff = _kickoff(api)
    assert kickoff.status_code == 202, kickoff.text
    manifest = _finish(api, kickoff.headers["content-location"])
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    files = _files(api, manifest)
    exported = {kind: {r["id"] for r in lines} for kind, lines in files.items()}
    assert exported == _stored(api)
    assert all(len(lines) == len({r["id"] for r in lines}) for lines in files.values())
    # Slices: a type's resources came in more than one file, each from its own slice.
    kinds = [o["type"] for o in manifest["output"]]
    assert len(kinds) > len(set(kinds)), kinds
    assert len(exported["Patient"]) == len(exported["Observation"]) == RECORDS // 2
    sample = files["Observation"][0]
    assert sample["meta"]["versionId"] == "1" and sample["resourceType"] == "Observation"


def test_patient_export_with_type_and_since_and_a_patients_consent(api: dict[str, Any]) -> None:
    from shared.normalize.ids import resource_id

    # The feed's consent names its patient by identifier, as a partner would (a partner's
    # references are to its own ids, which the pipeline namespaces).
    identifier = {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN000000001"}
    withheld = resource_id("feed", "Patient", "id", "gen-5-1")  # the Patient that carries it
    assert withheld in _stored(api)["Patient"]
    consent = privacy_consent(
        "no-analytics",
        {"identifier": identifier},
        "2026-03-02",
        provision=action_provision("deny", "use"),
    )
    _ingest(api, json.dumps(consent).encode(), "application/fhir+json")
    kickoff = _kickoff(api, "Patient/$export?_type=Patient,Observation&_since=2000-01-01")
    assert kickoff.status_code == 202, kickoff.text
    files = _files(api, _finish(api, kickoff.headers["content-location"]))
    assert set(files) == {"Patient", "Observation"}  # no Provenance: not patient data, not asked
    patients = {r["id"] for r in files["Patient"]}
    assert withheld not in patients and len(patients) == RECORDS // 2 - 1
    subjects = {r["subject"]["reference"] for r in files["Observation"]}
    assert f"Patient/{withheld}" not in subjects
    later = _kickoff(api, "$export?_since=2100-01-01")
    assert _finish(api, later.headers["content-location"])["output"] == []


def test_cancel_and_who_may_see_a_job(api: dict[str, Any]) -> None:
    location = _kickoff(api).headers["content-location"]
    assert (
        api["client"].get(location, headers={"x-api-key": api["keys"]["other"]}).status_code == 404
    )
    cancel = api["client"].delete(location, headers={"x-api-key": api["keys"]["analytics"]})
    assert cancel.status_code == 202
    assert (
        api["client"].get(location, headers={"x-api-key": api["keys"]["analytics"]}).status_code
        == 404
    )


def test_refusals(api: dict[str, Any]) -> None:
    assert _kickoff(api, prefer="").status_code == 400
    assert _kickoff(api, "$export?_typeFilter=x").status_code == 400
    assert _kickoff(api, "$export?_outputFormat=text/csv").status_code == 400
    system = _kickoff(api, partner="other")  # a read role: its persons, never everyone
    assert system.status_code == 403 and "population role" in system.text


def test_a_read_role_partner_exports_the_persons_it_relates_to(api: dict[str, Any]) -> None:
    mine = _kickoff(api, "Patient/$export?_type=Patient", partner="feed")
    assert mine.status_code == 202, mine.text
    location = mine.headers["content-location"]
    manifest = _finish(api, location, partner="feed")
    headers = {"x-api-key": api["keys"]["feed"]}
    exported = set()
    for output in manifest["output"]:
        lines = api["client"].get(output["url"], headers=headers).text.splitlines()
        exported |= {json.loads(line)["id"] for line in lines if line}
    # The feed sent every Patient, so all are its persons (but the one whose consent says
    # no); the other reader relates to nobody, so its export is empty.
    assert len(exported) == RECORDS // 2 - 1
    theirs = _kickoff(api, "Patient/$export?_type=Patient", partner="other")
    assert _finish(api, theirs.headers["content-location"], partner="other")["output"] == []
