"""The trust model's rules, pure: identifier authority for links, consent authority, the
read scope, and source time clamping (``shared/security/trust.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.security.models import Partner, Role
from shared.security.trust import (
    Access,
    ConsentStanding,
    TrustPolicy,
    asserts,
    bounded_source_time,
    consent_standing,
    links,
    read_access,
)

A_MRN = "urn:oid:2.16.840.1.113883.3.999"  # hospital A's MRN authority
STATE = "urn:oid:2.16.840.1.113883.4.1.77"  # a state MPI id, a deployment linking system
POLICY = TrustPolicy(link_systems=frozenset({STATE}))


def partner(ident: str, *roles: Role, **fields: frozenset[str]) -> Partner:
    return Partner(id=ident, name=ident, roles=frozenset(roles), **fields)


HOSP_A = partner("hosp-a", Role.INGEST, authorities=frozenset({A_MRN}))
CLINIC_A2 = partner("clinic-a2", Role.INGEST, authorities=frozenset({A_MRN}))  # same MRN space
EVIL_B = partner("evil-b", Role.INGEST, Role.READ)


def test_a_partner_asserts_linking_systems_its_own_authorities_and_its_local_systems() -> None:
    assert asserts(EVIL_B, STATE, POLICY)
    assert asserts(HOSP_A, A_MRN, POLICY)
    assert not asserts(EVIL_B, A_MRN, POLICY)  # a claim on another partner's MRN space
    assert asserts(EVIL_B, "urn:fhir-intake:partner:evil-b:cs:MR", POLICY)
    assert not asserts(EVIL_B, "urn:fhir-intake:partner:hosp-a:cs:MR", POLICY)
    assert not asserts(EVIL_B, "http://hl7.org/fhir/sid/us-ssn", POLICY)  # unless listed
    assert not asserts(None, STATE, POLICY) and not asserts(HOSP_A, None, POLICY)


@pytest.mark.parametrize(
    ("first", "second", "system", "linked"),
    [
        (HOSP_A, EVIL_B, A_MRN, False),  # HIGH-3: B claims A's MRN on its own Patient
        (EVIL_B, HOSP_A, A_MRN, False),  # either way round
        (HOSP_A, CLINIC_A2, A_MRN, True),  # both assign that MRN space
        (HOSP_A, EVIL_B, STATE, True),  # the deployment trusts the state id from anyone
        (HOSP_A, HOSP_A, A_MRN, True),  # a partner's own Patients, on its own MRN space
        (EVIL_B, EVIL_B, A_MRN, False),  # ...but not on an identifier it does not assert
        (HOSP_A, HOSP_A, "http://hl7.org/fhir/sid/us-ssn", False),  # a shared SSN: never
        (HOSP_A, EVIL_B, "http://hl7.org/fhir/sid/us-ssn", False),
        (HOSP_A, None, STATE, False),
    ],
)
def test_links_across_partners_only_on_identifiers_both_assert(
    first: Partner, second: Partner | None, system: str, linked: bool
) -> None:
    assert links(first, second, system, POLICY) is linked


def test_without_linking_systems_nothing_links_on_a_state_id() -> None:
    assert not links(HOSP_A, EVIL_B, STATE, TrustPolicy())


@pytest.mark.parametrize(
    ("sender", "is_source", "systems", "registry", "standing"),
    [
        # CRITICAL-1: a partner that never sent the patient, naming A's MRN
        (EVIL_B, False, {A_MRN}, False, ConsentStanding.NONE),
        (EVIL_B, False, {A_MRN}, True, ConsentStanding.NOT_REGISTRY),
        (EVIL_B, True, set(), False, ConsentStanding.SOURCE),  # its own patient
        (EVIL_B, True, set(), True, ConsentStanding.NOT_REGISTRY),
        (
            partner("state", Role.CONSENT_SOURCE, consent_systems=frozenset({STATE})),
            False,
            {STATE},
            False,
            ConsentStanding.CONSENT_SOURCE,
        ),
        (
            partner("state", Role.CONSENT_SOURCE, consent_systems=frozenset({STATE})),
            False,
            {A_MRN},
            False,
            ConsentStanding.NONE,  # not the system it was registered for
        ),
        (
            partner("reg", Role.REGISTRY, consent_systems=frozenset({STATE})),
            False,
            {STATE},
            True,
            ConsentStanding.CONSENT_SOURCE,
        ),
        (
            partner("reg", consent_systems=frozenset({STATE})),
            False,
            {STATE},
            False,
            ConsentStanding.NONE,  # systems without the role count for nothing
        ),
        (
            EVIL_B,
            False,
            {"urn:fhir-intake:partner:evil-b:cs:MR"},
            False,
            ConsentStanding.CONSENT_SOURCE,
        ),
        (None, True, set(), False, ConsentStanding.NONE),
    ],
)
def test_consent_authority(
    sender: Partner | None,
    is_source: bool,
    systems: set[str],
    registry: bool,
    standing: ConsentStanding,
) -> None:
    found = consent_standing(
        sender, is_source=is_source, identifier_systems=systems, registry_entry=registry
    )
    assert found is standing


def test_the_read_scope() -> None:
    reader = partner("reader-c", Role.READ)
    population = partner("moh", Role.POPULATION)
    operator = partner("ops", Role.ADMIN)
    er = partner("er", Role.READ, Role.BREAK_GLASS)
    assert read_access(reader, "TREAT", {"hosp-a"}, set()) is Access.NONE  # HIGH-2
    assert read_access(reader, "TREAT", {"hosp-a", "reader-c"}, set()) is Access.RELATIONSHIP
    assert read_access(reader, "TREAT", {"hosp-a"}, {"reader-c"}) is Access.RELATIONSHIP
    assert read_access(population, "TREAT", {"hosp-a"}, set()) is Access.POPULATION
    assert read_access(operator, "HOPERAT", set(), set()) is Access.POPULATION
    assert read_access(er, "TREAT", {"hosp-a"}, set()) is Access.NONE
    assert read_access(er, "ETREAT", {"hosp-a"}, set()) is Access.BREAK_GLASS
    assert read_access(er, "BTG", {"hosp-a"}, set()) is Access.BREAK_GLASS
    assert read_access(reader, "ETREAT", {"hosp-a"}, set()) is Access.NONE  # not granted
    assert read_access(None, "TREAT", {"x"}, {"x"}) is Access.NONE


def test_a_source_time_after_receipt_is_the_receipt_time() -> None:
    received = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    policy = TrustPolicy(source_time_skew=timedelta(minutes=5))
    far = datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)  # CRITICAL-2's MSH-7
    assert bounded_source_time(far, received, policy) == received
    ahead = received + timedelta(minutes=4)  # a clock a little fast: kept
    assert bounded_source_time(ahead, received, policy) == ahead
    just = received + timedelta(minutes=5, seconds=1)
    assert bounded_source_time(just, received, policy) == received
    earlier = received - timedelta(days=3)  # a late arrival keeps its own time
    assert bounded_source_time(earlier, received, policy) == earlier
