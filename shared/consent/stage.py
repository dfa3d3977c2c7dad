"""The consent-check stage: a normalized Bundle in, what the patients permit out.

For every resource of the Bundle it first decides whose data it is (``subjects``: the R4
Patient compartment, resolved to the sender's own Patients); a resource whose patient
cannot be determined, or that names another partner's Patient, is quarantined with the
reason (fail closed). Consent resources are then weighed under the trust model: one
counts only when its sender may speak for the patient (``security/trust``); it is
indexed first, so data sent with its consent is judged by it, and one that may not is
quarantined and has no effect. Every other resource of a patient is decided as
``collect`` for the deployment's purpose, asked by the sending partner, against the
consents of the whole person (every Patient linked to the one it names). Permitted
entries go on to the record store (``store``) with their patients written on them;
denied ones go to ``quarantine`` with the decision and are never stored; each distinct
decision writes an AuditEvent; the ingestion's status gets the counts and the reasons.
Master data that belongs to no patient (Practitioner, Organization, Location) needs no
consent. If the consent index does not answer, nothing passes: the message is retried.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.normalize import json_codec
from shared.normalize.ids import resource_id
from shared.pipeline.journey import IngestionLog, StageReport, wrong_envelope
from shared.platform.concurrency import each
from shared.platform.envelope import Envelope, EnvelopeKind
from shared.platform.errors import IntakeError
from shared.platform.names import Container
from shared.platform.ports import AuditLog, PayloadStore
from shared.platform.telemetry import count_consent_decisions
from shared.records.ingestions import ingestion_ref
from shared.records.models import IngestionRef
from shared.records.people import Person
from shared.security.models import Partner
from shared.security.partners import PartnerLookup
from shared.security.trust import (
    ConsentStanding,
    TrustPolicy,
    asserts,
    consent_standing,
    speaks_for,
)

from .actors import partner_actor
from .audit import consent_audit_event
from .engine import decide_consent
from .index import ConsentSource
from .models import Action, Actor, Code, ConsentDecision, ConsentRequest, Effect, Policy
from .resources import describe_resource, resolve_actor_references
from .subjects import COMPARTMENT_EXTENSION, PLACED_TAG, SubjectResolver, Subjects
from .vocabulary import OPT_OUT_REGISTRY

__all__ = ["ConsentOutcome", "ConsentStage"]

log = logging.getLogger(__name__)
_LOOKUPS = 8  # persons resolved at a time (bench/bench_consent.py)
_TRUNCATED = ConsentDecision(
    Effect.DENY,
    reasons=(
        "the person spans more records than are followed; some of their consents may be "
        "unseen, so nothing is collected until an operator reviews their links",
    ),
)


class _Ledger(Protocol):
    def record_ingestion(self, patient_ids: Iterable[str], ingestion: IngestionRef) -> None: ...


class _Store(Protocol):
    def accept(
        self,
        envelope: Envelope,
        bundle: dict[str, Any],
        normalized: str,
        quarantine: str,
        before: StageReport | None = None,
    ) -> object: ...

    def hand_over(
        self,
        envelope: Envelope,
        bundle: dict[str, Any],
        normalized: str,
        quarantine: str,
        before: StageReport,
    ) -> None: ...


class _People(Protocol):
    def person(
        self,
        patient_id: str,
        memo: dict[str, Person] | None = None,
        known: Mapping[str, tuple[Mapping[str, Any], str]] | None = None,
    ) -> Person: ...


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    """What the stage did, for logs and tests (ids and counts only)."""

    outcome: str  # permitted, partial, denied, rejected
    permitted: int
    denied: int
    consents_indexed: int
    unplaced: int = 0  # patient data whose patient could not be determined (quarantined)
    consents_refused: int = 0  # Consents whose sender may not speak for the patient


@dataclass
class _Work:
    """One Bundle's decisions as they are made."""

    envelope: Envelope
    bundle: dict[str, Any]
    entries: list[dict[str, Any]]
    sender: Partner | None
    actor: Actor
    now: datetime
    subjects: dict[int, Subjects] = field(default_factory=dict)  # by entry index
    unplaced: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    refused: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    decisions: dict[int, list[tuple[str, ConsentDecision]]] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    indexed: int = 0
    persons: dict[str, Person] = field(default_factory=dict)
    # By Provenance entry: the patients it names outside ``target`` (an agent, an entity),
    # whatever its targets are (one may list a patient as a target and as an agent).
    beyond: dict[int, tuple[str, ...]] = field(default_factory=dict)


