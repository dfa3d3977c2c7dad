"""The trust model on the local host and Azurite: every attack of the security review
(../shared/reviews/security-2026-12.md, CRITICAL-1/2, HIGH-1/2/3, MEDIUM-3) replayed
through the real HTTP, queue and store triggers, and each one fails: the victim's record
is unchanged, nothing leaks, a forged Consent has no effect, and the journey says why.
Then what the model still allows: one person's records from two partners of one MRN
space read whole, with the link, by a caller with a relationship.

The cast, as in the review: hosp-a (the victim, the authority for its MRN OID), evil-b
(a hostile registered partner), reader-c (read-only), plus clinic-a2 (another facility
that assigns hosp-a's MRNs), moh (population role), er (break-the-glass) and ops.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.normalize.ids import patient_id
from shared.platform.names import Container, Table
from shared.records.adapters import TablePersonIndex
from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import post_ingest, product_api, wait_stage
from tests.support.consents import privacy_consent
from tests.support.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.azurite

OID = "2.16.840.1.113883.3.999"
SYSTEM = f"urn:oid:{OID}"
HL7 = "x-application/hl7-v2+er7"
FHIR = "application/fhir+json"
LABELS = [
    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code}
    for code in ("SUD", "PSY", "HIV")
]
REGISTRY = {"coding": [{"system": "urn:fhir-intake:consent-category", "code": "opt-out-registry"}]}


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("trust")
    both = frozenset({Role.INGEST, Role.READ})
    partners = [
        Partner(id="hosp-a", name="Hospital A", roles=both, authorities=frozenset({SYSTEM})),
        Partner(id="clinic-a2", name="Clinic A2", roles=both, authorities=frozenset({SYSTEM})),
        Partner(id="evil-b", name="Evil B", roles=both),
        Partner(id="reader-c", name="Reader C", roles=frozenset({Role.READ})),
        Partner(id="moh", name="Ministry", roles=frozenset({Role.POPULATION})),
        Partner(id="er", name="Emergency", roles=frozenset({Role.READ, Role.BREAK_GLASS})),
        Partner(id="ops", name="Operators", roles=frozenset({Role.ADMIN})),
    ]
    env = {
        "INTAKE_LOCAL_SECRETS_FILE": str(tmp / "secrets.json"),
        "INTAKE_WEBHOOK_RETRY_SCHEDULE": "1",
    }
    with product_api(azurite, tmp, partners, "fk-trust", env) as api:
        yield api


def adt(
    mrn: str,
    family: str,
    *,
    when: str = "20261130100000",
    event: str = "A01",
    control: str | None = None,
    born: str = "19800202",
    extra: str = "",
    phone: str = "5550100",
) -> bytes:
    return (
        f"MSH|^~\\&|ADT|SRC|FHIR-INTAKE|INTAKE|{when}||ADT^{event}^ADT_A01|{control or mrn + when}"
        "|P|2.5.1\r"
        f"EVN|{event}|{when}\r"
        f"PID|1||{mrn}^^^&{OID}&ISO^MR||{family}^Pat||{born}|F|||1 Main St^^Town^IL^62701"
        f"||^PRN^PH^^1^217^{phone}\r"
        f"PV1|1|I|WARD-1^101^A||||||||||||||||||V-{mrn}\r" + extra
    ).encode()


def oru(mrn: str, value: int, control: str) -> bytes:
    return (
        f"MSH|^~\\&|LAB|SRC|FHIR-INTAKE|INTAKE|20261130110000||ORU^R01^ORU_R01|{control}|P|2.5.1\r"
        f"PID|1||{mrn}^^^&{OID}&ISO^MR||Victim^Pat||19800202|F\r"
        f"OBR|1|P-{control}|F-{control}|8867-4^Heart rate^LN|||20261130105000||||||||||||||||||F\r"
        f"OBX|1|NM|8867-4^Heart rate^LN||{value}|/min^/min^UCUM|||||F|||20261130105000\r"
    ).encode()


def by_identifier(mrn: str) -> dict[str, Any]:
    return {"identifier": {"system": SYSTEM, "value": mrn}}


def send(api: dict[str, Any], partner: str, body: bytes, kind: str, stage: str = "store") -> dict:
    """Post as ``partner``; the ingestion's journey once ``stage`` reported."""
    ingestion = post_ingest(api, partner, body, kind)
    return wait_stage(api, partner, ingestion, stage)


