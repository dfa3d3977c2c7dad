"""FHIR R4 AuditEvents for what callers do (submissions, batch uploads issued and drops
refused, administrative actions), and the auditor's query over the ``audit`` container
by patient and by agent.

Events name the agent by the partner identifier (``urn:fhir-intake:partner|<id>``) and
the entities by reference; details are counts and ids, never content. Consent decisions
(shared/consent/audit.py), reads and erasure write their own events into the same place.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

__all__ = [
    "AccessRefusal",
    "AdminAction",
    "AuditQuery",
    "AuditReader",
    "access_refused_audit_event",
    "admin_audit_event",
    "drop_refused_audit_event",
    "ingest_audit_event",
    "upload_audit_event",
]

_NAMESPACE = uuid.UUID("5c1f7a52-6a0b-5b8f-9e7d-1d3b0f9c2e41")
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_SUBTYPE = "urn:fhir-intake:audit-event-subtype"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_PARTNER = "urn:fhir-intake:partner"
_IMPORTS = frozenset({"ingest", "upload-issue", "drop-refused"})  # DICOM 110107 Import
MAX_DAYS = 31


class AdminAction(StrEnum):
    """Administrative actions that leave an AuditEvent (subtype codes)."""

    SUBSCRIPTION_CREATE = "subscription-create"
    SUBSCRIPTION_UPDATE = "subscription-update"
    SUBSCRIPTION_DELETE = "subscription-delete"
    SUBSCRIPTION_ROTATE = "subscription-rotate-secret"
    SUBSCRIPTION_REPLAY = "subscription-replay"
    PARTNER_UPSERT = "partner-upsert"
    KEY_ISSUE = "api-key-issue"
    KEY_REVOKE = "api-key-revoke"
    PARTNER_RELATE = "partner-relate"  # an operator registered a person to a partner
    PARTNER_UNRELATE = "partner-unrelate"
    PATIENT_LINK = "patient-link"  # two partners' Patients became one person
    PATIENT_UNLINK = "patient-unlink"  # an operator kept two Patients apart
    AUDIT_SEARCH = "audit-search"  # an auditor searched the trail (the search is audited too)
    CONSOLE_SIGNIN = "console-signin"  # a partner or operator signed in to the console
    CONSOLE_SEARCH = "console-search"  # ingestions looked up by a patient identifier
    CONSOLE_PAYLOAD_VIEW = "console-payload-view"  # an operator opened a payload (PHI)
    QUEUE_REPLAY = "queue-replay"  # a poison queue's messages sent back to their stage


_ACTION_CODE = {
    "create": "C",
    "update": "U",
    "delete": "D",
    "revoke": "D",
    "issue": "C",
    "relate": "C",
    "unrelate": "D",
    "link": "C",
    "unlink": "D",
    "search": "R",
    "view": "R",
    "replay": "E",
    "signin": "E",
}


class AccessRefusal(StrEnum):
    """Why a request was turned away before it did anything (subtype codes)."""

    AUTHENTICATION = "authentication-failed"  # 401: no valid credentials
    AUTHORIZATION = "authorization-failed"  # 403: a partner without the role, or the right
    QUESTION = "consent-question-refused"  # a consent question about a person out of reach


def _agent(partner: str, system: str = _PARTNER) -> dict[str, Any]:
    return {"who": {"identifier": {"system": system, "value": partner}}, "requestor": True}


def _event(
    subtype: str,
    action: str,
    recorded: datetime,
    agent: str,
    entities: list[dict[str, Any]],
    observer: str,
    key: str,
) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid5(_NAMESPACE, f"{subtype}|{key}|{recorded.isoformat()}")),
        "type": {"system": _DCM, "code": "110107" if subtype in _IMPORTS else "110110"},
        "subtype": [{"system": _SUBTYPE, "code": subtype}],
        "action": action,
        "recorded": recorded.isoformat(),
        "outcome": "0",
        "agent": [_agent(agent)],
        "source": {"observer": {"display": observer}},
        "entity": entities,
    }


def access_refused_audit_event(
    refusal: AccessRefusal,
    caller: str,
    route: str,
    recorded: datetime,
    details: Mapping[str, str] | None = None,
    *,
    authenticated: bool = True,
) -> dict[str, Any]:
    """A request refused (DICOM 110113 Security Alert, outcome 4: minor failure).

    Args:
        caller: the partner id; unauthenticated, what was presented in its place (an API
            key's id, a token's principal, ``none``), never a secret.
        route: method and path (``POST /api/consent/$evaluate``): ids, never a query.
    """
    event = _event(
        refusal.value,
        "E",
        recorded,
        caller,
        [
            {
                "what": {"identifier": {"system": "urn:fhir-intake:route", "value": route}},
                "type": {"system": _ENTITY_TYPE, "code": "2"},
                **(
                    {"detail": [{"type": k, "valueString": v} for k, v in details.items()]}
                    if details
                    else {}
                ),
            }
        ],
        "fhir-intake access control",
        f"{caller}|{route}",
    )
    # One event per caller, route and minute: the same refusal again within it writes to
    # the same name, which the append-only trail keeps as it is (no flood of blobs).
    minute = recorded.strftime("%Y-%m-%dT%H:%M")
    event["id"] = str(uuid.uuid5(_NAMESPACE, f"{refusal.value}|{caller}|{route}|{minute}"))
    event["type"] = {"system": _DCM, "code": "110113"}
    event["outcome"] = "4"
    if not authenticated:
        event["agent"] = [_agent(caller, "urn:fhir-intake:credential")]
    return event


def ingest_audit_event(
    partner: str, ingestion_id: str, raw_blob: str, size: int, recorded: datetime
) -> dict[str, Any]:
    """A partner's payload was accepted and stored (DICOM 110107 Import)."""
    return _event(
        "ingest",
        "C",
        recorded,
        partner,
        [
            {
                "what": {
                    "identifier": {"system": "urn:fhir-intake:ingestion", "value": ingestion_id}
                },
                "type": {"system": _ENTITY_TYPE, "code": "2"},
                "detail": [
                    {"type": "raw-blob", "valueString": raw_blob},
                    {"type": "bytes", "valueString": str(size)},
                ],
            }
        ],
        "fhir-intake ingest",
        ingestion_id,
    )


