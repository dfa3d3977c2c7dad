"""No PHI and no secret in any log line, and no PHI in any table row or status answer:
canary identifying values pushed through every path (HTTP in each format, valid and
invalid, a batch upload and refused drops whose file names are a patient's, each stage,
consent denial, reads and searches, a subscription and its failing webhook, and the error
paths), then every line the host wrote (JSON lines, INTAKE_LOG_FORMAT=json), every row of
every table the test's storage holds and every ingestion's status answer are read for
them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.platform.names import LOCAL_ONLY_TABLES, Container, Table, physical_name
from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import post_ingest, product_api, wait_stage
from tests.support.consents import privacy_consent
from tests.support.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.azurite

FAMILY, GIVEN = "Zyxcanary", "Qwertania"
MRN, MRN_DENIED = "CANMRN88417", "CANMRN99023"
STREET, PHONE, NOTE = "77 Canaryvale Lane", "5550199", "CANARYNOTE skin rash"
CANARIES = [
    FAMILY,
    GIVEN,
    MRN,
    MRN_DENIED,
    "Canaryvale",
    PHONE,
    "CANARYNOTE",
    "1941-12-07",
    "19411207",
]
OID = "2.16.840.1.113883.19.9"


def adt(mrn: str, control: str, pv1: bool = True, sex: str = "F", kind: str = "I") -> bytes:
    segments = [
        f"MSH|^~\\&|ADT|HOSP|EHR|INTAKE|20260301101500||ADT^A01^ADT_A01|{control}|P|2.5.1",
        "EVN|A01|20260301101500",
        f"PID|1||{mrn}^^^&{OID}&ISO^MR||{FAMILY}^{GIVEN}||19411207|{sex}|||{STREET}^^Springfield"
        f"^IL^62701||^PRN^PH^^1^217^{PHONE}",
    ]
    if pv1:
        segments.append(f"PV1|1|{kind}|WARD-3^301^A^HOSP||||||||||||||||||V-CAN-1")
    segments.append(f"NTE|1||{NOTE}")
    return ("\r".join(segments) + "\r").encode()


def fhir_patient(mrn: str) -> bytes:
    return json.dumps(
        {
            "resourceType": "Patient",
            "identifier": [{"system": f"urn:oid:{OID}", "value": mrn}],
            "name": [{"family": FAMILY, "given": [GIVEN]}],
            "birthDate": "1941-12-07",
            "telecom": [{"system": "phone", "value": PHONE}],
            "address": [{"line": [STREET]}],
        }
    ).encode()


def opt_out(mrn: str) -> bytes:
    patient = {"identifier": {"system": f"urn:oid:{OID}", "value": mrn}}
    return json.dumps(
        privacy_consent("canary-optout", patient, "2026-01-01", policy_rule="OPTOUT")
    ).encode()


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("canary")
    partners = [
        Partner(  # it records its patients' consents (an opt-out before their first data)
            id="hosp",
            name="Hospital",
            roles=frozenset({Role.INGEST, Role.CONSENT_SOURCE}),
            consent_systems=frozenset({f"urn:oid:{OID}"}),
        ),
        Partner(id="care", name="Care team", roles=frozenset({Role.READ})),
        Partner(id="ops", name="Operators", roles=frozenset({Role.ADMIN})),
    ]
    env = {
        "INTAKE_LOG_FORMAT": "json",
        "INTAKE_LOCAL_SECRETS_FILE": str(tmp / "secrets.json"),
        "INTAKE_WEBHOOK_RETRY_SCHEDULE": "1",
    }
    with product_api(azurite, tmp, partners, "fk-canary", env) as api:
        from datetime import UTC, datetime

        from shared.normalize.ids import patient_id
        from shared.records.adapters import TablePersonIndex

        clients = api["clients"]
        TablePersonIndex(  # the care team follows the patient (``intake partners relate``)
            clients.table_client(Table.COMPARTMENTS), clients.table_client(Table.IDENTIFIERS)
        ).relate(patient_id("hosp", f"urn:oid:{OID}", MRN), "care", datetime.now(UTC))
        yield api


def invalid_fhir() -> bytes:
    """NDJSON: a good Patient, then identifying values where codes and references go."""
    lines = [
        json.loads(fhir_patient(MRN)),
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "heart rate"},
            "subject": {"reference": f"{FAMILY} {GIVEN} {PHONE}"},
        },
        {"resourceType": "Patient", "gender": FAMILY},
        {"resourceType": f"{GIVEN}Patient"},
    ]
    return "\n".join(json.dumps(line) for line in lines).encode()


def invalid_lab_csv() -> bytes:
    """lab-results rows: one good, then identifying values in a number, a status, a time."""
    return (
        "mrn,collected_at,loinc,test_name,result,units,reference_range,flag,status\n"
        f"{MRN},2026-03-01 06:45,2093-3,Cholesterol,212,mg/dl,<200,H,F\n"
        f"{MRN},2026-03-01 06:45,2093-3,Cholesterol,{FAMILY},mg/dl,<200,H,F\n"
        f"{MRN},2026-03-01 06:45,2093-3,Cholesterol,212,mg/dl,<200,H,{GIVEN}\n"
        f"{MRN},1941-12-07 {FAMILY},2093-3,Cholesterol,212,mg/dl,<200,H,F\n"
    ).encode()


@pytest.fixture(scope="module")
def sent(api: dict[str, Any]) -> dict[str, Any]:
    """Every path driven once with the canaries; the subscription's secret."""
    client, keys = api["client"], api["keys"]
    care = {"x-api-key": keys["care"]}
    hl7 = "x-application/hl7-v2+er7"
    with webhook_receiver([(500, {}), (500, {})]) as receiver:
        subscribed = client.post(
            "/subscriptions",
            json={
                "criteria": f"Patient?identifier=urn:oid:{OID}|{MRN}",
                "endpoint": f"{receiver.url}/hook",
                "content": "full-resource",
            },
            headers=care,
        )
        assert subscribed.status_code == 201, subscribed.text
        time.sleep(2.5)
        # Accepted paths: HL7 (with an ACK), FHIR JSON, CSV, a consent that denies.
        good = post_ingest(api, "hosp", adt(MRN, "CAN-1"), hl7)
        post_ingest(api, "hosp", fhir_patient(MRN), "application/fhir+json")
        csv = (
            "patient_id,timestamp,heart_rate,bp_systolic,bp_diastolic,spo2,weight_kg\n"
            f"{MRN},2026-03-01T07:30:00,72,128,82,97,81.4\n"
        )
        post_ingest(api, "hosp", csv.encode(), "text/csv", "rpm-vitals")
        post_ingest(api, "hosp", opt_out(MRN_DENIED), "application/fhir+json")
        time.sleep(1)
        denied = post_ingest(api, "hosp", adt(MRN_DENIED, "CAN-2"), hl7)
        # Accepted with warnings or rejected records, the values where codes go.
        partial = [
            post_ingest(api, "hosp", adt(MRN, "CAN-3", sex=FAMILY, kind=GIVEN), hl7),
            post_ingest(api, "hosp", invalid_fhir(), "application/x-ndjson"),
            post_ingest(api, "hosp", invalid_lab_csv(), "text/csv", "lab-results"),
        ]
        # Error paths: no MSH, a garbled MSH, a broken FHIR resource, a bad CSV row, an
        # HL7 ACK refusal.
        for body, kind, mapping in (
            (f"PID|1||{MRN}^^^HOSP^MR||{FAMILY}^{GIVEN}||19411207".encode(), hl7, ""),
            (f"MSH|{FAMILY} {GIVEN}|HOSP\rPID|1||{MRN}".encode(), hl7, ""),
            (
                json.dumps(
                    {"resourceType": "Patient", "birthDate": f"{FAMILY}-1941-12-07", "name": GIVEN}
                ).encode(),
                "application/fhir+json",
                "",
            ),
            (
                f"patient_id,timestamp,heart_rate\n{MRN},{FAMILY},{GIVEN}\n".encode(),
                "text/csv",
                "rpm-vitals",
            ),
        ):
            response = client.post(
                "/ingest",
                params={"mapping": mapping} if mapping else None,
                content=body,
                headers={"content-type": kind, "x-api-key": keys["hosp"]},
            )
            assert response.status_code in (202, 400, 422), response.text
        ack = client.post(
            "/ingest",
            content=f"MSH|^~\\&|X|Y|Z|W|2026||ADT^A01|C|P|2.5.1\rPID|1||{MRN}||{FAMILY}".encode()
            + b"\x00",
            headers={
                "content-type": hl7,
                "accept": hl7,
                "x-api-key": keys["hosp"],
                "traceparent": f"bad {FAMILY}",
            },
        )
        assert ack.status_code < 500
        # A batch upload named after the patient; the same written straight into the
        # partner's folder (refused: not an issued upload); one outside any partner's folder.
        batch = fhir_patient(MRN) + b"\n{not json " + FAMILY.encode() + b"}\n"
        issued = client.post(
            "/ingest/uploads",
            json={"filename": f"{FAMILY}, {GIVEN} {MRN}.ndjson"},
            headers={"x-api-key": keys["hosp"]},
        )
        assert issued.status_code == 201, issued.text
        put = httpx.put(
            issued.json()["url"], content=batch, headers={"x-ms-blob-type": "BlockBlob"}
        )
        assert put.status_code == 201
        drops = api["clients"].container(Container.INGEST_DROP)
        drops.upload_blob(f"hosp/{FAMILY}_{GIVEN}_{MRN}.ndjson", batch)
        drops.upload_blob(f"{FAMILY.lower()}/{GIVEN}.ndjson", fhir_patient(MRN))
        assert wait_stage(api, "hosp", good, "store")["store_status"] == "stored"
        assert wait_stage(api, "hosp", denied, "consent")["consent_status"] != "permitted"
        for ingestion in partial:  # each had something to say about the canaries
            row = wait_stage(api, "hosp", ingestion, "normalize")
            assert row["normalize_status"] in ("normalized", "partial"), row
            assert json.loads(row["normalize_issues"]), row
        # Reads and searches with identifying values in the URL.
        for path in (
            f"/fhir/Patient?identifier=urn:oid:{OID}|{MRN}",
            f"/fhir/Observation?patient={FAMILY}",
            f"/fhir/Patient/{FAMILY}",
            f"/fhir/Patient?name={GIVEN}",
        ):
            assert client.get(path, headers=care).status_code < 500
        receiver.wait_for(2, timeout=30)  # the webhook failed, was retried, dead-lettered
        time.sleep(3)  # let the drops and the last stages finish
    return {"secret": subscribed.json()["secret"]}