def issues(row: dict[str, Any], stage: str) -> list[str]:
    return [i["diagnostics"] for i in json.loads(row.get(f"{stage}_issues") or "[]")]


def get(api: dict[str, Any], partner: str, path: str, **headers: str) -> httpx.Response:
    headers["x-api-key"] = api["keys"][partner]
    return api["client"].get(f"/fhir/{path}", headers=headers)


def observations(api: dict[str, Any], partner: str, patient: str) -> list[dict[str, Any]]:
    answer = get(api, partner, f"Observation?patient={patient}")
    assert answer.status_code == 200, answer.text
    return [e["resource"] for e in answer.json().get("entry", [])]


def people(api: dict[str, Any]) -> TablePersonIndex:
    clients = api["clients"]
    return TablePersonIndex(
        clients.table_client(Table.COMPARTMENTS), clients.table_client(Table.IDENTIFIERS)
    )


def deny_everything(consent_id: str, patient: dict[str, Any]) -> bytes:
    consent = privacy_consent(
        consent_id,
        patient,
        "2026-11-01T00:00:00Z",
        policy_rule="OPTOUT",
        provision={"type": "deny", "period": {"start": "2026-11-01"}},
    )
    return json.dumps(consent).encode()


def test_a_forged_permit_does_not_open_the_patients_own_deny(api: dict[str, Any]) -> None:
    """CRITICAL-1, first direction: a later-dated permit with the sensitive labels."""
    victim = patient_id("hosp-a", SYSTEM, "AMRN55")
    send(api, "hosp-a", oru("AMRN55", 88, "A-55-1"), HL7)
    (hr,) = observations(api, "hosp-a", victim)
    assert get(api, "hosp-a", f"Observation/{hr['id']}").status_code == 200
    own = send(api, "hosp-a", deny_everything("deny-55", by_identifier("AMRN55")), FHIR, "consent")
    assert own["consent_consents_indexed"] == 1  # the patient's own directive, via hosp-a
    assert get(api, "hosp-a", f"Observation/{hr['id']}").status_code == 404

    forged = privacy_consent(
        "forged-permit2",
        by_identifier("AMRN55"),
        "2026-11-30T00:00:00Z",
        policy_rule="OPTIN",
        provision={
            "type": "permit",
            "period": {"start": "2026-11-01"},
            "provision": [{"type": "permit", "securityLabel": LABELS}],
        },
    )
    row = send(api, "evil-b", json.dumps(forged).encode(), FHIR, "consent")
    assert (row["consent_consents_indexed"], row["consent_consents_refused"]) == (0, 1)
    assert any(
        "has no effect: partner evil-b has sent no data of this patient" in text
        for text in issues(row, "consent")
    )
    quarantined = [
        b.name
        for b in api["clients"].container(Container.QUARANTINE).list_blobs()
        if b.name.startswith("evil-b/") and b.name.endswith("consent-refused.json")
    ]
    assert quarantined  # kept for the operator, with the reason
    assert get(api, "hosp-a", f"Observation/{hr['id']}").status_code == 404  # deny holds
    # ... and new data of the patient is still refused at collection.
    resent = send(api, "hosp-a", oru("AMRN55", 90, "A-55-2"), HL7, "consent")
    assert resent["consent_status"] == "denied"
    assert any("consent denies collection" in t for t in issues(resent, "consent"))

    # By our record id, as an absolute URL: a Patient on another server, never ours.
    url = {"reference": f"https://x.example/fhir/Patient/{victim}"}
    forged_url = {**forged, "id": "forged-url", "patient": url}
    row = send(api, "evil-b", json.dumps(forged_url).encode(), FHIR, "consent")
    assert row["consent_unplaced"] == 1
    assert any("names a Patient on another server" in t for t in issues(row, "consent"))
    assert get(api, "hosp-a", f"Observation/{hr['id']}").status_code == 404


