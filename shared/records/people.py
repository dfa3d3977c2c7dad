"""One person across partners: the links between their Patients, made when a Patient is
stored and checked again whenever the person is resolved.

Every partner's Patient is its own (ids are scoped by the sender). Two Patients are one
person when they share an identifier that links them under the trust model
(``security/trust.links``: within one partner any shared identifier; across partners only
one both partners assert), or when a partner's own merge (``Patient.link``, ADT A40/MRG)
joins two of its Patients; an operator's unlink keeps two apart for good. Each link is a
row on both Patients with the identifier's system, a hash of the identifier, and the two
partners; a new link is audited. Resolving a person re-checks every link against the
current Patients and partner registrations, so an identifier dropped from a Patient or an
authority taken from a partner ends the link at once.

The person answers three questions the rest of the record asks: which Patients (for
``$everything``), who may read them (the partners that sent any of them, and those an
operator registered to them), and under which keys their consents are kept.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.platform.ports import AuditLog
from shared.security.audit import AdminAction, admin_audit_event
from shared.security.models import Partner
from shared.security.trust import TrustPolicy, asserts, links

__all__ = [
    "MAX_PEOPLE",
    "IdentifierHolder",
    "Link",
    "People",
    "Person",
    "PersonRows",
    "identifier_hash",
    "person_keys",
]

log = logging.getLogger(__name__)
MAX_PEOPLE = 50  # Patients one person may span before we stop following links
PARTNERS_REFRESH_SECONDS = 5.0  # how long a partner's registration is reused (a batch's
# persons would otherwise read the same partner row once each)


def identifier_hash(system: str, value: str) -> str:
    """The key a link keeps for its identifier (a hash: identifiers are PHI)."""
    return hashlib.sha256(f"{system}|{value}".encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Link:
    """A link row: ``patient_id`` and ``other_id`` are one person on an identifier."""

    patient_id: str
    other_id: str
    system: str  # the identifier's system (not PHI); "" for a merge
    key: str  # ``identifier_hash`` of the identifier
    partners: tuple[str, ...]  # the two partners whose Patients it joins


@dataclass(frozen=True, slots=True)
class IdentifierHolder:
    """A Patient that carries an identifier, and the partner that sent it."""

    patient_id: str
    partner: str


@dataclass(frozen=True, slots=True)
class PersonRows:
    """What a Patient's partition says about its person."""

    links: tuple[Link, ...] = ()
    related: frozenset[str] = frozenset()  # partners an operator registered the person to
    sources: frozenset[str] = frozenset()  # partners that sent the Patient's data
    unlinked: frozenset[str] = frozenset()  # Patient ids kept apart from this one


@dataclass(frozen=True, slots=True)
class Person:
    """One person: their Patients (the asked one first), who sent them, who is registered
    to them, the links that joined them, and every key their consents are kept under."""

    patients: tuple[str, ...]
    sources: frozenset[str] = frozenset()
    related: frozenset[str] = frozenset()
    links: tuple[Link, ...] = ()
    keys: frozenset[str] = frozenset()  # Patient/<id> of each, and identifiers asserted
    owners: frozenset[str] = frozenset()  # who stored data of the asked Patient itself
    truncated: bool = False  # links went on past MAX_PEOPLE: some records (and consents) unseen

    def __repr__(self) -> str:  # keys hold identifiers, which are PHI
        return f"Person(patients={len(self.patients)}, sources={sorted(self.sources)})"


class _Index(Protocol):
    def rows(self, patient_id: str) -> PersonRows: ...

    def holders(self, system: str, value: str) -> list[IdentifierHolder]: ...

    def index_identifiers(self, patient: Mapping[str, Any], partner: str) -> None: ...

    def add_link(self, link: Link, made: datetime, correlation_id: str) -> bool: ...


class _Patients(Protocol):
    def current_patient(self, patient_id: str) -> dict[str, Any] | None: ...


MAX_IDENTIFIER = 1024  # characters of a system or value an identifier may link on


def _identifiers(patient: Mapping[str, Any] | None) -> dict[str, tuple[str, str]]:
    """A Patient's identifiers with a system (of a sensible length), by their hash."""
    found = {}
    for identifier in (patient or {}).get("identifier") or ():
        system, value = identifier.get("system"), identifier.get("value")
        if system and value and max(len(str(system)), len(str(value))) <= MAX_IDENTIFIER:
            found[identifier_hash(str(system), str(value))] = (str(system), str(value))
    return found


