"""The consent-check stage on in-memory fakes: routing, Provenance, master data, failure,
and the trust model's part: whose data each entry is (fail closed), which Consents count
(consent authority), and the whole person's consents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.consent import Code, ConsentUnavailableError, Policy, PolicyMode
from shared.consent.stage import ConsentStage
from shared.normalize import json_codec
from shared.normalize.ids import patient_id
from shared.pipeline.journey import StageReport
from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.names import Container
from shared.records.people import Person
from shared.security.models import Partner, Role

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
        self.stored: list[tuple[dict[str, Any], str, str]] = []
        self.reports: list[StageReport] = []
        self.events: list[dict[str, Any]] = []

    def accept(
        self,
        envelope: Envelope,
        bundle: dict[str, Any],
        normalized: str,
        quarantine: str,
        before: StageReport | None = None,
    ) -> None:
        """The store stage's side: a permitted Bundle (what it came from, where the held
        back went), and the consent report it writes with its own."""
        self.stored.append((bundle, normalized, quarantine))
        if before is not None:
            self.reports.append(before)

    def hand_over(
        self,
        envelope: Envelope,
        bundle: dict[str, Any],
        normalized: str,
        quarantine: str,
        before: StageReport,
    ) -> None:
        """The store stage's side when ``accept`` failed: the same Bundle, for its queue."""
        self.handed = (bundle, normalized, quarantine)
        self.reports.append(before)

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
    def __init__(self, **registered: Partner) -> None:
        self.registered = registered

    def get(self, partner_id: str) -> Partner | None:
        return self.registered.get(partner_id) or Partner(
            id=partner_id, name="Lab", identifiers=frozenset({NPI})
        )


class People:
    """Persons as the person index resolves them: who stored each Patient, and links."""

    def __init__(
        self, owners: dict[str, str] | None = None, linked: dict[str, str] | None = None
    ) -> None:
        self.owners = owners or {}
        self.linked = linked or {}

    def person(self, pid: str, memo: Any = None, known: Any = None) -> Person:
        ids = [pid, *([self.linked[pid]] if pid in self.linked else [])]
        keys = {f"Patient/{i}" for i in ids}
        for i in ids:
            content = (known or {}).get(i, ({}, ""))[0]
            keys |= {f"{x['system']}|{x['value']}" for x in content.get("identifier") or ()}
        owners = frozenset({self.owners[pid]}) if pid in self.owners else frozenset()
        return Person(tuple(ids), sources=owners, keys=frozenset(keys), owners=owners)


class Holders:
    def __init__(self, held: dict[tuple[str, str, str], list[str]] | None = None) -> None:
        self.held = held or {}

    def __call__(self, partner: str, system: str, value: str) -> list[str]:
        return self.held.get((partner, system, value), [])


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


def _run(
    entries: list[dict[str, Any]],
    index: Index,
    mode: PolicyMode = PolicyMode.OPT_OUT,
    *,
    partner: str = "p1",
    partners: Partners | None = None,
    people: People | None = None,
    holders: Holders | None = None,
    recorder: Recorder | None = None,
):
    blobs, rec = Blobs(), recorder or Recorder()
    blobs.data[("normalized", "p1/b.json")] = json_codec.dumps(
        {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    ).encode()
    stage = ConsentStage(
        blobs,
        rec,
        index,
        partners or Partners(),
        rec,
        rec,
        Policy(mode=mode),  # type: ignore[arg-type]
        Code(None, "TREAT"),
        people or People(),
        holders or Holders(),
        rec,
        clock=lambda: NOW,
    )
    envelope = Envelope(
        correlation_id="ing-1",
        partner=partner,
        kind=EnvelopeKind.BUNDLE_NORMALIZED,
        blob=BlobRef(container="normalized", name="p1/b.json"),
    )
    return stage.handle(envelope), blobs, rec


def test_an_opted_out_patient_keeps_nothing_but_the_provenance_goes_too() -> None:
    index = Index()
    index.put(consent(rule="OPTOUT", ident="c1"), {"urn:oid:1.2|M1"})  # found via identifier
    outcome, blobs, rec = _run([_entry(PATIENT), _entry(OBS), _entry(ORG), _entry(PROV)], index)
    assert (outcome.outcome, outcome.permitted, outcome.denied) == ("denied", 0, 2)
    assert rec.stored == []
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
    outcome, _, rec = _run([_entry(PATIENT), _entry(OBS), _entry(ORG), _entry(PROV)], index)
    assert (outcome.outcome, outcome.denied) == ("partial", 1)
    # What is permitted goes to the store in the same invocation, with where it came from.
    ((kept, normalized, quarantine),) = rec.stored
    assert (normalized, quarantine) == ("p1/b.json", _held("")[:-1])
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
        "consents_refused": 0,
        "unplaced": 0,
    }


