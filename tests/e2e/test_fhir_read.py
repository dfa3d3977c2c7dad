"""The FHIR read API on the local host and Azurite: what the pipeline stored is read
back with its versions by a reader with a relationship to the person, consent withholds
what the patient denies (404, like an absent id), and callers without the right key or
role are refused. (Reads without a relationship: tests/e2e/test_trust.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class

from shared.platform.names import Container
from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import post_ingest, product_api, wait_stage
from tests.support.consents import deny_partner_access
from tests.support.hostproc import REPO

pytestmark = pytest.mark.azurite

OID = "2.16.840.1.113883.19.7"
SHARED = "urn:oid:2.16.840.1.113883.19.8"  # an MRN space the lab and the hospital both assign


def _oru(time: str, value: int) -> bytes:
    return (
        f"MSH|^~\\&|LAB|ACME|EHR|HOSP|{time}||ORU^R01^ORU_R01|C-{time}|P|2.5.1\r"
        f"PID|1||MRN-7^^^&{OID}&ISO^MR||Roe^Ann||19800101|F\r"
        "OBR|1|P-7|F-7|24331-1^Lipid panel^LN|||20260301080000||||||||||||||||||F\r"
        f"OBX|1|NM|2093-3^Cholesterol^LN||{value}|mg/dL^mg/dL^UCUM|||||F|||20260301080000\r"
    ).encode()


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    partners = [
        Partner(id="lab", name="Lab", authorities=frozenset({SHARED})),
        Partner(id="hospital", name="Hospital", authorities=frozenset({SHARED})),
        Partner(id="clinic", name="Clinic", roles=frozenset({Role.READ})),
        Partner(id="ops", name="Operator", roles=frozenset({Role.ADMIN})),
    ]
    with product_api(azurite, tmp_path_factory.mktemp("read"), partners, "fk-read") as api:
        yield api


def _relate(api: dict[str, Any], patient_id: str, partner: str = "clinic") -> None:
    """An operator registers the person to the reading partner (``intake partners relate``)."""
    from datetime import UTC, datetime

    from shared.platform.names import Table
    from shared.records.adapters import TablePersonIndex

    clients = api["clients"]
    TablePersonIndex(
        clients.table_client(Table.COMPARTMENTS), clients.table_client(Table.IDENTIFIERS)
    ).relate(patient_id, partner, datetime.now(UTC))


def _ingest(api: dict[str, Any], body: bytes, content_type: str, partner: str = "lab") -> str:
    ingestion = post_ingest(api, partner, body, content_type)
    wait_stage(api, partner, ingestion, "store")
    return ingestion


def _get(
    api: dict[str, Any], path: str, partner: str | None = "clinic", **headers: str
) -> httpx.Response:
    if partner:
        headers["x-api-key"] = api["keys"][partner]
    return api["client"].get(f"/fhir/{path}", headers=headers)


def _stored_observation(api: dict[str, Any]) -> str:
    container = api["clients"].container(Container.FHIR)
    names = {
        b.name.split("/_history/")[0] for b in container.list_blobs(name_starts_with="Observation/")
    }
    (reference,) = names
    return str(reference)


def test_read_vread_and_history_of_what_the_pipeline_stored(api: dict[str, Any]) -> None:
    from shared.normalize.ids import patient_id

    _ingest(api, _oru("20260301090000", 195), "x-application/hl7-v2+er7")
    obs = _stored_observation(api)
    assert _get(api, obs).status_code == 404  # the clinic has no relationship yet
    _relate(api, patient_id("lab", f"urn:oid:{OID}", "MRN-7"))
    first = _get(api, obs)
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == 'W/"1"' and first.headers["last-modified"].endswith("GMT")
    assert first.json()["valueQuantity"]["value"] == 195
    get_fhir_model_class("Observation").model_validate(first.json())

    _ingest(api, _oru("20260301100000", 201), "x-application/hl7-v2+er7")  # a later correction
    _ingest(api, _oru("20260301083000", 150), "x-application/hl7-v2+er7")  # late: made earlier
    current = _get(api, obs)
    assert (current.headers["etag"], current.json()["valueQuantity"]["value"]) == ('W/"2"', 201)
    assert _get(api, f"{obs}/_history/1").json()["valueQuantity"]["value"] == 195
    history = _get(api, f"{obs}/_history")
    assert history.status_code == 200
    bundle = history.json()
    get_fhir_model_class("Bundle").model_validate(bundle)
    values = [e["resource"]["valueQuantity"]["value"] for e in bundle["entry"]]
    assert (bundle["type"], values) == ("history", [150, 201, 195])  # newest version id first
    assert _get(api, f"{obs}/_history/9").status_code == 404
    found = _get(api, f"Patient?identifier=urn:oid:{OID}|MRN-7").json()
    assert [e["resource"]["identifier"][0]["value"] for e in found["entry"]] == ["MRN-7"]


def test_consent_withholds_a_resource_exactly_like_an_absent_one(api: dict[str, Any]) -> None:
    obs = _stored_observation(api)
    assert _get(api, obs).status_code == 200
    absent = _get(api, "Observation/does-not-exist")
    consent = deny_partner_access(
        "no-clinic-7", {"system": f"urn:oid:{OID}", "value": "MRN-7"}, "2026-03-02", "clinic"
    )
    _ingest(api, json.dumps(consent).encode(), "application/fhir+json")
    withheld = _get(api, obs)
    assert withheld.status_code == absent.status_code == 404
    assert withheld.json() == absent.json()  # nothing tells the two apart
    assert _get(api, f"{obs}/_history").status_code == 404
    assert _get(api, f"{obs}/_history/1").status_code == 404
    hidden = _get(api, f"Patient?identifier=urn:oid:{OID}|MRN-7")
    assert hidden.status_code == 200 and hidden.json().get("entry", []) == []
    # The denial is audited with who asked and which consent decided.
    container = api["clients"].container(Container.AUDIT)
    events = [
        json.loads(line)
        for b in container.list_blobs(name_starts_with="AuditEvent/")
        for line in container.download_blob(b.name).readall().splitlines()
        if line.strip()
    ]
    reads = [e for e in events if e["source"]["observer"]["display"] == "fhir-intake read"]
    denied = [
        e
        for e in reads
        if any(d.get("valueString") == "deny" for x in e["entity"] for d in x.get("detail", []))
    ]
    about = [
        e for e in denied if obs in {x["what"]["reference"] for x in e["entity"] if "what" in x}
    ]

    def access(event: dict[str, Any]) -> set[str]:
        details = [d for x in event["entity"] for d in x.get("detail", [])]
        return {d["valueString"] for d in details if d["type"] == "access"}

    # The read before the clinic had a relationship was refused and audited as such...
    assert any(access(e) == {"none"} for e in about)
    # ...and the consent's denials name the consent that decided.
    about = [e for e in about if access(e) == {"relationship"}]
    assert about  # events are blobs named by id: find ours, in no particular order
    assert {e["agent"][0]["who"]["identifier"]["value"] for e in about} == {"clinic"}
    assert all(
        any(x["what"]["reference"].startswith("Consent/") for x in e["entity"] if "what" in x)
        for e in about
    )


def test_who_may_read(api: dict[str, Any]) -> None:
    obs = _stored_observation(api)
    assert _get(api, obs, partner=None).status_code == 401
    assert _get(api, obs, partner="lab").status_code == 403  # ingest role only
    bad = _get(api, obs, **{"x-purpose-of-use": "because"})
    assert bad.status_code == 400 and "X-Purpose-Of-Use" in bad.json()["issue"][0]["diagnostics"]
    assert _get(api, "observation/1").status_code == 400  # not a resource type


def test_metadata_says_what_is_supported(api: dict[str, Any]) -> None:
    response = httpx.get(f"{api['host'].base_url}/api/fhir/metadata", timeout=10)
    assert response.status_code == 200
    statement = response.json()
    get_fhir_model_class("CapabilityStatement").model_validate(statement)
    observation = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Observation")
    assert {i["code"] for i in observation["interaction"]} == {
        "read",
        "vread",
        "history-instance",
        "search-type",
    }
    assert {p["name"] for p in observation["searchParam"]} == {
        "patient",
        "_lastUpdated",
        "code",
        "date",
    }
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert "identifier" in {p["name"] for p in patient["searchParam"]}
    assert [o["name"] for o in patient["operation"]] == ["everything", "purge"]
    # The review's INFO item: a forged Host header planted links (behind a shared cache,
    # for everyone); the configured public origin is used instead.
    forged = {"host": "evil.example"}
    base = api["host"].base_url
    metadata = httpx.get(f"{base}/api/fhir/metadata", headers=forged, timeout=10).json()
    assert metadata["implementation"]["url"] == f"{base}/api/fhir"
    openapi = httpx.get(f"{base}/api/openapi.json", headers=forged, timeout=10).json()
    assert [s["url"] for s in openapi["servers"]] == [f"{base}/api"]
    search = api["client"].get(
        "/fhir/Observation?patient=nobody",
        headers={**forged, "x-api-key": api["keys"]["clinic"]},
    )
    assert search.status_code == 200 and "evil.example" not in search.text
    odd = api["client"].get(  # "$" let a trailing newline through
        "/fhir/Observation?patient=p1%0A", headers={"x-api-key": api["keys"]["clinic"]}
    )
    assert odd.status_code == 400 and "not a Patient id" in odd.text
    for who in ("clinic", "ops"):  # an id no table row can have: not found, not "outage"
        job = api["client"].get(
            "/fhir/$export-status/..%2Fx", headers={"x-api-key": api["keys"][who]}
        )
        assert job.status_code in (403, 404), job.text
    assert job.status_code == 404


def test_search_a_patients_results_page_by_page_with_filters(api: dict[str, Any]) -> None:
    from shared.normalize.ids import local_system, patient_id

    samples = REPO / "docs" / "samples"
    body = (samples / "lab-results.csv").read_bytes()
    wait_stage(api, "lab", post_ingest(api, "lab", body, "text/csv", "lab-results"), "store")
    patient = patient_id("lab", local_system("lab", "MR"), "LAB-2001")
    _relate(api, patient)

    answer = _get(api, f"Observation?patient={patient}&_count=2")
    assert answer.status_code == 200, answer.text
    first = answer.json()
    get_fhir_model_class("Bundle").model_validate(first)
    assert first["type"] == "searchset" and len(first["entry"]) == 2
    (next_url,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    rest = api["client"].get(next_url, headers={"x-api-key": api["keys"]["clinic"]}).json()
    assert len(rest["entry"]) == 1 and not [x for x in rest["link"] if x["relation"] == "next"]
    codes = {e["resource"]["code"]["coding"][0]["code"] for e in first["entry"] + rest["entry"]}
    assert codes == {"2093-3", "2571-8", "2345-7"}  # LAB-2001's three, not LAB-2002's

    def count(query: str) -> int:
        return len(_get(api, f"Observation?patient={patient}&{query}").json().get("entry", []))

    assert count("code=http://loinc.org|2093-3") == 1
    assert count("code=2093-3,2345-7") == 2
    assert count("date=ge2026-03-01") == 3
    assert count("date=lt2026-03-01") == 0
    assert count("_lastUpdated=gt2020-01-01") == 3
    refused = _get(api, f"Observation?patient={patient}&name=x")
    assert refused.status_code == 400 and "name" in refused.json()["issue"][0]["diagnostics"]
    assert _get(api, "Observation?code=2093-3").status_code == 400  # no compartment given


def test_code_is_fhirs_code_and_a_function_key_sent_as_code_is_never_echoed(
    api: dict[str, Any],
) -> None:
    """With the function key in x-functions-key, ``code`` is the FHIR search parameter;
    without the header the Functions host takes ``?code=`` as the key, so the API reads
    it as nothing and no answer (self link, export manifest) repeats it."""
    from shared.normalize.ids import local_system, patient_id
    from tests.support.hostproc import wait_for

    body = (REPO / "docs" / "samples" / "lab-results.csv").read_bytes()
    wait_stage(api, "lab", post_ingest(api, "lab", body, "text/csv", "lab-results"), "store")
    system = local_system("lab", "MR")
    patient = patient_id("lab", system, "LAB-2001")
    # The rows name the patient; this Patient (no id: the one its identifier gives) is it.
    person = {"resourceType": "Patient", "identifier": [{"system": system, "value": "LAB-2001"}]}
    _ingest(api, json.dumps(person).encode(), "application/fhir+json")
    _relate(api, patient)
    searched = _get(api, f"Observation?patient={patient}&code=http://loinc.org|2093-3")
    assert searched.status_code == 200, searched.text
    bundle = searched.json()
    assert [e["resource"]["code"]["coding"][0]["code"] for e in bundle["entry"]] == ["2093-3"]
    (self_link,) = [x["url"] for x in bundle["link"] if x["relation"] == "self"]
    assert "code=http%3A%2F%2Floinc.org%7C2093-3" in self_link

    key = "fk-read"  # the module's function key

    def keyed(path: str, partner: str = "clinic", **headers: str) -> httpx.Response:
        client = api["client"]
        request = client.build_request(
            "GET", f"{path}?code={key}" if "?" not in path else f"{path}&code={key}"
        )
        del request.headers["x-functions-key"]
        request.headers.update({"x-api-key": api["keys"][partner], **headers})
        return client.send(request)

    unfiltered = keyed(f"/fhir/Observation?patient={patient}")
    assert unfiltered.status_code == 200, unfiltered.text
    assert len(unfiltered.json()["entry"]) == 3  # LAB-2001's three: the key is no filter
    everything = keyed(f"/fhir/Patient/{patient}/$everything")
    assert everything.status_code == 200, everything.text
    kinds = sorted(e["resource"]["resourceType"] for e in everything.json()["entry"])
    assert [k for k in kinds if k != "Provenance"] == ["Observation"] * 3 + ["Patient"]
    audited = keyed("/audit/AuditEvent", partner="ops")
    assert audited.status_code == 200, audited.text
    kickoff = keyed("/fhir/Patient/$export?_type=Observation", prefer="respond-async")
    assert kickoff.status_code == 202, kickoff.text
    location = kickoff.headers["content-location"]
    clinic = {"x-api-key": api["keys"]["clinic"]}
    manifest = wait_for(
        lambda: (done := api["client"].get(location, headers=clinic)).status_code == 200 and done,
        what="the export's manifest",
    ).json()
    assert manifest["request"].endswith("/fhir/Patient/$export?_type=Observation")
    for answer in (unfiltered, everything, audited, kickoff):
        assert key not in answer.text and key not in str(answer.headers), answer.url
    assert key not in json.dumps(manifest)


def _person(patient_id: str, identifiers: list[dict[str, str]], value: int) -> bytes:
    return json.dumps(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Patient",
                        "id": patient_id,
                        "identifier": identifiers,
                    }
                },
                {
                    "resource": {
                        "resourceType": "Observation",
                        "id": f"hr-{patient_id}",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                        "subject": {"reference": f"Patient/{patient_id}"},
                        "effectiveDateTime": "2026-03-01T08:00:00Z",
                        "valueQuantity": {"value": value},
                    }
                },
            ],
        }
    ).encode()


def test_everything_of_one_person_across_two_records(api: dict[str, Any]) -> None:
    from shared.normalize.ids import resource_id

    shared_id = {"system": SHARED, "value": "P-1"}
    other_id = {"system": "urn:oid:2.16.840.1.113883.19.9", "value": "Q-9"}
    _ingest(api, _person("a", [shared_id], 70), "application/fhir+json")
    # Another partner's record is its own Patient; the identifier it shares with the
    # first, of an MRN space both partners assign, makes it the same person.
    _ingest(api, _person("b", [other_id, shared_id], 80), "application/fhir+json", "hospital")
    first = resource_id("lab", "Patient", "id", "a")
    second = resource_id("hospital", "Patient", "id", "b")
    _relate(api, first)  # the clinic relates to the person through the lab's record

    def everything(patient: str) -> list[dict[str, Any]]:
        answer = _get(api, f"Patient/{patient}/$everything?_count=3")
        assert answer.status_code == 200, answer.text
        bundle = answer.json()
        found = [e["resource"] for e in bundle["entry"]]
        while nxt := [x["url"] for x in bundle["link"] if x["relation"] == "next"]:
            bundle = api["client"].get(nxt[0], headers={"x-api-key": api["keys"]["clinic"]}).json()
            found += [e["resource"] for e in bundle["entry"]]
        return found

    for asked in (first, second):
        found = everything(asked)
        assert sorted(
            (r["resourceType"], r["id"]) for r in found if r["resourceType"] == "Patient"
        ) == sorted([("Patient", first), ("Patient", second)])
        values = sorted(
            r["valueQuantity"]["value"] for r in found if r["resourceType"] == "Observation"
        )
        assert values == [70, 80]
    linked = next(
        r for r in everything(first) if r["resourceType"] == "Patient" and r["id"] == first
    )
    assert {"other": {"reference": f"Patient/{second}"}, "type": "seealso"} in linked["link"]
    # An operator separates the two records: each is its own person again.
    unlink = {
        "resourceType": "Parameters",
        "parameter": [{"name": "other", "valueReference": {"reference": f"Patient/{second}"}}],
    }
    refused = api["client"].post(
        f"/fhir/Patient/{first}/$unlink", json=unlink, headers={"x-api-key": api["keys"]["clinic"]}
    )
    assert refused.status_code == 403
    done = api["client"].post(
        f"/fhir/Patient/{first}/$unlink", json=unlink, headers={"x-api-key": api["keys"]["ops"]}
    )
    assert done.status_code == 200, done.text
    alone = everything(first)
    assert {r["id"] for r in alone if r["resourceType"] == "Patient"} == {first}
    assert [r["valueQuantity"]["value"] for r in alone if r["resourceType"] == "Observation"] == [
        70
    ]
    assert _get(api, "Patient/nobody/$everything").status_code == 404
    later = _get(api, f"Patient/{first}/$everything?_since=2100-01-01")
    assert later.status_code == 200 and later.json()["entry"] == []
    assert _get(api, f"Patient/{first}/$everything?type=Observation").status_code == 400
