"""The consent-check stage: a normalized Bundle in, what the patients permit out.

For every resource of the Bundle it decides ``collect`` for the deployment's purpose,
asked by the sending partner. Consent resources in the Bundle are indexed first (they
are the patients' own directives and always kept), so data sent with its consent is
judged by it. Permitted entries go on to the record store (``store``); denied ones go to
``quarantine`` with the decision and are never stored; each distinct decision writes an
AuditEvent; the ingestion's status gets the counts. Master data that belongs to no
patient (Practitioner, Organization, Location) needs no consent. If the consent index
does not answer, nothing passes: the message is retried (fail closed).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.intake.status import IngestionLog, StageReport, wrong_envelope
from shared.normalize import json_codec
from shared.normalize.ids import is_global_system, resource_id
from shared.platform.envelope import Envelope, EnvelopeKind
from shared.platform.names import Container, Queue
from shared.platform.ports import AuditLog, EnvelopeSender, PayloadStore
from shared.records.ingestions import ingestion_ref
from shared.records.models import IngestionRef
from shared.security.partners import PartnerLookup

from .actors import partner_actor
from .audit import consent_audit_event
from .engine import decide_consent
from .index import ConsentSource
from .models import Action, Actor, Code, ConsentDecision, ConsentRequest, Policy
from .resources import (
    consent_patient_keys,
    describe_resource,
    patient_keys,
    resolve_actor_references,
    resource_patient_ref,
)

__all__ = ["ConsentOutcome", "ConsentStage"]

log = logging.getLogger(__name__)


class _Ledger(Protocol):
    def record_ingestion(self, patient_ids: Iterable[str], ingestion: IngestionRef) -> None: ...


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    """What the stage did, for logs and tests (ids and counts only)."""

    outcome: str  # permitted, partial, denied, rejected
    permitted: int
    denied: int
    consents_indexed: int


class _Patients:
    """Patient keys per resource: the reference and identifier it names, the identifiers
    of the Bundle's own Patient entries, and the id our converters give a Patient with
    that identifier (so a Consent naming a patient by identifier finds data that names
    them only by ``Patient/<id>``)."""

    def __init__(self, entries: list[dict[str, Any]], partner: str) -> None:
        self._partner = partner
        self._known: dict[str, set[str]] = {}
        for entry in entries:
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "Patient" and resource.get("id"):
                keys = {f"Patient/{resource['id']}"}
                keys |= {
                    f"{i.get('system', '')}|{i['value']}"
                    for i in resource.get("identifier") or ()
                    if i.get("value")
                }
                self._known[f"Patient/{resource['id']}"] = keys
                if entry.get("fullUrl"):
                    self._known[str(entry["fullUrl"])] = keys

    def keys(self, reference: Any) -> set[str]:
        if not isinstance(reference, dict):
            return set()
        found = patient_keys(reference)
        literal = reference.get("reference")
        for key in [literal, *found]:
            found |= self._known.get(str(key), set())
        for key in [k for k in found if not k.startswith("Patient/")]:
            system, _, value = key.rpartition("|")
            scope = "" if is_global_system(system) else self._partner
            found.add(f"Patient/{resource_id('Patient', scope, system, value)}")
        return found


class ConsentStage:
    """Runs the stage for one envelope."""

    def __init__(
        self,
        payloads: PayloadStore,
        sender: EnvelopeSender,
        status: IngestionLog,
        consents: ConsentSource,
        partners: PartnerLookup,
        audit: AuditLog,
        ledger: _Ledger,
        policy: Policy,
        purpose: Code,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._payloads = payloads
        self._sender = sender
        self._status = status
        self._consents = consents
        self._partners = partners
        self._audit = audit
        self._ledger = ledger
        self._policy = policy
        self._purpose = purpose
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
        entries: list[dict[str, Any]] = list(bundle.get("entry") or ())
        patients = _Patients(entries, envelope.partner)
        indexed, notes = self._index_consents(entries, patients)
        now = self._clock()
        actor = partner_actor(envelope.partner, self._partners.get(envelope.partner))
        owners = [
            (entry, frozenset(patients.keys(resource_patient_ref(entry.get("resource") or {}))))
            for entry in entries
        ]
        found = self._consents.find_many(
            {keys for entry, keys in owners if keys and not _exempt(entry)}
        )
        verdicts: list[tuple[dict[str, Any], ConsentDecision | None, str | None]] = []
        for entry, keys in owners:
            if _exempt(entry) or not keys:
                verdicts.append((entry, None, None))  # no consent needed
                continue
            request = ConsentRequest(
                action=Action.COLLECT,
                at=now,
                purpose=self._purpose,
                actor=actor,
                data=describe_resource(entry.get("resource") or {}, self._policy.zone),
            )
            patient = _own_patient(entry) or next(
                (k for k in sorted(keys) if k.startswith("Patient/")), None
            )
            verdicts.append((entry, decide_consent(found[keys], request, self._policy), patient))
        outcome = self._route(envelope, bundle, verdicts, (indexed, notes), now, actor)
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
                "duration_ms": round((time.perf_counter() - started) * 1000),
            },
        )
        return outcome

    def _index_consents(
        self, entries: list[dict[str, Any]], patients: _Patients
    ) -> tuple[int, list[dict[str, Any]]]:
        """Index the Bundle's Consents; how many, and issues for those that were not."""
        indexed, notes = 0, []
        held = {
            f"{r.get('resourceType')}/{r.get('id')}": r
            for r in (e.get("resource") or {} for e in entries)
            if r.get("id")
        }
        for resource in held.values():
            if resource.get("resourceType") != "Consent":
                continue
            keys = consent_patient_keys(resource) | patients.keys(resource.get("patient"))
            ref = f"Consent/{resource['id']}"
            if not keys:
                notes.append(_issue("warning", f"{ref} names no patient; it cannot apply"))
            elif self._consents.put(resolve_actor_references(resource, held), keys):
                indexed += 1
            else:
                notes.append(
                    _issue("information", f"{ref}: a newer version is on file and stays in force")
                )
        return indexed, notes

    def _route(
        self,
        envelope: Envelope,
        bundle: dict[str, Any],
        verdicts: list[tuple[dict[str, Any], ConsentDecision | None, str | None]],
        consents: tuple[int, list[dict[str, Any]]],
        now: datetime,
        actor: Actor,
    ) -> ConsentOutcome:
        indexed, notes = consents
        prefix = f"{envelope.partner}/{envelope.created:%Y/%m/%d}/{envelope.correlation_id}"
        denied_refs = {_ref(e) for e, d, _ in verdicts if d is not None and not d.permitted}
        kept = [e for e, d, _ in verdicts if (d is None or d.permitted)]
        kept = [k for k in (_trim_provenance(e, denied_refs) for e in kept) if k is not None]
        self._write_audit(envelope, verdicts, now, actor)
        denied = [(e, d) for e, d, _ in verdicts if d is not None and not d.permitted]
        if denied:
            self._payloads.write(
                Container.QUARANTINE,
                f"{prefix}/consent-denied.json",
                json_codec.dumps(
                    {
                        "location": "consent",
                        "decisions": [{"resource": _ref(e), **d.to_json()} for e, d in denied],
                        "entries": [e for e, _ in denied],
                    }
                ).encode(),
                "application/json",
            )
        clinical = [
            e for e in kept if (e.get("resource") or {}).get("resourceType") != "Provenance"
        ]
        if denied and not any(d is not None and d.permitted for _, d, _ in verdicts):
            clinical = []  # master data alone is not worth keeping from a refused message
        if clinical:
            ref = self._payloads.write(
                Container.NORMALIZED,
                f"{prefix}.permitted.json",
                json_codec.dumps({**bundle, "entry": kept}).encode(),
                "application/fhir+json",
                metadata={"normalized": envelope.blob.name if envelope.blob else ""},
            )
            self._sender.send(Queue.STORE, envelope.next(EnvelopeKind.BUNDLE_PERMITTED, ref))
        refused = {p.split("/", 1)[1] for _, d, p in verdicts if p and d and not d.permitted}
        if refused:  # their data is held back: note where it came from, for erasure
            self._ledger.record_ingestion(
                refused,
                ingestion_ref(
                    bundle,
                    envelope.partner,
                    envelope.correlation_id,
                    envelope.blob.name if envelope.blob else "",
                    prefix,
                    {p for _, _, p in verdicts if p},
                ),
            )
        permitted = len(clinical)
        outcome = "denied" if denied and not clinical else "partial" if denied else "permitted"
        self._status.record(
            envelope.partner,
            envelope.correlation_id,
            StageReport(
                stage="consent",
                outcome=outcome,
                counts={
                    "resources": permitted + len(denied),
                    "permitted": permitted,
                    "denied": len(denied),
                    "consents_indexed": indexed,
                },
                issues=notes
                + [
                    _issue(
                        "error",
                        f"{_ref(e)} not stored: consent denies collection"
                        + (
                            " (default policy)"
                            if d.default_applied
                            else f" ({', '.join(d.consents)})"
                        ),
                    )
                    for e, d in denied
                ],
            ),
        )
        return ConsentOutcome(outcome, permitted, len(denied), indexed)

    def _write_audit(
        self,
        envelope: Envelope,
        verdicts: list[tuple[dict[str, Any], ConsentDecision | None, str | None]],
        now: datetime,
        actor: Actor,
    ) -> None:
        groups: dict[str, tuple[ConsentDecision, str | None, list[str]]] = {}
        for entry, decision, patient in verdicts:
            if decision is None:
                continue
            key = json.dumps([decision.to_json(), patient], sort_keys=True)
            groups.setdefault(key, (decision, patient, []))[2].append(_ref(entry))
        events = [
            consent_audit_event(
                work_id=envelope.correlation_id,
                number=number,
                decision=decision,
                action=Action.COLLECT.value,
                purpose=self._purpose,
                actor=actor,
                policy=self._policy,
                recorded=now,
                patient=patient,
                resources=refs,
                observer="fhir-intake consent-check",
            )
            for number, (decision, patient, refs) in enumerate(groups.values())
        ]
        self._audit.write_batch(events, envelope.correlation_id)