def test_an_index_that_does_not_answer_stops_everything() -> None:
    with pytest.raises(ConsentUnavailableError):
        _run([_entry(PATIENT), _entry(OBS)], Index(down=True))


def test_master_data_alone_needs_no_consent_even_under_opt_in() -> None:
    outcome, _, rec = _run([_entry(ORG)], Index(), PolicyMode.OPT_IN)
    assert (outcome.outcome, outcome.permitted, len(rec.stored)) == ("permitted", 1, 1)
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


def test_a_consent_naming_its_own_patient_by_identifier_finds_data_naming_them_by_id() -> None:
    index = Index()
    by_identifier = consent(rule="OPTOUT", ident="c7")
    by_identifier["patient"] = {"identifier": {"system": "urn:oid:1.2", "value": "M1"}}
    derived = patient_id("p1", "urn:oid:1.2", "M1")
    people = People(owners={derived: "p1"})  # p1 sent this patient's data before
    outcome, _, _ = _run([_entry(by_identifier)], index, people=people)
    assert (outcome.consents_indexed, outcome.consents_refused) == (1, 0)
    # A later Observation names the patient only by the id our converters derive from
    # that identifier (no Patient entry in its Bundle).
    alone = {**OBS, "subject": {"reference": f"Patient/{derived}"}}
    outcome, _, _ = _run([_entry(alone)], index, people=people)
    assert (outcome.outcome, outcome.denied) == ("denied", 1)


def test_consents_that_cannot_be_indexed_are_reported() -> None:
    class Older(Index):
        def put(self, resource: dict[str, Any], keys: Any) -> bool:
            return False  # the index keeps a newer version

    orphan = {**consent(rule="OPTOUT", ident="c8")}
    orphan.pop("patient")
    stale = {**consent(rule="OPTOUT", ident="c9"), "patient": {"reference": "Patient/p1"}}
    outcome, blobs, rec = _run(
        [_entry(orphan), _entry(stale)], Older(), people=People(owners={"p1": "p1"})
    )
    assert (outcome.consents_indexed, outcome.unplaced) == (0, 1)
    texts = [i["diagnostics"] for i in rec.reports[-1].issues]
    assert texts == [
        "Consent/c9: a newer version is on file and stays in force",
        "Consent/c8: it names no patient (Consent.patient); not stored",
    ]
    held = json.loads(blobs.data[("quarantine", _held("unplaced.json"))])
    assert [e["resource"]["id"] for e in held["entries"]] == ["c8"]


def _held(name: str) -> str:
    return f"p1/{datetime.now(UTC):%Y/%m/%d}/ing-1/{name}"


# The trust model: consent authority (security review CRITICAL-1).

OID = "urn:oid:2.16.840.1.113883.3.999"
REGISTRY = {"coding": [{"system": "urn:fhir-intake:consent-category", "code": "opt-out-registry"}]}


def _forged(rule: str, *, by_identifier: bool = True, registry: bool = False) -> dict[str, Any]:
    forged = consent(rule=rule, ident="forged", date="2026-11-30")
    forged["patient"] = (
        {"identifier": {"system": OID, "value": "AMRN55"}}
        if by_identifier
        else {"reference": "Patient/victim"}
    )
    if registry:
        forged["category"] = [*forged["category"], REGISTRY]
    return forged


