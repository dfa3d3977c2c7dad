"""The consent-check stage on in-memory fakes: routing, Provenance, master data, failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.consent import Code, ConsentUnavailableError, Policy, PolicyMode
from shared.consent.stage import ConsentStage
from shared.intake.status import StageReport
from shared.normalize import json_codec
from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.names import Container, Queue
from shared.security.models import Partner

from .builders import actor, consent

NOW = datetime(2026, 6, 15, tzinfo=UTC)
NPI = "http://hl7.org/fhir/sid/us-npi|1234567893"


class Blobs:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], bytes] = {}

    def read(self, ref: BlobRef) -> tuple[bytes, dict[str, str], str | None]:
        return self.data[(ref.container, ref.name)], {}, None

    def write(
        self,
        container: Container,
        name: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> BlobRef:
        self.data[(container.value, name)] = data
        return BlobRef(container=container.value, name=name)


class Index:
    def __init__(self, down: bool = False) -> None:
        self.kept: dict[str, tuple[dict[str, Any], set[str]]] = {}
        self.down = down

    def find(self, keys: Any) -> list[dict[str, Any]]:
        if self.down:
            raise ConsentUnavailableError("down")
        return [c for c, k in self.kept.values() if k & set(keys)]

    def find_many(self, key_sets: Any) -> dict[frozenset[str], list[dict[str, Any]]]:
        return {k: self.find(k) for k in key_sets}

    def put(self, resource: dict[str, Any], keys: Any) -> bool:
        self.kept[resource["id"]] = (resource, set(keys))
        return True


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[Queue, Envelope]] = []
        self.reports: list[StageReport] = []
        self.events: list[dict[str, Any]] = []

    def send(self, queue: Queue, envelope: Envelope, delay: int = 0) -> None:
        self.sent.append((queue, envelope))

    def record(self, partner: str, correlation_id: str, report: StageReport) -> None:
        self.reports.append(report)

    def get(self, partner: str, correlation_id: str) -> None:
        return None

    def write(self, event: dict[str, Any]) -> str:
        self.events.append(event)
        return event["id"]

    def write_batch(self, events: Any, work_id: str) -> str:
        self.events.extend(events)
        return work_id

    def record_ingestion(self, patient_ids: Any, ingestion: Any) -> None:
        self.noted = (sorted(patient_ids), ingestion)


class Partners:
    def get(self, partner_id: str) -> Partner | None:
        return Partner(id=partner_id, name="Lab", identifiers=frozenset({NPI}))


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{resource['id']}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }


PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [{"system": "urn:oid:1.2", "value": "M1"}],
}
OBS = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "2093-3"}]},
    "subject": {"reference": "Patient/p1"},
}
ORG = {"resourceType": "Organization", "id": "org1"}
PROV = {
    "resourceType": "Provenance",
    "id": "pv1",
    "target": [
        {"reference": "Patient/p1"},
        {"reference": "Observation/o1"},
        {"reference": "Organization/org1"},
    ],
}


def _run(entries: list[dict[str, Any]], index: Index, mode: PolicyMode = PolicyMode.OPT_OUT):
    blobs, rec = Blobs(), Recorder()
    blobs.data[("normalized", "p1/b.json")] = json_codec.dumps(
        {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    ).encode()
    stage = ConsentStage(
        blobs,
        rec,
        rec,
        index,
        Partners(),
        rec,
        rec,
        Policy(mode=mode),  # type: ignore[arg-type]
        Code(None, "TREAT"),
        clock=lambda: NOW,
    )
    envelope = Envelope(
        correlation_id="ing-1",
        partner="p1",
        kind=EnvelopeKind.BUNDLE_NORMALIZED,
        blob=BlobRef(container="normalized", name="p1/b.json"),
    )
    return stage.handle(envelope), blobs, rec


def test_an_opted_out_patient_keeps_nothing_but_the_provenance_goes_too() -> None:
    index = Index()
    index.put(consent(rule="OPTOUT", ident="c1"), {"urn:oid:1.2|M1"})  # found via identifier
    outcome, blobs, rec = _run([_entry(PATIENT), _entry(OBS), _entry(ORG), _entry(PROV)], index)
    assert (outcome.outcome, outcome.permitted, outcome.denied) == ("denied", 0, 2)
    assert rec.sent == []
    held = json.loads(next(v for (c, _), v in blobs.data.items() if c == "quarantine"))
    assert sorted(d["resource"] for d in held["decisions"]) == ["Observation/o1", "Patient/p1"]
    (event,) = rec.events  # Patient and Observation got the same answer: one AuditEvent
    patients, ingestion = rec.noted  # noted for erasure: where the held-back data came from
    assert patients == ["p1"] and ingestion.normalized == "p1/b.json" and ingestion.patients == 1
    assert len([x for x in event["entity"] if x.get("role", {}).get("code") == "4"]) == 2


def test_data_sent_with_its_consent_is_judged_by_it() -> None:
    withdrawn = consent(rule="OPTOUT", ident="c9")
    withdrawn["patient"] = {"reference": "Patient/p1"}
    outcome, _, _ = _run([_entry(PATIENT), _entry(OBS), _entry(withdrawn)], Index())
    assert (outcome.outcome, outcome.consents_indexed) == ("denied", 1)


def test_partial_keeps_provenance_targets_that_are_stored() -> None:
    index = Index()
    only_obs = consent(
        rule="OPTIN",
        ident="c1",
        provision={
            "provision": [
                {"class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]}
            ]
        },
    )
    index.put(only_obs, {"Patient/p1"})
    outcome, blobs, rec = _run([_entry(PATIENT), _entry(OBS), _entry(ORG), _entry(PROV)], index)
    assert (outcome.outcome, outcome.denied) == ("partial", 1)
    ((queue, nxt),) = rec.sent
    assert queue is Queue.STORE and nxt.kind is EnvelopeKind.BUNDLE_PERMITTED
    assert nxt.blob is not None
    kept = json.loads(blobs.data[(nxt.blob.container, nxt.blob.name)])
    kinds = {e["resource"]["resourceType"]: e["resource"] for e in kept["entry"]}
    assert set(kinds) == {"Patient", "Organization", "Provenance"}
    assert [t["reference"] for t in kinds["Provenance"]["target"]] == [
        "Patient/p1",
        "Organization/org1",
    ]
    assert rec.reports[-1].counts == {
        "resources": 3,
        "permitted": 2,
        "denied": 1,
        "consents_indexed": 0,
    }


def test_an_index_that_does_not_answer_stops_everything() -> None:
    with pytest.raises(ConsentUnavailableError):
        _run([_entry(PATIENT), _entry(OBS)], Index(down=True))


def test_master_data_alone_needs_no_consent_even_under_opt_in() -> None:
    outcome, _, rec = _run([_entry(ORG)], Index(), PolicyMode.OPT_IN)
    assert (outcome.outcome, outcome.permitted, len(rec.sent)) == ("permitted", 1, 1)
    assert rec.events == []


def test_a_withholding_from_an_organization_in_the_bundle_is_matched_by_its_npi() -> None:
    org = {
        "resourceType": "Organization",
        "id": "org9",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
    }
    withhold = consent(rule="OPTOUT", ident="c5", provision={"actor": [actor("Organization/org9")]})
    withhold["patient"] = {"reference": "Patient/p1"}
    # The sender is registered with that NPI (see Partners): its data is refused ...
    outcome, _, _ = _run([_entry(org), _entry(withhold), _entry(PATIENT), _entry(OBS)], Index())
    assert (outcome.outcome, outcome.denied) == ("denied", 2)
    # ... and a consent naming another organization leaves it alone (no fail-closed).
    other = {
        **org,
        "id": "org8",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1111111111"}],
    }
    elsewhere = {**withhold, "id": "c6", "provision": {"actor": [actor("Organization/org8")]}}
    outcome, _, _ = _run([_entry(other), _entry(elsewhere), _entry(PATIENT), _entry(OBS)], Index())
    assert (outcome.outcome, outcome.denied) == ("permitted", 0)


def test_a_consent_naming_the_patient_by_identifier_finds_data_naming_them_by_id() -> None:
    from shared.normalize.ids import resource_id

    index = Index()
    by_identifier = consent(rule="OPTOUT", ident="c7")
    by_identifier["patient"] = {"identifier": {"system": "urn:oid:1.2", "value": "M1"}}
    _run([_entry(by_identifier)], index)
    # A later Observation names the patient only by the id our converters derive from
    # that global identifier (no Patient entry in its Bundle).
    derived = resource_id("Patient", "", "urn:oid:1.2", "M1")
    alone = {**OBS, "subject": {"reference": f"Patient/{derived}"}}
    outcome, _, _ = _run([_entry(alone)], index)
    assert (outcome.outcome, outcome.denied) == ("denied", 1)


def test_consents_that_cannot_be_indexed_are_reported() -> None:
    class Older(Index):
        def put(self, resource: dict[str, Any], keys: Any) -> bool:
            return False  # the index keeps a newer version

    orphan = {**consent(rule="OPTOUT", ident="c8")}
    orphan.pop("patient")
    stale = {**consent(rule="OPTOUT", ident="c9"), "patient": {"reference": "Patient/p1"}}
    outcome, _, rec = _run([_entry(orphan), _entry(stale)], Older())
    assert outcome.consents_indexed == 0
    texts = [i["diagnostics"] for i in rec.reports[-1].issues]
    assert texts == [
        "Consent/c8 names no patient; it cannot apply",
        "Consent/c9: a newer version is on file and stays in force",
    ]
