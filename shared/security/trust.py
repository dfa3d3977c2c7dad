"""The trust model's rules: who may link records, speak for a patient, and read a person.

Pure functions over partners and facts the caller looked up, so every path (the consent
stage, the store, reads, exports, notifications) decides the same way and each rule has
its own unit tests. ``docs/security.md`` ("Trust model") says the why.

- Records are per source: ids are scoped by the sending partner (``normalize/ids.py``);
  the same person across partners is a link between their Patients.
- Identifier authority: a partner *asserts* an identifier when its system is one of the
  deployment's linking systems (a state MPI id, say), one it is registered as the
  assigning authority for, or one of its own local systems. Two Patients link on an
  identifier both of their partners assert, within one partner too: an SSN, a
  subscriber id or a placeholder shared by many patients never makes them one person.
- Consent authority: a Consent counts when its sender is a source of the patient (has
  sent the patient's data), or names the patient by an identifier whose system it is a
  registered consent source for; an opt-out registry entry only from a registry.
- Read scope: a reader sees the persons it has a relationship with (it is a source of
  one of their linked Patients, or an operator registered the person to it); population
  readers and operators see everyone; break-the-glass reaches beyond relationships only
  for partners granted it and only with an emergency purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.normalize.ids import is_local_system
from shared.platform.envelope import PATIENTS_PER_RESOURCE

from .models import Partner, Role

__all__ = [
    "EMERGENCY_PURPOSES",
    "Access",
    "ConsentStanding",
    "TrustPolicy",
    "asserts",
    "bounded_source_time",
    "consent_standing",
    "links",
    "read_access",
]

EMERGENCY_PURPOSES = frozenset({"ETREAT", "BTG", "ERTREAT"})  # v3 ActReason break-the-glass


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """The deployment's side of the trust model (settings)."""

    link_systems: frozenset[str] = frozenset()  # identifier systems every partner may link on
    source_time_skew: timedelta = timedelta(minutes=5)  # how far a source's clock may run ahead
    max_patients: int = PATIENTS_PER_RESOURCE  # at most what a change message carries


def asserts(partner: Partner | None, system: str | None, policy: TrustPolicy) -> bool:
    """Whether ``partner``'s claim that a patient has an identifier of ``system`` links
    records across partners: a linking system, one it is the authority for, or its own."""
    if not system or partner is None:
        return False
    return (
        system in policy.link_systems
        or system in partner.authorities
        or is_local_system(system, partner.id)
    )


def links(
    first: Partner | None,
    second: Partner | None,
    system: str | None,
    policy: TrustPolicy,
) -> bool:
    """Whether two Patients (of ``first`` and ``second``) that both carry an identifier of
    ``system`` are one person: only when both partners assert it (a claim on another
    partner's MRN links nothing; nor does an SSN two of a partner's patients share)."""
    if first is None or second is None or not system:
        return False
    return asserts(first, system, policy) and asserts(second, system, policy)


class ConsentStanding(StrEnum):
    """Why a Consent counts, or why it does not."""

    SOURCE = "source"  # the sender has sent (or is sending) this patient's data
    CONSENT_SOURCE = "consent-source"  # registered to speak for the identifier's system
    NONE = "none"  # neither: kept in quarantine, no effect
    NOT_REGISTRY = "not-registry"  # an opt-out registry entry from a partner that is not one


def consent_standing(
    sender: Partner | None,
    *,
    is_source: bool,
    identifier_systems: Iterable[str],
    registry_entry: bool,
) -> ConsentStanding:
    """Whether a Consent ``sender`` sent takes effect.

    Args:
        sender: the sending partner.
        is_source: the sender holds the named Patient (it sent the patient's data), or
            sends it in the same Bundle.
        identifier_systems: systems of the identifiers the Consent names its patient by.
        registry_entry: the Consent carries the opt-out-registry category.
    """
    if sender is None:
        return ConsentStanding.NONE
    if registry_entry and Role.REGISTRY not in sender.roles:
        return ConsentStanding.NOT_REGISTRY
    if is_source:
        return ConsentStanding.SOURCE
    if speaks_for(sender, identifier_systems):
        return ConsentStanding.CONSENT_SOURCE
    return ConsentStanding.NONE


def speaks_for(sender: Partner, identifier_systems: Iterable[str]) -> bool:
    """Whether ``sender`` may record consents for patients known by one of these systems:
    a consent source or registry registered for the system, or the sender's own system."""
    registered = bool(sender.roles & {Role.CONSENT_SOURCE, Role.REGISTRY})
    return any(
        is_local_system(s, sender.id) or (registered and s in sender.consent_systems)
        for s in identifier_systems
    )


class Access(StrEnum):
    """How a reader may see a person's data (before consent is asked)."""

    RELATIONSHIP = "relationship"  # a source of the person, or registered to them
    POPULATION = "population"  # population role or operator
    BREAK_GLASS = "break-the-glass"  # emergency access beyond relationships
    NONE = "none"


def read_access(
    reader: Partner | None, purpose: str | None, sources: Iterable[str], related: Iterable[str]
) -> Access:
    """How ``reader`` may see a person whose linked Patients ``sources`` sent and who is
    registered to ``related`` partners."""
    if reader is None:
        return Access.NONE
    if reader.id in set(sources) or reader.id in set(related):
        return Access.RELATIONSHIP
    if reader.roles & {Role.POPULATION, Role.ADMIN}:
        return Access.POPULATION
    if Role.BREAK_GLASS in reader.roles and purpose in EMERGENCY_PURPOSES:
        return Access.BREAK_GLASS
    return Access.NONE


def bounded_source_time(said: datetime, received: datetime, policy: TrustPolicy) -> datetime:
    """A source's time for ordering versions: what it said, but never later than when we
    received it (plus the allowed skew), so a far-future time cannot pin a version."""
    limit = received + policy.source_time_skew
    return received if said > limit else said