def _merged(patient: Mapping[str, Any] | None) -> set[str]:
    """The partner's own Patients a merge (``Patient.link``) names."""
    found = set()
    for link in (patient or {}).get("link") or ():
        other = str((link.get("other") or {}).get("reference") or "")
        if other.startswith("Patient/") and "/" not in other.removeprefix("Patient/"):
            found.add(other.removeprefix("Patient/"))
    return found


@dataclass
class _Seen:
    """What resolving one person has read so far."""

    rows: dict[str, PersonRows] = field(default_factory=dict)
    patients: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    senders: dict[str, str] = field(default_factory=dict)  # not stored yet: who sends it

    def sources(self, patient_id: str) -> frozenset[str]:
        """Who sent a Patient's data, or is sending it now."""
        stored = self.rows[patient_id].sources if patient_id in self.rows else frozenset()
        sending = self.senders.get(patient_id)
        return stored | {sending} if sending else stored


class People:
    """Resolves persons and links Patients as they are stored."""

    def __init__(
        self,
        index: _Index,
        patients: _Patients,
        partners: Callable[[str], Partner | None],
        policy: TrustPolicy,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        refresh_seconds: float = PARTNERS_REFRESH_SECONDS,
    ) -> None:
        self._refresh = refresh_seconds
        self._index = index
        self._patients = patients
        self._lookup = partners
        self._known: dict[str, tuple[float, Partner | None]] = {}
        self._policy = policy
        self._audit = audit
        self._clock = clock

    def person(
        self,
        patient_id: str,
        memo: MutableMapping[str, Person] | None = None,
        known: Mapping[str, tuple[Mapping[str, Any], str]] | None = None,
    ) -> Person:
        """The person ``patient_id`` is part of (at most ``MAX_PEOPLE`` Patients).

        Args:
            patient_id: the Patient asked about (``<id>``, not ``Patient/<id>``).
            memo: persons already resolved in this request, by Patient id (filled in).
            known: Patients not stored yet, by id, with the partner sending them (a
                Bundle in the consent stage): their content stands in for the record.

        Raises:
            StorageUnavailableError: storage failed.
        """
        if memo is not None and patient_id in memo:
            return memo[patient_id]
        seen = _Seen()
        partners: dict[str, Partner | None] = {}

        def partner(partner_id: str) -> Partner | None:
            if partner_id not in partners:
                partners[partner_id] = self._partners(partner_id)
            return partners[partner_id]

        def load(pid: str) -> tuple[PersonRows, Mapping[str, Any] | None]:
            if pid not in seen.rows:
                seen.rows[pid] = self._index.rows(pid)
                if known and pid in known:
                    seen.patients[pid], seen.senders[pid] = known[pid]
                else:
                    seen.patients[pid] = self._patients.current_patient(pid)
            return seen.rows[pid], seen.patients[pid]

        people, queue, joined = [patient_id], [patient_id], []
        truncated = False  # a record was left out at the cap: its consents go unseen
        while queue:
            current = queue.pop(0)
            rows, patient = load(current)
            candidates: list[tuple[str, Link | None]] = [(x.other_id, x) for x in rows.links]
            candidates += [(other, None) for other in sorted(_merged(patient))]
            for other, link in candidates:
                if other in people or other in rows.unlinked:
                    continue
                if len(people) >= MAX_PEOPLE:
                    truncated = True
                    break
                other_rows, other_patient = load(other)
                if current in other_rows.unlinked:
                    continue
                mine, theirs = seen.sources(current), seen.sources(other)
                if link is None:  # a merge: only between the same partner's Patients
                    ok = bool(mine) and mine == theirs
                else:
                    ok = self._holds(link, patient, other_patient, mine, theirs, partner)
                if ok:
                    people.append(other)
                    queue.append(other)
                    if link is not None:
                        joined.append(link)
            if truncated:
                log.warning(
                    "people: a person spans more records than are followed",
                    extra={"stage": "people", "outcome": "truncated"},
                )
                break
        found = self._person(people, seen, joined, partner, truncated)
        if memo is not None:
            memo[patient_id] = found
        return found

    def _holds(
        self,
        link: Link,
        patient: Mapping[str, Any] | None,
        other: Mapping[str, Any] | None,
        mine: frozenset[str],
        theirs: frozenset[str],
        partner: Callable[[str], Partner | None],
    ) -> bool:
        """Whether a link row still joins two Patients: both carry its identifier now, and
        the trust model links their partners on its system today."""
        if link.key not in _identifiers(patient) or link.key not in _identifiers(other):
            return False
        return any(
            links(partner(a), partner(b), link.system, self._policy) for a in mine for b in theirs
        )

    def _person(
        self,
        people: list[str],
        seen: _Seen,
        joined: list[Link],
        partner: Callable[[str], Partner | None],
        truncated: bool,
    ) -> Person:
        keys: set[str] = set()
        sources: set[str] = set()
        related: set[str] = set()
        for pid in people:
            keys.add(f"Patient/{pid}")
            owners = seen.sources(pid)
            keys |= {  # an identifier counts as the person's only where its sender asserts it
                f"{s}|{v}"
                for s, v in _identifiers(seen.patients.get(pid)).values()
                if any(asserts(partner(o), s, self._policy) for o in owners)
            }
            sources |= owners
            related |= seen.rows.get(pid, PersonRows()).related
        owners = seen.rows[people[0]].sources if people[0] in seen.rows else frozenset()
        return Person(
            tuple(people),
            frozenset(sources),
            frozenset(related),
            tuple(joined),
            frozenset(keys),
            owners,
            truncated,
        )

    def _partners(self, partner_id: str) -> Partner | None:
        """A partner's registration, read again after ``refresh_seconds``."""
        now = time.monotonic()
        kept = self._known.get(partner_id)
        if kept is None or now - kept[0] >= self._refresh:
            kept = (now, self._lookup(partner_id))
            self._known[partner_id] = kept
        return kept[1]

    def asserted(self, partner_id: str, keys: Iterable[str]) -> frozenset[str]:
        """The identifier keys (``system|value``) whose system ``partner_id`` asserts: the
        only ones its data may be judged under (another partner's MRN on it counts for
        nothing)."""
        partner = self._partners(partner_id) if partner_id else None
        return frozenset(k for k in keys if asserts(partner, k.rpartition("|")[0], self._policy))

    def link(self, patient: Mapping[str, Any], partner_id: str, correlation_id: str) -> int:
        """Index a stored Patient's identifiers and link it to every Patient the trust
        model joins it with on one of them; how many links are new (each is audited).

        Raises:
            StorageUnavailableError: storage failed.
        """
        patient_id = str(patient["id"])
        self._index.index_identifiers(patient, partner_id)
        sender = self._partners(partner_id)
        made = 0
        for key, (system, value) in sorted(_identifiers(patient).items()):
            if not asserts(sender, system, self._policy):
                continue  # it cannot link: no need to look (an SSN, another's MRN)
            holders = self._index.holders(system, value)
            if len(holders) > MAX_PEOPLE:  # one identifier on that many records is not a person
                log.warning(
                    "people: an identifier is on too many records to link",
                    extra={"stage": "store", "partner": partner_id, "count": len(holders)},
                )
                holders = holders[:MAX_PEOPLE]
            for holder in holders:
                if holder.patient_id == patient_id or not holder.partner:
                    continue
                if not links(sender, self._partners(holder.partner), system, self._policy):
                    continue
                link = Link(
                    patient_id, holder.patient_id, system, key, (partner_id, holder.partner)
                )
                if self._index.add_link(link, self._clock(), correlation_id):
                    made += 1
                    self._audit_link(link)
        return made

    def _audit_link(self, link: Link) -> None:
        log.info("people: linked", extra={"stage": "store", "partner": link.partners[0]})
        if self._audit is None:
            return
        self._audit.write(
            admin_audit_event(
                AdminAction.PATIENT_LINK,
                link.partners[0],
                f"Patient/{link.patient_id}",
                self._clock(),
                {
                    "other": f"Patient/{link.other_id}",
                    "system": link.system,
                    "partners": " ".join(link.partners),
                },
            )
        )


def person_keys(people: Iterable[Person]) -> frozenset[str]:
    """Every consent key of several persons (a resource may name more than one)."""
    return frozenset(k for p in people for k in p.keys)