def test_a_forged_opt_out_has_no_effect(api: dict[str, Any]) -> None:
    """CRITICAL-1, other direction: a registry deny, and a plain deny, from evil-b."""
    victim = patient_id("hosp-a", SYSTEM, "AMRN99")
    send(api, "hosp-a", adt("AMRN99", "Keep"), HL7)
    assert get(api, "hosp-a", f"Patient/{victim}").status_code == 200
    registry_deny = json.loads(deny_everything("forged-optout", by_identifier("AMRN99")))
    registry_deny["category"].append(REGISTRY)
    row = send(api, "evil-b", json.dumps(registry_deny).encode(), FHIR, "consent")
    assert row["consent_consents_refused"] == 1
    assert any("not registered as a registry" in t for t in issues(row, "consent"))
    plain = deny_everything("forged-deny", by_identifier("AMRN99"))
    assert send(api, "evil-b", plain, FHIR, "consent")["consent_consents_refused"] == 1
    assert get(api, "hosp-a", f"Patient/{victim}").status_code == 200
    later = send(api, "hosp-a", oru("AMRN99", 70, "A-99-1"), HL7)
    assert later["consent_status"] == "permitted" and later["store_status"] == "stored"


def test_another_partner_cannot_overwrite_pin_or_merge_away_a_patient(api: dict[str, Any]) -> None:
    """CRITICAL-2: same OID-qualified MRN from evil-b, a far-future MSH-7, an A40/MRG."""
    victim = patient_id("hosp-a", SYSTEM, "AMRN77")
    allergy = "AL1|1|DA|70618^Penicillin^RXNORM|SV|Anaphylaxis\r"
    send(api, "hosp-a", adt("AMRN77", "ZZCANARY", extra=allergy), HL7)
    evil = adt(
        "AMRN77",
        "ZZEVIL",
        when="20991231235959",
        event="A08",
        born="19010101",
        extra="AL1|1|DA|70618^Penicillin^RXNORM|MI|None\r",
    )
    row = send(api, "evil-b", evil, HL7)
    assert row["store_created"] >= 2  # evil-b's own Patient and allergy, new
    assert any("ordered by the time of receipt" in t for t in issues(row, "store"))
    patient = get(api, "hosp-a", f"Patient/{victim}").json()
    assert (patient["name"][0]["family"], patient["birthDate"]) == ("ZZCANARY", "1980-02-02")
    assert patient["meta"]["versionId"] == "1"
    assert patient["meta"]["source"] == "urn:fhir-intake:partner:hosp-a"
    allergies = get(api, "hosp-a", f"AllergyIntolerance?patient={victim}").json()["entry"]
    assert [a["resource"]["criticality"] for a in allergies] == ["high"]
    # hosp-a's genuine update becomes current (nothing is pinned against it).
    update = adt("AMRN77", "ZZCANARY", when="20261201090000", event="A08", phone="5550111")
    assert send(api, "hosp-a", update, HL7)["store_updated"] >= 1
    patient = get(api, "hosp-a", f"Patient/{victim}").json()
    assert patient["telecom"][0]["value"].endswith("5550111")
    # A partner's own far-future time is clamped to its receipt too: its next genuine
    # update still wins.
    ahead = adt("AMRN77", "ZZCANARY", when="20991231235959", event="A08", phone="5550122")
    assert any(
        "ordered by the time of receipt" in t
        for t in issues(send(api, "hosp-a", ahead, HL7), "store")
    )
    time.sleep(1)
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")  # a genuine update is sent as it is made
    fixed = adt("AMRN77", "ZZCANARY", when=now, event="A08", phone="5550133")
    assert send(api, "hosp-a", fixed, HL7)["store_updated"] >= 1
    assert get(api, "hosp-a", f"Patient/{victim}").json()["telecom"][0]["value"].endswith("5550133")

    # The merge hijack: evil-b's A40 names hosp-a's patient in MRG.
    other = patient_id("hosp-a", SYSTEM, "AMRN88")
    send(api, "hosp-a", adt("AMRN88", "ZZKEEP"), HL7)
    merge = (
        "MSH|^~\\&|EVIL|EVIL-B|FHIR-INTAKE|INTAKE|20991231235959||ADT^A40^ADT_A39|B-0101|P|2.5.1\r"
        "EVN|A40|20991231235959\r"
        "PID|1||EVIL-1^^^EVILHOSP^MR||ZZEVIL^Eve||19900101|F\r"
        f"MRG|AMRN88^^^&{OID}&ISO^MR\r"
    ).encode()
    send(api, "evil-b", merge, HL7)
    kept = get(api, "hosp-a", f"Patient/{other}").json()
    assert kept["name"][0]["family"] == "ZZKEEP" and "active" not in kept and "link" not in kept
    evil_patient = patient_id("evil-b", "urn:fhir-intake:partner:evil-b:cs:EVILHOSP", "EVIL-1")
    everything = get(api, "evil-b", f"Patient/{evil_patient}/$everything").json()
    ids = {e["resource"]["id"] for e in everything["entry"]}
    assert other not in ids and victim not in ids