@pytest.mark.parametrize("rule", ["OPTIN", "OPTOUT"])
@pytest.mark.parametrize("by_identifier", [True, False])
def test_a_consent_from_a_partner_that_never_sent_the_patient_has_no_effect(
    rule: str, by_identifier: bool
) -> None:
    index = Index()
    outcome, blobs, rec = _run([_entry(_forged(rule, by_identifier=by_identifier))], index)
    assert (outcome.consents_indexed, outcome.consents_refused) == (0, 1)
    assert index.kept == {} and rec.stored == []  # not indexed, not stored
    (issue,) = rec.reports[-1].issues
    assert issue["diagnostics"].startswith("Consent/forged has no effect: partner p1 has sent no")
    held = json.loads(blobs.data[("quarantine", _held("consent-refused.json"))])
    assert held["entries"][0]["resource"]["id"] == "forged"  # kept, for the operator


def test_an_opt_out_registry_entry_counts_only_from_a_registry() -> None:
    # A partner that is a source of the patient still cannot speak as a registry.
    entries = [_entry(PATIENT), _entry(_forged("OPTOUT", by_identifier=False, registry=True))]
    entries[1]["resource"]["patient"] = {"reference": "Patient/p1"}
    outcome, _, rec = _run(entries, Index())
    assert outcome.consents_refused == 1
    assert "not registered as a registry" in rec.reports[-1].issues[0]["diagnostics"]
    registry = Partner(id="p1", name="Registry", roles=frozenset({Role.REGISTRY}))
    outcome, _, _ = _run(entries, Index(), partners=Partners(p1=registry))
    assert (outcome.consents_indexed, outcome.consents_refused) == (1, 0)


def test_a_consent_source_speaks_for_the_identifier_systems_it_is_registered_for() -> None:
    index = Index()
    source = Partner(
        id="p1",
        name="State consent registry",
        roles=frozenset({Role.CONSENT_SOURCE}),
        consent_systems=frozenset({OID}),
    )
    outcome, _, _ = _run([_entry(_forged("OPTOUT"))], index, partners=Partners(p1=source))
    assert outcome.consents_indexed == 1
    (kept_keys,) = [k for _, k in index.kept.values()]
    assert f"{OID}|AMRN55" in kept_keys  # under the identifier: any record carrying it
    other = source.model_copy(update={"consent_systems": frozenset({"urn:oid:1.9"})})
    outcome, _, _ = _run([_entry(_forged("OPTOUT"))], Index(), partners=Partners(p1=other))
    assert outcome.consents_refused == 1  # not its system


def test_a_partners_own_local_system_needs_no_registration() -> None:
    own = _forged("OPTOUT")
    own["patient"] = {"identifier": {"system": "urn:fhir-intake:partner:p1:cs:MR", "value": "7"}}
    outcome, _, _ = _run([_entry(own)], Index())
    assert (outcome.consents_indexed, outcome.consents_refused) == (1, 0)
    theirs = {
        **own,
        "patient": {"identifier": {"system": "urn:fhir-intake:partner:p2:cs:MR", "value": "7"}},
    }
    outcome, _, _ = _run([_entry(theirs)], Index())
    assert outcome.consents_refused == 1


def test_a_consent_of_a_linked_record_applies_to_the_whole_person() -> None:
    # p1's Patient is linked to q7 (another partner's record of the same person), whose
    # own partner recorded the patient's opt-out: p1's new data is held back too.
    index = Index()
    index.put(consent(rule="OPTOUT", ident="theirs"), {"Patient/q7"})
    outcome, _, _ = _run([_entry(PATIENT), _entry(OBS)], index, people=People(linked={"p1": "q7"}))
    assert (outcome.outcome, outcome.denied) == ("denied", 2)


# Whose data it is (HIGH-1): the R4 Patient compartment, resolved, fail closed.