def _found(text: str) -> set[str]:
    return {c for c in CANARIES if c.lower() in text.lower()}


def test_no_canary_reaches_a_log_line(api: dict[str, Any], sent: dict[str, Any]) -> None:
    keys = api["keys"]
    logs = api["host"].logs()
    lines = [line for line in logs.splitlines() if line.strip()]
    assert len(lines) > 50
    # Secrets are canaries too: the webhook signing secret and every API key.
    secret_values = [sent["secret"], *keys.values()]
    # An API key's secret is all that follows fik_<key id>_ and may hold "_" itself:
    # splitting on the last one tested a few characters that can occur in any log.
    parts = [v.split("_", 2 if v.startswith("fik_") else 1)[-1] for v in secret_values]
    leaked = [v[:12] + "..." for v, part in zip(secret_values, parts, strict=True) if part in logs]
    assert not leaked, leaked
    found = {c for c in CANARIES if re.search(re.escape(c), logs, re.IGNORECASE)}
    offending = [line for line in lines if any(c.lower() in line.lower() for c in found)]
    assert not found, "\n".join(offending[:10])
    not_json = [line for line in lines if not line.startswith("{")]
    assert not not_json, not_json[:5]
    traced = [json.loads(line) for line in lines if '"trace_id"' in line]
    assert traced, "stages bind the ingestion's trace id"