def upload_audit_event(
    partner: str, upload_id: str, expires: datetime, recorded: datetime
) -> dict[str, Any]:
    """A partner was handed a URL that writes one batch file into its own drop folder
    until ``expires``."""
    return _event(
        "upload-issue",
        "C",
        recorded,
        partner,
        [
            {
                "what": {"identifier": {"system": "urn:fhir-intake:upload", "value": upload_id}},
                "type": {"system": _ENTITY_TYPE, "code": "2"},
                "detail": [{"type": "expires", "valueString": expires.isoformat()}],
            }
        ],
        "fhir-intake upload",
        upload_id,
    )


def drop_refused_audit_event(
    partner: str | None, drop_id: str, upload_id: str | None, reason: str, recorded: datetime
) -> dict[str, Any]:
    """A dropped file was refused: nothing shows that the partner its folder names wrote
    it. The writer is unknown (the first agent); that partner, when the folder names a
    registered one, is the second, not the requestor, so an auditor's search by that
    partner finds the attempt (any other folder name is left out: it may be a patient's).
    The id is the drop's, so a redelivered event leaves one AuditEvent."""
    details = [{"type": "reason", "valueString": reason}]
    if upload_id:
        details.append({"type": "upload", "valueString": upload_id})
    event = _event(
        "drop-refused",
        "C",
        recorded,
        partner or "-",
        [
            {
                "what": {"identifier": {"system": "urn:fhir-intake:drop", "value": drop_id}},
                "type": {"system": _ENTITY_TYPE, "code": "2"},
                "detail": details,
            }
        ],
        "fhir-intake drop",
        drop_id,
    )
    event["id"] = str(uuid.uuid5(_NAMESPACE, f"drop-refused|{drop_id}"))
    event["outcome"] = "4"  # minor failure: the request was refused
    event["agent"] = [
        {"who": {"display": "the writer of the file (not authenticated)"}, "requestor": True}
    ]
    if partner:
        event["agent"].append({**_agent(partner), "requestor": False})
    return event