def test_patient_data_outside_subject_is_decided_for_its_patient() -> None:
    index = Index()
    index.put(consent(rule="OPTOUT", ident="c1"), {"Patient/p1"})
    appointment = {
        "resourceType": "Appointment",
        "id": "ap1",
        "status": "booked",
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}],
    }
    task = {
        "resourceType": "Task",
        "id": "t1",
        "status": "requested",
        "intent": "order",
        "for": {"reference": "Patient/p1"},
    }
    outcome, _, _ = _run([_entry(appointment), _entry(task)], index)
    assert (outcome.outcome, outcome.denied) == ("denied", 2)


def test_a_contained_patient_is_the_senders_patient_with_those_identifiers() -> None:
    index = Index()
    index.put(consent(rule="OPTOUT", ident="c1"), {"Patient/stored-p"})
    contained = {
        **OBS,
        "contained": [
            {"resourceType": "Patient", "id": "pat", "identifier": [{"system": OID, "value": "A9"}]}
        ],
        "subject": {"reference": "#pat"},
    }
    holders = Holders({("p1", OID, "A9"): ["stored-p"]})
    outcome, _, _ = _run([_entry(contained)], index, holders=holders)
    assert (outcome.outcome, outcome.denied) == ("denied", 1)
    # Another partner's Patient with that identifier is never the answer.
    outcome, _, _ = _run([_entry(contained)], index, holders=Holders({("p2", OID, "A9"): ["x"]}))
    assert outcome.outcome == "permitted"


@pytest.mark.parametrize(
    ("resource", "why"),
    [
        (
            {
                "resourceType": "Task",
                "id": "t1",
                "status": "requested",
                "intent": "order",
                "for": {"identifier": {"system": OID, "value": "AMRN99"}},
            },
            "Task.for names its target by identifier only, without a type",
        ),
        (
            {**OBS, "subject": {"reference": "https://other.example/fhir/Patient/x"}},
            "Observation.subject names a Patient on another server",
        ),
        ({**OBS, "subject": {"display": "J. Smith"}}, "names its target by display text only"),
        ({k: v for k, v in OBS.items() if k != "subject"}, "it names no patient"),
        (
            {
                **OBS,
                "contained": [{"resourceType": "Patient", "id": "pat"}],
                "subject": {"reference": "#pat"},
            },
            "a contained Patient without identifiers",
        ),
    ],
)
def test_patient_data_whose_patient_cannot_be_told_is_quarantined(
    resource: dict[str, Any], why: str
) -> None:
    outcome, blobs, rec = _run([_entry(resource), _entry(ORG)], Index())
    assert outcome.unplaced == 1
    stored = rec.stored[0][0]
    assert [e["resource"]["resourceType"] for e in stored["entry"]] == ["Organization"]
    assert any(why in i["diagnostics"] for i in rec.reports[-1].issues)
    held = json.loads(blobs.data[("quarantine", _held("unplaced.json"))])
    assert held["entries"][0]["resource"]["id"] == resource["id"]


def test_another_partners_patient_is_never_written_to() -> None:
    outcome, _, rec = _run([_entry(OBS)], Index(), people=People(owners={"p1": "hosp-a"}))
    assert (outcome.unplaced, rec.stored) == (1, [])
    assert "another partner's patient" in rec.reports[-1].issues[0]["diagnostics"]