def test_no_canary_in_any_table_row_or_status_answer(
    api: dict[str, Any], sent: dict[str, Any]
) -> None:
    """Status rows and their API say where and which rule, never the value (the value
    stays in the payloads ``$purge`` erases); no other table holds one either. Tables
    are listed on the account, so a table added later is read too; the local host's own
    (``LOCAL_ONLY_TABLES``, the Event Grid stand-in's) do not exist in Azure. One value is
    let through, by name: a subscription's ``criteria``, the search its owner wrote (here
    by the patient's MRN), which the subscription API returns to that owner; it is not
    a status row, and ``$purge`` leaves subscriptions alone (noted for the notify work)."""
    clients = api["clients"]
    local_only = {physical_name(t, clients.prefix, table=True) for t in LOCAL_ONLY_TABLES}
    subscriptions = physical_name(Table.SUBSCRIPTIONS, clients.prefix, table=True)
    tables = sorted(
        t.name
        for t in clients.table.list_tables()
        if t.name.startswith(clients.prefix) and t.name not in local_only
    )
    assert physical_name(Table.INGESTIONS, clients.prefix, table=True) in tables
    leaks: list[str] = []
    rows = 0
    for name in tables:
        for entity in clients.table.get_table_client(name).list_entities():
            rows += 1
            if name == subscriptions:  # the row's body is the Subscription
                entity["body"] = {
                    k: v for k, v in json.loads(entity["body"]).items() if k != "criteria"
                }
            text = json.dumps(
                {str(k): str(v) for k, v in {**entity, "~keys": list(entity)}.items()}
            )
            if found := _found(text):
                leaks.append(f"{name} {entity['PartitionKey']}/{entity['RowKey']}: {found}")
    assert rows > 50 and not leaks, "\n".join(leaks)
    # Every ingestion's journey through the status API, HTTP and dropped alike.
    ingestions = clients.table_client(Table.INGESTIONS)
    ids = [row["RowKey"] for row in ingestions.query_entities("PartitionKey eq 'hosp'")]
    assert len(ids) >= 10
    answers = []
    for ingestion in ids:
        answer = api["client"].get(
            f"/ingest/{ingestion}", headers={"x-api-key": api["keys"]["hosp"]}
        )
        assert answer.status_code == 200, answer.text
        answers.append(answer.text)
    said = "\n".join(answers)
    # The issues are there, by location and rule: the HL7 sex, the FHIR reference, the CSV cell.
    for where in ('"PID-8"', '"line 2.subject.reference"', '"line 3, column 5 (result)"'):
        assert where in said, where
    assert not _found(said), _found(said)