def _issue(severity: str, text: str) -> dict[str, Any]:
    """An OperationOutcome issue for the ingestion status (ids only, never PHI)."""
    code = "business-rule" if severity == "error" else "informational"
    return {"severity": severity, "code": code, "diagnostics": text}


def _own_patient(entry: dict[str, Any]) -> str | None:
    """``Patient/<id>`` the resource itself names (not one derived from an identifier)."""
    reference = (resource_patient_ref(entry.get("resource") or {}) or {}).get("reference")
    if isinstance(reference, str) and reference.startswith("Patient/"):
        return reference
    return None


def _exempt(entry: dict[str, Any]) -> bool:
    """Consents (the patient's own directive) and Provenance (follows its targets)."""
    return (entry.get("resource") or {}).get("resourceType") in ("Consent", "Provenance")


def _ref(entry: dict[str, Any]) -> str:
    resource = entry.get("resource") or {}
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _trim_provenance(entry: dict[str, Any], denied: set[str]) -> dict[str, Any] | None:
    """A Provenance keeps only targets that are stored; with none left it is dropped."""
    resource = entry.get("resource") or {}
    if resource.get("resourceType") != "Provenance" or not denied:
        return entry
    targets = [t for t in resource.get("target") or () if t.get("reference") not in denied]
    if not targets:
        return None
    return {**entry, "resource": {**resource, "target": targets}}