class ConsentStage:
    """Runs the stage for one envelope."""

    def __init__(
        self,
        payloads: PayloadStore,
        status: IngestionLog,
        consents: ConsentSource,
        partners: PartnerLookup,
        audit: AuditLog,
        ledger: _Ledger,
        policy: Policy,
        purpose: Code,
        people: _People,
        holders: Callable[[str, str, str], list[str]],
        store: _Store,
        trust: TrustPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``holders(partner, system, value)``: the partner's stored Patients that carry
        an identifier, in id order; ``store`` takes what is permitted (the store stage)."""
        self._payloads = payloads
        self._store = store
        self._status = status
        self._consents = consents
        self._partners = partners
        self._audit = audit
        self._ledger = ledger
        self._policy = policy
        self._purpose = purpose
        self._people = people
        self._holders = holders
        self._trust = trust or TrustPolicy()
        self._clock = clock

    def handle(self, envelope: Envelope) -> ConsentOutcome:
        """Decide every resource of the Bundle an envelope points at.

        Raises:
            ConsentUnavailableError: the consent index did not answer (retry; fail closed).
            StorageUnavailableError: storage failed (retry).
        """
        started = time.perf_counter()
        if envelope.kind is not EnvelopeKind.BUNDLE_NORMALIZED or envelope.blob is None:
            self._status.record(
                envelope.partner,
                envelope.correlation_id,
                wrong_envelope("consent", "bundle.normalized", str(envelope.kind)),
            )
            return ConsentOutcome("rejected", 0, 0, 0)
        data, _, _ = self._payloads.read(envelope.blob)
        bundle = json_codec.loads(data)
        sender = self._partners.get(envelope.partner)
        work = _Work(
            envelope=envelope,
            bundle=bundle,
            entries=list(bundle.get("entry") or ()),
            sender=sender,
            actor=partner_actor(envelope.partner, sender),
            now=self._clock(),
        )
        self._place(work)
        self._index_consents(work)
        self._decide(work)
        outcome = self._route(work)
        log.info(
            "consent: %s",
            outcome.outcome,
            extra={
                "stage": "consent",
                "correlation_id": envelope.correlation_id,
                "partner": envelope.partner,
                "outcome": outcome.outcome,
                "permitted": outcome.permitted,
                "denied": outcome.denied,
                "consents_indexed": outcome.consents_indexed,
                "consents_refused": outcome.consents_refused,
                "unplaced": outcome.unplaced,
                "duration_ms": round((time.perf_counter() - started) * 1000),
            },
        )
        return outcome

    def _place(self, work: _Work) -> None:
        """Whose data each entry is; the unplaceable and the foreign are set aside."""
        partner = work.envelope.partner
        resolver = SubjectResolver(
            work.entries,
            partner,
            lambda system, value: self._holders(partner, system, value),
            self._trust.max_patients,
        )
        known = {pid: (p, partner) for pid, p in resolver.bundle_patients.items()}
        placed: list[tuple[int, dict[str, Any], Subjects]] = []
        for number, entry in enumerate(work.entries):
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "Consent":  # whose directive: Consent.patient only
                resource = {"resourceType": "Consent", "patient": resource.get("patient")}
            placed.append((number, entry, resolver.of(resource)))
            if resource.get("resourceType") == "Provenance":
                named = resolver.of({**resource, "target": []})
                work.beyond[number] = named.patients if named.problem is None else ()
        # Each patient's person, a few at a time (each is a partition query, and a record
        # read for a Patient not in this Bundle).
        patients = sorted({p for _, _, s in placed if s.problem is None for p in s.patients})

        def resolve(patient: str) -> Person:
            return self._people.person(patient.removeprefix("Patient/"), None, known)

        work.persons.update(zip(patients, each(resolve, patients, _LOOKUPS), strict=True))
        for number, entry, subjects in placed:
            for patient in subjects.patients if subjects.problem is None else ():
                owners = work.persons[patient].owners
                if owners and partner not in owners:
                    subjects = Subjects(problem=f"{patient} is another partner's patient")
                    break
            if subjects.problem is not None:
                work.unplaced.append((entry, f"{_ref(entry)}: {subjects.problem}"))
            else:
                work.subjects[number] = subjects

    def _index_consents(self, work: _Work) -> None:
        """Index each Consent its sender may speak for; refuse the others."""
        held = {_ref(e): e.get("resource") or {} for e in work.entries}
        data_patients = {
            p
            for n, s in work.subjects.items()
            if _kind(work.entries[n]) not in ("Consent", "Provenance")
            for p in s.patients
        }
        for number, subjects in list(work.subjects.items()):
            entry = work.entries[number]
            if _kind(entry) != "Consent":
                continue
            resource = entry.get("resource") or {}
            keys, why = self._standing(work, resource, subjects, data_patients)
            if why is not None:
                del work.subjects[number]
                work.refused.append((entry, f"{_ref(entry)} has no effect: {why}"))
            elif self._consents.put(resolve_actor_references(resource, held), keys):
                work.indexed += 1
            else:
                work.notes.append(
                    _issue(
                        "information",
                        f"{_ref(entry)}: a newer version is on file and stays in force",
                    )
                )

    def _standing(
        self,
        work: _Work,
        consent: Mapping[str, Any],
        subjects: Subjects,
        data_patients: set[str],
    ) -> tuple[set[str], str | None]:
        """The keys a Consent is indexed under, or why it does not count."""
        partner = work.envelope.partner
        patient = subjects.patients[0] if subjects.patients else None
        if patient is None:
            return set(), "it names no patient"
        person = work.persons.get(patient)
        is_source = (
            patient in data_patients
            or patient.removeprefix("Patient/")
            in {_id(e) for e in work.entries if _kind(e) == "Patient"}
            or (person is not None and partner in person.owners)
        )
        systems = {k.rpartition("|")[0] for k in subjects.identifiers}
        standing = consent_standing(
            work.sender,
            is_source=is_source,
            identifier_systems=systems,
            registry_entry=_registry_entry(consent),
        )
        if standing is ConsentStanding.NOT_REGISTRY:
            return set(), (
                f"it is an opt-out registry entry, and partner {partner} is not registered as a "
                "registry"
            )
        if standing is ConsentStanding.NONE:
            return set(), (
                f"partner {partner} has sent no data of this patient and is not registered as "
                "a consent source for the identifier system it names the patient by"
            )
        keys = {patient}
        named = set(subjects.identifiers)  # those Consent.patient names the patient by
        if standing is ConsentStanding.SOURCE:
            # Also under the patient's identifiers the sender asserts (its authorities,
            # its own systems, linking systems), so its data that names the patient by
            # identifier finds the consent too; never under another partner's.
            own = {k for k in (person.keys if person else ()) if not k.startswith("Patient/")}
            keys |= self._asserted(work, named | own)
        elif standing is ConsentStanding.CONSENT_SOURCE and work.sender is not None:
            keys |= {k for k in named if speaks_for(work.sender, [k.rpartition("|")[0]])}
        return keys, None

    def _asserted(self, work: _Work, keys: Iterable[str]) -> set[str]:
        """The identifier keys whose system the sender asserts (``security/trust.asserts``):
        the only identifiers its data may be judged, or its Consents filed, under."""
        return {k for k in keys if asserts(work.sender, k.rpartition("|")[0], self._trust)}

    def _decide(self, work: _Work) -> None:
        """``collect`` for every patient's data, against each person's consents."""
        wanted: dict[tuple[int, str], frozenset[str]] = {}
        for number, subjects in work.subjects.items():
            kind = _kind(work.entries[number])
            if kind == "Consent":
                continue
            # A Provenance is judged for the patients it names beyond its targets (an
            # agent, an entity): its targets' own decisions cover theirs.
            judged = work.beyond.get(number, ()) if kind == "Provenance" else subjects.patients
            for patient in judged:
                named = self._asserted(work, subjects.identifiers_of(patient))
                wanted[(number, patient)] = frozenset(work.persons[patient].keys | named)
        found = self._consents.find_many(set(wanted.values()))
        for (number, patient), keys in wanted.items():
            if work.persons[patient].truncated:  # links beyond the cap: some consents unseen
                work.decisions.setdefault(number, []).append((patient, _TRUNCATED))
                continue
            request = ConsentRequest(
                action=Action.COLLECT,
                at=work.now,
                purpose=self._purpose,
                actor=work.actor,
                data=describe_resource(
                    work.entries[number].get("resource") or {}, self._policy.zone
                ),
            )
            decision = decide_consent(found[keys], request, self._policy)
            work.decisions.setdefault(number, []).append((patient, decision))
        made = [d for ds in work.decisions.values() for _, d in ds]
        permitted = sum(1 for d in made if d.permitted)
        count_consent_decisions(permitted, len(made) - permitted, work.envelope.partner)

    def _route(self, work: _Work) -> ConsentOutcome:
        envelope, bundle = work.envelope, work.bundle
        prefix = f"{envelope.partner}/{envelope.created:%Y/%m/%d}/{envelope.correlation_id}"
        denied = [
            (work.entries[n], d)
            for n, ds in work.decisions.items()
            for _, d in ds
            if not d.permitted
        ]
        denied_numbers = {
            n for n, ds in work.decisions.items() if any(not d.permitted for _, d in ds)
        }
        kept: list[dict[str, Any]] = []
        for number, subjects in work.subjects.items():
            if number not in denied_numbers and _kind(work.entries[number]) != "Provenance":
                kept.append(_placed(work.entries[number], subjects.patients))
        kept += self._provenances(work, {_ref(e) for e in kept}, denied_numbers)
        self._write_audit(work)
        self._quarantine(work, prefix, denied)
        clinical = [e for e in kept if _kind(e) != "Provenance"]
        permitted_any = any(d.permitted for ds in work.decisions.values() for _, d in ds)
        if denied and not permitted_any:
            clinical = []  # master data alone is not worth keeping from a refused message
        refused = {p.split("/", 1)[1] for n in denied_numbers for p in work.subjects[n].patients}
        if refused:  # their data is held back: note where it came from, for erasure
            self._ledger.record_ingestion(
                refused,
                ingestion_ref(
                    bundle,
                    envelope.partner,
                    envelope.correlation_id,
                    envelope.blob.name if envelope.blob else "",
                    prefix,
                    {p for s in work.subjects.values() for p in s.patients},
                ),
            )
        permitted = len(clinical)
        held_back = len(denied_numbers) + len(work.unplaced) + len(work.refused)
        outcome = (
            "denied" if held_back and not clinical else "partial" if held_back else "permitted"
        )
        report = StageReport(
            stage="consent",
            outcome=outcome,
            counts={
                "resources": permitted + len(denied_numbers),
                "permitted": permitted,
                "denied": len(denied_numbers),
                "consents_indexed": work.indexed,
                "consents_refused": len(work.refused),
                "unplaced": len(work.unplaced),
            },
            issues=work.notes
            + [_issue("error", f"{why}; not stored") for _, why in work.unplaced]
            + [_issue("error", f"{why}; kept in quarantine") for _, why in work.refused]
            + [
                _issue(
                    "error",
                    f"{_ref(e)} not stored: consent denies collection"
                    + (" (default policy)" if d.default_applied else f" ({', '.join(d.consents)})"),
                )
                for e, d in denied
            ],
        )
        if clinical:  # the store writes this report with its own: one journey write
            order = {_ref(e): i for i, e in enumerate(work.entries)}
            kept.sort(key=lambda e: order.get(_ref(e), len(order)))
            meta = dict(bundle.get("meta") or {})
            meta["tag"] = [*(meta.get("tag") or []), PLACED_TAG]
            normalized = envelope.blob.name if envelope.blob else ""
            permitted_bundle = {**bundle, "meta": meta, "entry": kept}
            try:
                self._store.accept(envelope, permitted_bundle, normalized, prefix, report)
            except IntakeError as exc:  # a storage failure or conflict: still permitted
                log.warning(
                    "consent-check: store step handed to the store queue (%s)",
                    type(exc).__name__,
                    extra={"stage": "consent", "correlation_id": envelope.correlation_id},
                )
                self._store.hand_over(envelope, permitted_bundle, normalized, prefix, report)
        else:
            self._status.record(envelope.partner, envelope.correlation_id, report)
        return ConsentOutcome(
            outcome,
            permitted,
            len(denied_numbers),
            work.indexed,
            unplaced=len(work.unplaced),
            consents_refused=len(work.refused),
        )

    def _quarantine(
        self, work: _Work, prefix: str, denied: list[tuple[dict[str, Any], ConsentDecision]]
    ) -> None:
        """What is held back, each kind in its own blob with the reasons (ids only)."""
        held = [
            (
                "consent-denied.json",
                {
                    "location": "consent",
                    "decisions": [{"resource": _ref(e), **d.to_json()} for e, d in denied],
                    "entries": list({_ref(e): e for e, _ in denied}.values()),
                },
            ),
            (
                "unplaced.json",
                {
                    "location": "consent",
                    "reasons": [why for _, why in work.unplaced],
                    "entries": [e for e, _ in work.unplaced],
                },
            ),
            (
                "consent-refused.json",
                {
                    "location": "consent",
                    "reasons": [why for _, why in work.refused],
                    "entries": [e for e, _ in work.refused],
                },
            ),
        ]
        for name, body in held:
            if body["entries"]:
                self._payloads.write(
                    Container.QUARANTINE,
                    f"{prefix}/{name}",
                    json_codec.dumps(body).encode(),
                    "application/json",
                )

    def _provenances(self, work: _Work, stored: set[str], denied: set[int]) -> list[dict[str, Any]]:
        """Each Provenance with only targets that are stored, one per patient its targets
        belong to (so each is in exactly one compartment) plus one for the rest."""
        patients_of = {
            _ref(work.entries[n]): s.patients for n, s in work.subjects.items() if n not in denied
        }
        kept = []
        for number, entry in enumerate(work.entries):
            resource = entry.get("resource") or {}
            if resource.get("resourceType") != "Provenance" or number not in work.subjects:
                continue  # not a Provenance, or one whose own references cannot be placed
            if number in denied:
                continue  # a patient it names beyond its targets did not consent
            own = work.beyond.get(number, ())
            groups: dict[str, list[dict[str, Any]]] = {}
            for target in resource.get("target") or ():
                ref = str(target.get("reference") or "")
                if ref not in stored:
                    continue
                owners = patients_of.get(ref) or ("",)
                for owner in owners:
                    groups.setdefault(owner, []).append(target)
            if not groups:
                continue
            patients = sorted(p for p in groups if p)
            if len(patients) <= 1:
                targets = [t for ts in groups.values() for t in ts]
                unique = list({json.dumps(t, sort_keys=True): t for t in targets}.values())
                placement = tuple(dict.fromkeys([*patients, *own]))
                if self._within_bound(work, entry, placement):
                    part = {**entry, "resource": {**resource, "target": unique}}
                    kept.append(_placed(part, placement))
                continue
            for owner, targets in sorted(groups.items()):
                placement = tuple(dict.fromkeys([*((owner,) if owner else ()), *own]))
                if not self._within_bound(work, entry, placement):
                    continue
                ident = (
                    resource["id"]
                    if not owner
                    else resource_id(
                        work.envelope.partner, "Provenance", str(resource["id"]), owner
                    )
                )
                part = {**resource, "id": ident, "target": targets}
                kept.append(
                    _placed(
                        {
                            **entry,
                            "fullUrl": f"urn:uuid:{ident}",
                            "resource": part,
                            "request": {"method": "PUT", "url": f"Provenance/{ident}"},
                        },
                        placement,
                    )
                )
        return kept

    def _within_bound(self, work: _Work, entry: dict[str, Any], placement: tuple[str, ...]) -> bool:
        """Whether a Provenance (or one part of it) names few enough patients to be
        stored and announced; if not it is held back as unplaced."""
        if len(placement) <= self._trust.max_patients:
            return True
        why = f"{_ref(entry)} names more than {self._trust.max_patients} patients"
        work.unplaced.append((entry, why))
        return False

    def _write_audit(self, work: _Work) -> None:
        groups: dict[str, tuple[ConsentDecision, str | None, list[str]]] = {}
        for number, decisions in work.decisions.items():
            for patient, decision in decisions:
                key = json.dumps([decision.to_json(), patient], sort_keys=True)
                groups.setdefault(key, (decision, patient, []))[2].append(
                    _ref(work.entries[number])
                )
        events = [
            consent_audit_event(
                work_id=work.envelope.correlation_id,
                number=number,
                decision=decision,
                action=Action.COLLECT.value,
                purpose=self._purpose,
                actor=work.actor,
                policy=self._policy,
                recorded=work.now,
                patient=patient,
                resources=refs,
                observer="fhir-intake consent-check",
            )
            for number, (decision, patient, refs) in enumerate(groups.values())
        ]
        self._audit.write_batch(events, work.envelope.correlation_id)


def _issue(severity: str, text: str) -> dict[str, Any]:
    """An OperationOutcome issue for the ingestion status (ids only, never PHI)."""
    code = "business-rule" if severity == "error" else "informational"
    return {"severity": severity, "code": code, "diagnostics": text}


def _kind(entry: Mapping[str, Any]) -> str:
    return str((entry.get("resource") or {}).get("resourceType") or "")


def _id(entry: Mapping[str, Any]) -> str:
    return str((entry.get("resource") or {}).get("id") or "")


def _ref(entry: Mapping[str, Any]) -> str:
    resource = entry.get("resource") or {}
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _registry_entry(consent: Mapping[str, Any]) -> bool:
    """Whether a Consent says it is an opt-out registry entry (``Consent.category``)."""
    return any(
        c.get("system") == OPT_OUT_REGISTRY[0] and c.get("code") == OPT_OUT_REGISTRY[1]
        for concept in consent.get("category") or ()
        for c in (concept.get("coding") or ())
    )


def _placed(entry: dict[str, Any], patients: tuple[str, ...]) -> dict[str, Any]:
    """The entry with the patients whose data it is written on it, for the store."""
    others = [e for e in entry.get("extension") or () if e.get("url") != COMPARTMENT_EXTENSION]
    marks = [{"url": COMPARTMENT_EXTENSION, "valueReference": {"reference": p}} for p in patients]
    placed = {**entry, "extension": others + marks}
    if not placed["extension"]:
        del placed["extension"]
    return placed
