"""The 12 official R4 Consent examples (npm hl7.fhir.r4.examples@4.0.1, CC0), each asked
at least two questions whose answers were worked out by hand from R4's rules.

Several examples' narratives say more than their structure encodes (notThem "withholds"
from a nurse but has no ``provision.type`` and an OPTIN policy). The engine decides on
what is encoded, never on narrative; each case's reasoning says so where it matters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC

import pytest

from shared.consent import (
    Action,
    Actor,
    Code,
    ConsentRequest,
    DataItem,
    Effect,
    Policy,
    PolicyMode,
    decide_consent,
)
from shared.consent.periods import parse_span
from shared.consent.vocabulary import ACT_CODE, ACT_REASON, CONFIDENTIALITY
from tests.conftest import REPO

EXAMPLES = REPO / "node_modules" / "hl7.fhir.r4.examples"
pytestmark = pytest.mark.skipif(
    not (EXAMPLES / "Consent-consent-example-basic.json").is_file(),
    reason=f"FHIR R4 examples not installed at {EXAMPLES} (make setup installs them)",
)
OPT_IN = Policy(mode=PolicyMode.OPT_IN)
OPT_OUT = Policy(mode=PolicyMode.OPT_OUT)
F001 = "Organization/f001"


@dataclass(frozen=True)
class Case:
    example: str
    why: str  # the reasoning, by hand
    expected: Effect
    actor: str | None = F001
    action: Action = Action.ACCESS
    purpose: str = "TREAT"
    at: str = "2016-06-01"
    data: DataItem | None = None
    policy: Policy = OPT_OUT
    role: str | None = None
    default_applied: bool = False


def observation(*labels: str) -> DataItem:
    return DataItem(
        resource_type="Observation",
        reference="Observation/o1",
        security_labels=frozenset(
            Code(CONFIDENTIALITY if c in "ULMNRV" else ACT_CODE, c) for c in labels
        ),
    )


CASES = [
    Case(
        "Emergency",
        "root: actor f001 and purpose ETREAT match; OPTOUT denies, and the "
        "nested deny for f001 agrees",
        Effect.DENY,
        purpose="ETREAT",
    ),
    Case(
        "Emergency",
        "root purpose ETREAT does not cover plain TREAT (ETREAT is-a TREAT, not "
        "the reverse): the consent does not apply; opt-out policy permits treatment",
        Effect.PERMIT,
        purpose="TREAT",
        default_applied=True,
    ),
    Case(
        "Emergency",
        "another organization does not match the root actor; opt-in denies",
        Effect.DENY,
        actor="Organization/other",
        purpose="ETREAT",
        policy=OPT_IN,
        default_applied=True,
    ),
    Case("Out", "root actor f001 matches; OPTOUT denies", Effect.DENY),
    Case(
        "Out",
        "the withholding names f001 only: a practitioner elsewhere falls to the "
        "opt-out policy, which permits treatment",
        Effect.PERMIT,
        actor="Practitioner/f204",
        default_applied=True,
    ),
    Case(
        "basic",
        "inside provision.period 1964..2016-01-01; OPTIN permits",
        Effect.PERMIT,
        at="2015-06-01",
        policy=OPT_IN,
    ),
    Case(
        "basic",
        "a date-only end covers that whole day",
        Effect.PERMIT,
        at="2016-01-01T23:30:00Z",
        policy=OPT_IN,
    ),
    Case(
        "basic",
        "the day after the end: expired; opt-in denies",
        Effect.DENY,
        at="2016-01-02T00:00:00Z",
        policy=OPT_IN,
        default_applied=True,
    ),
    Case(
        "grantor",
        "root actors are f001 OR Patient/example, action access; OPTOUT denies "
        "(the narrative means a grant, but no provision.type says permit)",
        Effect.DENY,
        actor="Patient/example",
    ),
    Case(
        "grantor",
        "disclose is not the root's action (access): does not apply",
        Effect.PERMIT,
        actor="Patient/example",
        action=Action.DISCLOSE,
        default_applied=True,
    ),
    Case("notAuthor", "root actor f001 matches; OPTIN permits", Effect.PERMIT, policy=OPT_IN),
    Case(
        "notAuthor",
        "the root actor's role is CST (custodian); asked as author (AUT) the "
        "actor does not match; opt-in denies",
        Effect.DENY,
        role="AUT",
        policy=OPT_IN,
        default_applied=True,
    ),
    Case("notOrg", "root type deny wins over the OPTIN policy rule for f001's access", Effect.DENY),
    Case(
        "notOrg",
        "disclose is neither access nor correct: does not apply",
        Effect.PERMIT,
        action=Action.DISCLOSE,
        default_applied=True,
    ),
    Case(
        "notOrg",
        "another practitioner is not f001",
        Effect.PERMIT,
        actor="Practitioner/p9",
        default_applied=True,
    ),
    Case(
        "notThem",
        "actor f204 and access match; with no provision.type, OPTIN permits "
        "(the narrative's withholding is not encoded)",
        Effect.PERMIT,
        actor="Practitioner/f204",
        policy=OPT_IN,
    ),
    Case(
        "notThem",
        "use is not access or correct: does not apply; opt-in denies",
        Effect.DENY,
        actor="Practitioner/f204",
        action=Action.USE,
        policy=OPT_IN,
        default_applied=True,
    ),
    Case(
        "notThis",
        "the data is Task/example3 itself ('related' covers it); OPTIN permits",
        Effect.PERMIT,
        policy=OPT_IN,
        data=DataItem(resource_type="Task", reference="Task/example3"),
    ),
    Case(
        "notThis",
        "data unrelated to Task/example3: the root does not match; opt-in denies",
        Effect.DENY,
        policy=OPT_IN,
        data=observation(),
        default_applied=True,
    ),
    Case(
        "notTime",
        "inside 2015-01-01..2015-02-01; OPTIN permits",
        Effect.PERMIT,
        at="2015-01-15",
        policy=OPT_IN,
    ),
    Case(
        "notTime",
        "after the period the consent is expired; opt-in denies",
        Effect.DENY,
        at="2016-06-01",
        policy=OPT_IN,
        default_applied=True,
    ),
    Case(
        "pkb",
        "root: f001, access, label N matches restricted (R) data as a deny covers "
        "its level and above; no nested permit covers R",
        Effect.DENY,
        data=observation("R"),
    ),
    Case(
        "pkb",
        "normal data: root deny matches, and the nested permit for N (the opposite "
        "of its parent) matches deeper",
        Effect.PERMIT,
        data=observation("N"),
    ),
    Case(
        "pkb",
        "psychiatry data: the nested PSY permit names the sensitive label",
        Effect.PERMIT,
        data=observation("PSY"),
    ),
    Case(
        "pkb",
        "substance-use data is sensitive and no provision names SUD",
        Effect.DENY,
        data=observation("SUD"),
    ),
    Case(
        "signature",
        "in the period, root actor Practitioner/13 matches; the nested permit "
        "for the CDA author does not; OPTIN permits",
        Effect.PERMIT,
        actor="Practitioner/13",
        at="2016-01-01",
        policy=OPT_IN,
    ),
    Case(
        "signature",
        "after 2016-10-10 it is expired; opt-in denies",
        Effect.DENY,
        actor="Practitioner/13",
        at="2016-10-11",
        policy=OPT_IN,
        default_applied=True,
    ),
    Case(
        "signature",
        "another practitioner does not match the root",
        Effect.DENY,
        actor="Practitioner/14",
        at="2016-01-01",
        policy=OPT_IN,
        default_applied=True,
    ),
    Case(
        "smartonfhir",
        "17:10 +10:00 is inside the half hour; the nested permit for "
        "MedicationRequest access matches",
        Effect.PERMIT,
        actor=None,
        at="2016-06-23T07:10:00Z",
        policy=OPT_IN,
        data=DataItem(resource_type="MedicationRequest"),
    ),
    Case(
        "smartonfhir",
        "17:40 +10:00 is after the half hour; opt-in denies",
        Effect.DENY,
        actor=None,
        at="2016-06-23T07:40:00Z",
        policy=OPT_IN,
        data=DataItem(resource_type="MedicationRequest"),
        default_applied=True,
    ),
]


def _request(case: Case) -> ConsentRequest:
    return ConsentRequest(
        action=case.action,
        at=parse_span(case.at, UTC)[0],
        purpose=Code(ACT_REASON, case.purpose),
        actor=Actor(frozenset({case.actor}), role=Code(None, case.role) if case.role else None)
        if case.actor
        else None,
        data=case.data,
    )


def test_every_example_has_at_least_two_cases() -> None:
    names = {
        p.name.removeprefix("Consent-consent-example-").removesuffix(".json")
        for p in EXAMPLES.glob("Consent-consent-example-*.json")
    }
    counts = {n: sum(c.example == n for c in CASES) for n in names}
    assert len(names) == 12
    assert all(n >= 2 for n in counts.values()), counts


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c.example}-{c.expected.value}-{i}" for i, c in enumerate(CASES)]
)
def test_decision(case: Case) -> None:
    consent = json.loads((EXAMPLES / f"Consent-consent-example-{case.example}.json").read_text())
    decision = decide_consent([consent], _request(case), case.policy)
    assert decision.decision is case.expected, (case.why, decision.reasons)
    assert decision.default_applied is case.default_applied, (case.why, decision.reasons)
    if not case.default_applied:
        assert decision.consents == (f"Consent/consent-example-{case.example}",)