def test_permitted_entries_carry_their_patients_and_provenance_is_split_per_patient() -> None:
    second = {**PATIENT, "id": "p2", "identifier": [{"system": "urn:oid:1.2", "value": "M2"}]}
    obs2 = {**OBS, "id": "o2", "subject": {"reference": "Patient/p2"}}
    prov = {
        **PROV,
        "target": [
            {"reference": r}
            for r in (
                "Patient/p1",
                "Observation/o1",
                "Patient/p2",
                "Observation/o2",
                "Organization/org1",
            )
        ],
    }
    entries = [
        _entry(PATIENT),
        _entry(OBS),
        _entry(second),
        _entry(obs2),
        _entry(ORG),
        _entry(prov),
    ]
    _, _, rec = _run(entries, Index())
    kept = rec.stored[0][0]
    assert any(t.get("code") == "placed" for t in kept["meta"]["tag"])
    placed = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": [
            x["valueReference"]["reference"] for x in e.get("extension") or ()
        ]
        for e in kept["entry"]
    }
    assert placed["Observation/o2"] == ["Patient/p2"] and placed["Organization/org1"] == []
    provenances = [
        e["resource"] for e in kept["entry"] if e["resource"]["resourceType"] == "Provenance"
    ]
    by_patient = {
        tuple(placed[f"Provenance/{p['id']}"]): sorted(t["reference"] for t in p["target"])
        for p in provenances
    }
    assert by_patient == {
        ("Patient/p1",): ["Observation/o1", "Patient/p1"],
        ("Patient/p2",): ["Observation/o2", "Patient/p2"],
        (): ["Organization/org1"],
    }
    assert len({p["id"] for p in provenances}) == 3


def test_a_consent_is_filed_under_its_own_patient_only_never_under_other_references() -> None:
    # The review of this change, HIGH-1: a typed identifier in provision.actor used to be
    # taken as the Consent's patient key, reaching whoever else carried it.
    index = Index()
    evil = Partner(id="p1", name="B", authorities=frozenset({"urn:oid:3.777"}))
    trick = consent(rule="OPTIN", ident="c1", date="2026-12-30")
    trick["provision"] = {
        "type": "permit",
        "actor": [
            {
                "role": {"text": "x"},
                "reference": {
                    "type": "Patient",
                    "identifier": {"system": "urn:oid:3.777", "value": "B0042"},
                },
            }
        ],
    }
    own = {"resourceType": "Patient", "id": "p1"}
    outcome, _, _ = _run([_entry(own), _entry(trick)], index, partners=Partners(p1=evil))
    assert outcome.consents_indexed == 1
    (keys,) = [k for _, k in index.kept.values()]
    assert keys == {"Patient/p1"}


def test_data_is_judged_only_under_identifiers_its_sender_asserts() -> None:
    # evil-b names hosp-a's MRN on its own data: hosp-a's consents filed under the MRN are
    # none of its business (and must not tell it the MRN has one).
    index = Index()
    index.put(consent(rule="OPTOUT", ident="theirs"), {f"{OID}|AMRN55"})
    named = {
        **OBS,
        "subject": {"type": "Patient", "identifier": {"system": OID, "value": "AMRN55"}},
    }
    outcome, _, rec = _run([_entry(named)], index)
    assert outcome.outcome == "permitted"
    assert not any("theirs" in i["diagnostics"] for i in rec.reports[-1].issues)
    authority = Partner(id="p1", name="A", authorities=frozenset({OID}))
    outcome, _, _ = _run([_entry(named)], index, partners=Partners(p1=authority))
    assert outcome.outcome == "denied"  # the MRN's own authority: the consent applies


def test_a_person_larger_than_is_followed_is_collected_for_nobody() -> None:
    class Huge(People):
        def person(self, pid: str, memo: Any = None, known: Any = None) -> Person:
            found = super().person(pid, memo, known)
            return Person(found.patients, keys=found.keys, truncated=True)

    outcome, _, _ = _run([_entry(PATIENT), _entry(OBS)], Index(), people=Huge())
    assert (outcome.outcome, outcome.denied) == ("denied", 2)


def test_a_provenance_is_judged_for_the_patients_it_names_beyond_its_targets() -> None:
    """Its targets' decisions cover their patients; an agent or entity naming another
    patient is that patient's data: an opt-out keeps the Provenance out, else it is
    filed under that patient too (never under no patient, which every subscriber and
    reader would take for master data)."""
    second = {**PATIENT, "id": "p2", "identifier": [{"system": "urn:oid:1.2", "value": "M2"}]}
    about = {
        **PROV,
        "target": [{"reference": "Organization/org1"}],
        "agent": [{"who": {"reference": "Patient/p2"}}],
    }
    index = Index()
    index.put(consent(rule="OPTOUT", ident="c1"), {"urn:oid:1.2|M2"})
    outcome, _, rec = _run([_entry(second), _entry(ORG), _entry(about)], index)
    assert outcome.denied == 2  # p2's Patient and the Provenance naming them
    assert rec.stored == []  # the Organization alone is not kept from a refused message
    outcome, _, rec = _run([_entry(second), _entry(ORG), _entry(about)], Index())
    kept = {e["resource"]["resourceType"]: e for e in rec.stored[0][0]["entry"]}
    placed = [x["valueReference"]["reference"] for x in kept["Provenance"]["extension"]]
    assert placed == ["Patient/p2"]