def test_claiming_a_patients_identifier_injects_nothing(api: dict[str, Any]) -> None:
    """HIGH-3: evil-b's Patient claims hosp-a's patient's MRN, with a Condition."""
    victim = patient_id("hosp-a", SYSTEM, "AMRN66")
    send(api, "hosp-a", adt("AMRN66", "Victim"), HL7)
    claim = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": "x1",
                    "identifier": [
                        {"system": "urn:oid:9.9.9", "value": "EVILX"},
                        {"system": SYSTEM, "value": "AMRN66"},
                    ],
                    "name": [{"family": "ZZEVIL"}],
                }
            },
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "xc1",
                    "code": {"text": "ZZEVIL injected: HIV positive"},
                    "subject": {"reference": "Patient/x1"},
                }
            },
        ],
    }
    send(api, "evil-b", json.dumps(claim).encode(), FHIR)
    found = get(api, "hosp-a", f"Patient/{victim}/$everything").json()
    kinds = {
        (e["resource"]["resourceType"], e["resource"]["meta"]["source"]) for e in found["entry"]
    }
    assert ("Condition", "urn:fhir-intake:partner:evil-b") not in {
        (k, s.split("#")[0]) for k, s in kinds
    }
    assert all(s.startswith("urn:fhir-intake:partner:hosp-a") for _, s in kinds)
    assert "ZZEVIL" not in json.dumps(found)
    patients = [e["resource"] for e in found["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert [p["id"] for p in patients] == [victim] and "link" not in patients[0]


def test_patient_data_outside_subject_follows_the_patients_consent(api: dict[str, Any]) -> None:
    """HIGH-1: an Appointment, a Task and an Observation with a contained Patient."""
    send(api, "hosp-a", adt("AMRN44", "Optout"), HL7)
    send(api, "hosp-a", deny_everything("deny-44", by_identifier("AMRN44")), FHIR, "consent")
    identifier = {"system": SYSTEM, "value": "AMRN44"}
    bypass = [
        {
            "resourceType": "Appointment",
            "id": "ap1",
            "status": "booked",
            "description": "ZZCANARYTHREE psychiatric follow-up",
            "start": "2026-12-20T10:00:00Z",
            "end": "2026-12-20T10:30:00Z",
            "participant": [
                {
                    "actor": {"reference": "Patient/p1", "identifier": identifier},
                    "status": "accepted",
                }
            ],
        },
        {
            "resourceType": "Task",
            "id": "t1",
            "status": "requested",
            "intent": "order",
            "description": "ZZCANARYTHREE call back re HIV result",
            "for": {"identifier": identifier},
        },
        {
            "resourceType": "Observation",
            "id": "oc1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "contained": [
                {
                    "resourceType": "Patient",
                    "id": "pat",
                    "identifier": [identifier],
                    "name": [{"family": "ZZCANARYTHREE"}],
                }
            ],
            "subject": {"reference": "#pat"},
            "valueQuantity": {"value": 140, "unit": "/min"},
        },
    ]
    body = "\n".join(json.dumps(r) for r in bypass).encode()
    row = send(api, "hosp-a", body, "application/x-ndjson", "consent")
    assert (row["consent_denied"], row["consent_unplaced"], row["consent_permitted"]) == (2, 1, 0)
    assert any("Task.for names its target by identifier only" in t for t in issues(row, "consent"))
    fhir = api["clients"].container(Container.FHIR)
    stored = {b.name.split("/")[0] for b in fhir.list_blobs()}
    assert "Appointment" not in stored and "Task" not in stored
    rows = api["clients"].table_client(Table.RESOURCES)
    assert not [
        r for r in rows.query_entities("PartitionKey eq 'Observation'") if r.get("patient") == ""
    ]


def test_reads_exports_and_subscriptions_stay_within_the_read_scope(api: dict[str, Any]) -> None:
    """HIGH-2: every read-role partner read everyone, exported everything, and heard of
    every new Patient; the purpose of use was whatever the caller said."""
    victim = patient_id("hosp-a", SYSTEM, "AMRN33")
    with webhook_receiver() as receiver:
        subscriptions = {}
        for partner in ("evil-b", "moh"):
            created = api["client"].post(
                "/subscriptions",
                json={
                    "criteria": "Patient",
                    "events": ["create", "update"],
                    "endpoint": f"{receiver.url}/{partner}",
                    "content": "full-resource",
                },
                headers={"x-api-key": api["keys"][partner]},
            )
            assert created.status_code == 201, created.text
            subscriptions[partner] = created.json()["id"]
        time.sleep(2.5)  # the notify stage's subscription cache
        send(api, "hosp-a", adt("AMRN33", "ZZCANARYSIX"), HL7)
        got = receiver.wait_for(1, timeout=30)
        time.sleep(3)  # anything else would have arrived by now
        assert {r.path for r in receiver.received} == {"/moh"}, [r.path for r in got]
        assert all(
            "ZZCANARYSIX" not in r.body.decode() for r in receiver.received if r.path != "/moh"
        )

    assert get(api, "reader-c", f"Patient/{victim}").status_code == 404
    assert get(api, "evil-b", f"Patient/{victim}").status_code == 404
    searched = get(api, "evil-b", f"Patient?identifier={SYSTEM}|AMRN33").json()
    assert searched.get("entry", []) == []
    walked = get(api, "reader-c", f"Encounter?patient={victim}")
    assert walked.status_code == 200 and walked.json().get("entry", []) == []
    assert get(api, "hosp-a", f"Encounter?patient={victim}").json()["entry"]  # the source
    assert get(api, "moh", f"Patient/{victim}").status_code == 200
    assert (
        get(api, "reader-c", f"Patient/{victim}", **{"x-purpose-of-use": "HMARKT"}).status_code
        == 403
    )

    system = get(api, "reader-c", "$export", prefer="respond-async")
    assert system.status_code == 403
    mine = get(api, "reader-c", "Patient/$export?_type=Patient", prefer="respond-async")
    assert mine.status_code == 202
    manifest = _finish(api, "reader-c", mine.headers["content-location"])
    assert manifest["output"] == []  # reader-c relates to nobody

    # Break-the-glass: only with the grant and an emergency purpose, and audited as such.
    assert get(api, "er", f"Patient/{victim}").status_code == 404
    assert get(api, "er", f"Patient/{victim}", **{"x-purpose-of-use": "ETREAT"}).status_code == 200
    assert (
        get(api, "reader-c", f"Patient/{victim}", **{"x-purpose-of-use": "ETREAT"}).status_code
        == 404
    )
    events = _audit(api)
    glass = [
        e
        for e in events
        if any(s.get("code") == "break-the-glass" for s in e.get("subtype", []))
        and any(x.get("what", {}).get("reference") == f"Patient/{victim}" for x in e["entity"])
    ]
    assert glass and glass[0]["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    refused = [
        e
        for e in events
        if e["agent"][-1]["who"].get("identifier", {}).get("value") == "reader-c"
        and any(
            d.get("valueString") == "none"
            for x in e["entity"]
            for d in x.get("detail", [])
            if d.get("type") == "access"
        )
    ]
    assert refused  # a read refused for want of a relationship is audited too


def test_history_decides_each_version_by_its_own_patient(api: dict[str, Any]) -> None:
    """MEDIUM-3: an Observation that moved from an opted-out patient to another."""

    def bundle(patient: str, value: int) -> bytes:
        return json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"resource": {"resourceType": "Patient", "id": patient}},
                    {
                        "resource": {
                            "resourceType": "Observation",
                            "id": "moved",
                            "status": "final",
                            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                            "subject": {"reference": f"Patient/{patient}"},
                            "valueQuantity": {"value": value, "unit": "/min"},
                        }
                    },
                ],
            }
        ).encode()

    send(api, "hosp-a", bundle("p99", 130), FHIR)
    send(api, "hosp-a", deny_everything("deny-p99", {"reference": "Patient/p99"}), FHIR, "consent")
    send(api, "hosp-a", bundle("p55", 72), FHIR)
    from shared.normalize.ids import resource_id

    moved = resource_id("hosp-a", "Observation", "id", "moved")
    history = get(api, "hosp-a", f"Observation/{moved}/_history").json()
    values = [e["resource"]["valueQuantity"]["value"] for e in history["entry"]]
    assert values == [72]  # v1 was p99's, who opted out
    assert get(api, "hosp-a", f"Observation/{moved}/_history/1").status_code == 404
    assert get(api, "hosp-a", f"Observation/{moved}/_history/2").status_code == 200