def admin_audit_event(
    action: AdminAction,
    partner: str,
    target: str,
    recorded: datetime,
    details: Mapping[str, str] | None = None,
    patients: Sequence[str] = (),
) -> dict[str, Any]:
    """An administrative action by ``partner`` on ``target`` (``Subscription/<id>``...);
    ``patients`` (our Patient ids) are named as entities too, so the auditor's search by
    patient finds the action."""
    verb = action.value.rsplit("-", 1)[-1]
    entity: dict[str, Any] = {
        "what": {"reference": target},
        "type": {"system": _ENTITY_TYPE, "code": "2"},
    }
    if details:
        entity["detail"] = [{"type": k, "valueString": v} for k, v in details.items()]
    return _event(
        action.value,
        _ACTION_CODE.get(verb, "E"),
        recorded,
        partner,
        [
            entity,
            *(
                {
                    "what": {"reference": f"Patient/{p}"},
                    "type": {"system": _ENTITY_TYPE, "code": "1"},
                }
                for p in patients
            ),
        ],
        "fhir-intake admin",
        f"{partner}|{target}",
    )


class AuditReader(Protocol):
    """Port: the AuditEvents recorded on one day (``BlobAuditLog``)."""

    def events_on(self, day: date) -> Iterator[dict[str, Any]]:
        """Every AuditEvent of a day, in storage order."""


def _agent_keys(event: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    for agent in event.get("agent") or ():
        who = agent.get("who") or {}
        if who.get("reference"):
            keys.add(str(who["reference"]))
        identifier = who.get("identifier") or {}
        if identifier.get("value"):
            keys.add(f"{identifier.get('system', '')}|{identifier['value']}")
            if identifier.get("system") == _PARTNER:
                keys.add(str(identifier["value"]))  # a partner by its plain id
    return keys


def _patients(event: Mapping[str, Any]) -> set[str]:
    found = set()
    for entity in event.get("entity") or ():
        reference = (entity.get("what") or {}).get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            found.add(reference)
    return found


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """The auditor's search: by patient (``Patient/<id>``) and/or agent (a partner id or
    ``system|value``), over at most 31 days, newest day first, at most ``count`` events.

    The trail is read day by day (one container listing per day), which suits an
    auditor's question about a person or a partner over weeks; a deployment that needs
    months at a time exports the container to Log Analytics or a data lake instead.
    """

    reader: AuditReader

    def search(
        self,
        start: date,
        end: date,
        patient: str | None = None,
        agent: str | None = None,
        count: int = 100,
    ) -> list[dict[str, Any]]:
        """Matching events, newest day first.

        Raises:
            ValueError: the range is backwards or longer than 31 days.
        """
        if end < start or (end - start).days >= MAX_DAYS:
            raise ValueError(f"the date range must be 1 to {MAX_DAYS} days, start before end")
        wanted_patient = (
            None
            if patient is None
            else (patient if patient.startswith("Patient/") else f"Patient/{patient}")
        )
        found: list[dict[str, Any]] = []
        day = end
        while day >= start and len(found) < count:
            for event in self.reader.events_on(day):
                if wanted_patient and wanted_patient not in _patients(event):
                    continue
                if agent and agent not in _agent_keys(event):
                    continue
                found.append(event)
                if len(found) >= count:
                    break
            if day == start:  # never step past it: the day before 0001-01-01 overflows
                break
            day -= timedelta(days=1)
        return found