def test_a_provenance_naming_too_many_patients_once_split_is_held_back_not_poisoned() -> None:
    """Each part of a split Provenance names its target's patient and the patients it
    names beyond them: past the bound a change message cannot carry them all."""
    second = {**PATIENT, "id": "p2", "identifier": [{"system": "urn:oid:1.2", "value": "M2"}]}
    obs2 = {**OBS, "id": "o2", "subject": {"reference": "Patient/p2"}}
    others = [
        {**PATIENT, "id": f"x{n}", "identifier": [{"system": "urn:oid:1.2", "value": f"X{n}"}]}
        for n in range(100)
    ]
    wide = {
        **PROV,
        "target": [{"reference": "Observation/o1"}, {"reference": "Observation/o2"}],
        "agent": [{"who": {"reference": f"Patient/x{n}"}} for n in range(100)],
    }
    entries = [_entry(PATIENT), _entry(OBS), _entry(second), _entry(obs2)]
    outcome, _, rec = _run([*entries, *map(_entry, others), _entry(wide)], Index())
    assert outcome.unplaced >= 1
    kinds = [e["resource"]["resourceType"] for e in rec.stored[0][0]["entry"]]
    assert "Provenance" not in kinds and kinds.count("Observation") == 2
    assert any("names more than 100 patients" in i["diagnostics"] for i in rec.reports[-1].issues)


def test_a_store_step_that_fails_hands_what_was_permitted_to_the_store_queue() -> None:
    """A retry must not decide again (a consent indexed in between would leave what was
    written already unlisted and unannounced): the permitted Bundle goes, as it is, to
    the store queue, and the consent-check message is done."""
    from shared.platform.errors import StorageUnavailableError

    class Failing(Recorder):
        def accept(self, *args: Any, **kwargs: Any) -> None:
            raise StorageUnavailableError("writing the record failed: ServiceRequestError")

    failing = Failing()
    outcome, _, rec = _run([_entry(PATIENT), _entry(OBS)], Index(), recorder=failing)
    assert outcome.outcome == "permitted" and rec is failing
    bundle, normalized, quarantine = failing.handed
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["p1", "o1"]
    assert (normalized, quarantine) == ("p1/b.json", _held("")[:-1])
    assert failing.reports[-1].stage == "consent"


@pytest.mark.parametrize("with_patient", [True, False])
def test_a_patient_listed_as_a_target_and_an_agent_is_still_judged(with_patient: bool) -> None:
    """Listing the opted-out patient among the targets as well must not hide the agent:
    the target goes (not stored), the agent stays in the resource, so it is decided."""
    second = {**PATIENT, "id": "p2", "identifier": [{"system": "urn:oid:1.2", "value": "M2"}]}
    prov = {
        **PROV,
        "target": [{"reference": "Observation/o1"}, {"reference": "Patient/p2"}],
        "agent": [{"who": {"reference": "Patient/p2"}}],
    }
    index = Index()
    index.put(consent(rule="OPTOUT", ident="c1"), {"urn:oid:1.2|M2", "Patient/p2"})
    entries = [_entry(PATIENT), _entry(OBS), *([_entry(second)] if with_patient else [])]
    _, _, rec = _run([*entries, _entry(prov)], index)
    stored = [e["resource"]["resourceType"] for b, *_ in rec.stored for e in b["entry"]]
    assert "Provenance" not in stored and "Observation" in stored