def test_one_person_from_two_partners_of_one_mrn_space_reads_whole(api: dict[str, Any]) -> None:
    """The same person from hosp-a and clinic-a2 (both assign the MRN OID): linked, the
    link audited, and $everything returns both partners' data to whoever relates."""
    first = patient_id("hosp-a", SYSTEM, "AMRN22")
    second = patient_id("clinic-a2", SYSTEM, "AMRN22")
    send(api, "hosp-a", adt("AMRN22", "Shared"), HL7)
    send(api, "clinic-a2", adt("AMRN22", "Shared", when="20261130120000"), HL7)
    assert first != second

    def everything(partner: str) -> list[dict[str, Any]]:
        answer = get(api, partner, f"Patient/{first}/$everything")
        assert answer.status_code == 200, answer.text
        return [e["resource"] for e in answer.json()["entry"]]

    found = everything("hosp-a")
    patients = {r["id"]: r for r in found if r["resourceType"] == "Patient"}
    assert set(patients) == {first, second}
    assert {"other": {"reference": f"Patient/{second}"}, "type": "seealso"} in patients[first][
        "link"
    ]
    sources = {r["meta"]["source"] for r in found if r["resourceType"] == "Encounter"}
    assert sources == {"urn:fhir-intake:partner:hosp-a", "urn:fhir-intake:partner:clinic-a2"}
    assert everything("clinic-a2")  # either source relates to the whole person
    assert get(api, "reader-c", f"Patient/{first}/$everything").status_code == 404
    people(api).relate(second, "reader-c", datetime.now(UTC))  # registered via one record
    assert {r["id"] for r in everything("reader-c") if r["resourceType"] == "Patient"} == {
        first,
        second,
    }
    links = [
        e
        for e in _audit(api)
        if e.get("subtype", [{}])[0].get("code") == "patient-link"
        and {x["what"].get("reference") for x in e["entity"]}
        & {f"Patient/{first}", f"Patient/{second}"}
    ]
    assert links and "AMRN22" not in json.dumps(links)


def _finish(api: dict[str, Any], partner: str, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = api["client"].get(location, headers={"x-api-key": api["keys"][partner]})
        if status.status_code == 200:
            return dict(status.json())
        time.sleep(0.5)
    raise AssertionError("the export did not finish")


def _audit(api: dict[str, Any]) -> list[dict[str, Any]]:
    container = api["clients"].container(Container.AUDIT)
    events = []
    for blob in container.list_blobs(name_starts_with="AuditEvent/"):
        data = container.download_blob(blob.name).readall()
        events += [json.loads(line) for line in data.splitlines() if line.strip()]
    return events
