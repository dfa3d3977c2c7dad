"""The consent engine, step by step (issue 5's algorithm), on hand-built consents."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.consent import Action, Actor, Code, DataItem, Effect, Policy, PolicyMode, decide_consent
from shared.consent.vocabulary import ACT_CODE, OPT_OUT_REGISTRY

from .builders import CLINIC, LAB, NOW, action, actor, consent, lab_result, label, purpose, request

OPT_IN = Policy(mode=PolicyMode.OPT_IN)
OPT_OUT = Policy(mode=PolicyMode.OPT_OUT)


# --- step 1: which consents apply ---------------------------------------------------------


def test_an_active_consent_in_its_period_applies() -> None:
    c = consent(provision={"period": {"start": "2026-01-01", "end": "2026-12-31"}})
    decision = decide_consent([c], request(), OPT_IN)
    assert decision.decision is Effect.PERMIT
    assert decision.consents == ("Consent/c1",)
    assert not decision.default_applied


def test_an_expired_consent_does_not_apply() -> None:
    c = consent(provision={"period": {"start": "2025-01-01", "end": "2026-06-14"}})
    decision = decide_consent([c], request(), OPT_IN)
    assert decision.decision is Effect.DENY
    assert decision.default_applied
    assert any("expired" in r for r in decision.reasons)


def test_a_date_only_end_covers_that_whole_day() -> None:
    c = consent(provision={"period": {"end": "2026-06-15"}})
    late_that_day = datetime(2026, 6, 15, 23, 59, 59, tzinfo=UTC)
    next_day = datetime(2026, 6, 16, 0, 0, tzinfo=UTC)
    assert decide_consent([c], request(at=late_that_day), OPT_IN).permitted
    assert not decide_consent([c], request(at=next_day), OPT_IN).permitted


def test_a_consent_not_yet_in_force_does_not_apply() -> None:
    c = consent(rule="OPTOUT", provision={"period": {"start": "2026-07-01"}})
    decision = decide_consent([c], request(), OPT_OUT)
    assert decision.decision is Effect.PERMIT and decision.default_applied
    assert any("not yet in force" in r for r in decision.reasons)


def test_inactive_draft_and_rejected_consents_do_not_apply() -> None:
    for status in ("inactive", "draft", "rejected", "entered-in-error", "proposed"):
        c = consent(rule="OPTOUT", status=status)
        decision = decide_consent([c], request(), OPT_OUT)
        assert decision.permitted and decision.default_applied, status
        assert any(f"status is {status}" in r for r in decision.reasons)


def test_a_consent_without_a_privacy_scope_does_not_apply() -> None:
    missing = consent(rule="OPTOUT", scope=None)
    treatment = consent("c2", rule="OPTOUT", scope="treatment")
    decision = decide_consent([missing, treatment], request(), OPT_OUT)
    assert decision.permitted and decision.default_applied
    assert sum("scope is not patient privacy" in r for r in decision.reasons) == 2


def test_scope_may_come_from_category_as_r5_puts_it() -> None:
    scope = {"system": "http://terminology.hl7.org/CodeSystem/consentscope"}
    c = consent(
        rule="OPTOUT", scope=None, category=[{"coding": [{**scope, "code": "patient-privacy"}]}]
    )
    assert decide_consent([c], request(), OPT_OUT).decision is Effect.DENY


def test_research_consents_apply_only_to_research_requests() -> None:
    c = consent(rule="OPTOUT", scope="research")
    assert decide_consent([c], request(why="TREAT"), OPT_OUT).permitted
    assert decide_consent([c], request(why="CLINTRCH"), OPT_OUT).decision is Effect.DENY


def test_the_root_provision_conditions_decide_whether_the_consent_applies() -> None:
    c = consent(rule="OPTOUT", provision={"action": [action("disclose")]})
    assert decide_consent([c], request(act=Action.ACCESS), OPT_OUT).default_applied
    assert decide_consent([c], request(act=Action.DISCLOSE), OPT_OUT).decision is Effect.DENY


# --- step 2: each consent's base answer ------------------------------------------------


def test_root_type_wins_over_policy_rule() -> None:
    c = consent(rule="OPTIN", provision={"type": "deny"})
    assert decide_consent([c], request(), OPT_OUT).decision is Effect.DENY


def test_policy_rule_gives_the_answer_when_the_root_has_no_type() -> None:
    assert decide_consent([consent(rule="OPTIN")], request(), OPT_IN).permitted
    assert not decide_consent([consent(rule="OPTOUT")], request(), OPT_OUT).permitted


def test_a_consent_with_neither_type_nor_rule_is_skipped_with_a_warning() -> None:
    c = consent(rule=None, provision={})
    decision = decide_consent([c], request(), OPT_IN)
    assert decision.default_applied
    assert any("warning" in r and "Consent/c1" in r for r in decision.reasons)


# --- step 3: nested provisions ----------------------------------------------------------


def test_deny_with_no_actor_applies_to_everyone() -> None:
    c = consent(rule="OPTOUT")
    for who in (LAB, CLINIC, None):
        assert decide_consent([c], request(who=who), OPT_OUT).decision is Effect.DENY


def test_actor_specific_deny_applies_to_that_actor_only() -> None:
    c = consent(provision={"type": "permit", "provision": [{"actor": [actor("Organization/lab")]}]})
    assert decide_consent([c], request(who=LAB), OPT_IN).decision is Effect.DENY
    assert decide_consent([c], request(who=CLINIC), OPT_IN).permitted


def test_actor_match_by_identifier_and_role() -> None:
    npi = {
        "reference": {"identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "123"}}
    }
    c = consent(rule="OPTOUT", provision={"actor": [npi]})
    by_npi = Actor(identifiers=frozenset({"http://hl7.org/fhir/sid/us-npi|123"}))
    other = Actor(identifiers=frozenset({"http://hl7.org/fhir/sid/us-npi|999"}))
    assert decide_consent([c], request(who=by_npi), OPT_OUT).decision is Effect.DENY
    assert decide_consent([c], request(who=other), OPT_OUT).permitted
    role = consent("c2", rule="OPTOUT", provision={"actor": [actor("Organization/lab")]})
    as_author = Actor(frozenset({"Organization/lab"}), role=Code(None, "AUT"))
    assert decide_consent([role], request(who=as_author), OPT_OUT).permitted


def test_unresolvable_actor_fails_closed() -> None:
    display_only = {"reference": {"display": "my ex-husband"}}
    c = consent(provision={"type": "permit", "provision": [{"actor": [display_only]}]})
    decision = decide_consent([c], request(who=CLINIC), OPT_IN)
    assert decision.decision is Effect.DENY
    assert any("could not be resolved" in r for r in decision.reasons)
    # A literal reference cannot be compared with a requester known only by identifier.
    by_id = Actor(identifiers=frozenset({"urn:oid:1.2.3|77"}))
    c2 = consent(provision={"type": "permit", "provision": [{"actor": [actor("Practitioner/9")]}]})
    assert decide_consent([c2], request(who=by_id), OPT_IN).decision is Effect.DENY


def test_unresolvable_actor_never_grants_a_permit() -> None:
    display_only = {"reference": {"display": "Dr. Who"}}
    c = consent(provision={"type": "permit", "actor": [display_only]})
    decision = decide_consent([c], request(who=CLINIC), OPT_IN)
    assert decision.decision is Effect.DENY and decision.default_applied


def test_purpose_hierarchy_emergency_treatment_is_treatment() -> None:
    c = consent(rule="OPTOUT", provision={"purpose": [purpose("TREAT")]})
    assert decide_consent([c], request(why="ETREAT"), OPT_OUT).decision is Effect.DENY
    assert decide_consent([c], request(why="BTG"), OPT_OUT).decision is Effect.DENY
    assert decide_consent([c], request(why="HPAYMT"), OPT_OUT).default_applied
    narrow = consent("c2", rule="OPTIN", provision={"purpose": [purpose("ETREAT")]})
    assert decide_consent([narrow], request(why="TREAT"), OPT_IN).default_applied
    assert decide_consent([narrow], request(why="ERTREAT"), OPT_IN).permitted


def test_missing_purpose_matches_a_deny_but_not_a_permit() -> None:
    deny = consent(rule="OPTOUT", provision={"purpose": [purpose("HMARKT")]})
    permit = consent("c2", rule="OPTIN", provision={"purpose": [purpose("HMARKT")]})
    assert decide_consent([deny], request(why=None), OPT_OUT).decision is Effect.DENY
    assert decide_consent([permit], request(why=None), OPT_IN).default_applied


def test_provisions_nested_three_deep_alternate_their_effect() -> None:
    # Opt out of everything; except the clinic; except not for treatment; except the
    # cholesterol results: three levels below the root, each the opposite of its parent.
    cholesterol = {"coding": [{"system": "http://loinc.org", "code": "2093-3"}]}
    c = consent(
        rule="OPTOUT",
        provision={
            "provision": [
                {
                    "actor": [actor("Organization/clinic")],
                    "provision": [
                        {
                            "purpose": [purpose("TREAT")],
                            "provision": [{"code": [cholesterol]}],
                        }
                    ],
                }
            ]
        },
    )
    # level 1 (clinic) permits; level 2 (TREAT) denies; level 3 (cholesterol) permits
    assert decide_consent([c], request(who=CLINIC, why="HPAYMT"), OPT_OUT).permitted
    glucose = request(who=CLINIC, why="ETREAT", data=lab_result(code="2345-7"))
    lipids = request(who=CLINIC, why="ETREAT", data=lab_result(code="2093-3"))
    assert decide_consent([c], glucose, OPT_OUT).decision is Effect.DENY
    decision = decide_consent([c], lipids, OPT_OUT)
    assert decision.permitted
    assert any("provision.provision[0].provision[0].provision[0]" in r for r in decision.reasons)
    assert decide_consent([c], request(who=LAB), OPT_OUT).decision is Effect.DENY


def test_matching_is_and_across_elements_and_or_within_one() -> None:
    c = consent(
        rule="OPTIN",
        provision={
            "provision": [
                {
                    "actor": [actor("Organization/lab"), actor("Organization/x")],
                    "action": [action("disclose")],
                }
            ]
        },
    )
    assert not decide_consent([c], request(who=LAB, act=Action.DISCLOSE), OPT_IN).permitted
    assert decide_consent([c], request(who=LAB, act=Action.ACCESS), OPT_IN).permitted
    other = Actor(frozenset({"Organization/x"}))
    assert not decide_consent([c], request(who=other, act=Action.DISCLOSE), OPT_IN).permitted


def test_conflicting_siblings_resolve_to_deny() -> None:
    c = consent(
        rule="OPTIN",
        provision={
            "provision": [
                {"type": "deny", "actor": [actor("Organization/clinic")]},
                {"type": "permit", "action": [action("access")]},
            ]
        },
    )
    assert decide_consent([c], request(who=CLINIC), OPT_IN).decision is Effect.DENY
    assert decide_consent([c], request(who=LAB), OPT_IN).permitted


def test_a_nested_period_and_data_period_count() -> None:
    c = consent(
        rule="OPTIN",
        provision={
            "provision": [
                {"period": {"start": "2026-06-01", "end": "2026-06-30"}},
            ]
        },
    )
    assert not decide_consent([c], request(at=NOW), OPT_IN).permitted
    assert decide_consent([c], request(at=datetime(2026, 7, 1, tzinfo=UTC)), OPT_IN).permitted
    old = consent(
        "c2", rule="OPTIN", provision={"provision": [{"dataPeriod": {"end": "2019-12-31"}}]}
    )
    from shared.consent.periods import parse_span

    item_2019 = DataItem(resource_type="Observation", span=parse_span("2019-05-01", UTC))
    item_2024 = DataItem(resource_type="Observation", span=parse_span("2024-05-01", UTC))
    assert not decide_consent([old], request(data=item_2019), OPT_IN).permitted
    assert decide_consent([old], request(data=item_2024), OPT_IN).permitted


def test_confidentiality_uses_the_high_water_mark() -> None:
    # Permit normal data: covers L, M, N but not R or V.
    c = consent(rule=None, provision={"type": "permit", "securityLabel": [label("N")]})
    for level, allowed in (("L", True), ("M", True), ("N", True), ("R", False), ("V", False)):
        got = decide_consent([c], request(data=lab_result(level)), OPT_IN).permitted
        assert got is allowed, level
    # Data with several labels counts at its highest.
    assert not decide_consent([c], request(data=lab_result("L", "R")), OPT_IN).permitted
    # Deny restricted: covers R and V, not N.
    d = consent("c2", rule="OPTIN", provision={"provision": [{"securityLabel": [label("R")]}]})
    assert decide_consent([d], request(data=lab_result("N")), OPT_IN).permitted
    assert not decide_consent([d], request(data=lab_result("V")), OPT_IN).permitted


def test_code_and_class_conditions() -> None:
    c = consent(
        rule="OPTIN",
        provision={
            "provision": [
                {
                    "class": [
                        {"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}
                    ],
                    "code": [{"coding": [{"system": "http://loinc.org", "code": "5195-3"}]}],
                }
            ]
        },
    )
    assert not decide_consent([c], request(data=lab_result(code="5195-3")), OPT_IN).permitted
    assert decide_consent([c], request(data=lab_result(code="2093-3")), OPT_IN).permitted


def test_a_data_dependent_deny_becomes_an_obligation_for_a_general_request() -> None:
    c = consent(rule="OPTIN", provision={"provision": [{"securityLabel": [label("PSY")]}]})
    decision = decide_consent([c], request(), OPT_IN)
    assert decision.permitted
    codes = [set(o.codes) for o in decision.obligations if o.consent == "Consent/c1"]
    assert codes == [{Code(ACT_CODE, "PSY")}]
    assert decision.to_json()["obligations"][0]["id"]["code"] == "REDACT"


# --- step 4: several consents -----------------------------------------------------------


def test_the_most_recent_consent_wins() -> None:
    old_out = consent("old", rule="OPTOUT", date="2025-01-01")
    new_in = consent("new", rule="OPTIN", date="2026-03-01")
    assert decide_consent([old_out, new_in], request(), OPT_IN).consents == ("Consent/new",)
    assert decide_consent([new_in, old_out], request(), OPT_IN).permitted
    newer_out = consent("newer", rule="OPTOUT", date="2026-05-01T10:00:00Z")
    decision = decide_consent([old_out, new_in, newer_out], request(), OPT_IN)
    assert decision.decision is Effect.DENY and decision.consents == ("Consent/newer",)


def test_two_consents_with_equal_dates_resolve_to_deny() -> None:
    a = consent("a", rule="OPTIN", date="2026-03-01")
    b = consent("b", rule="OPTOUT", date="2026-03-01")
    decision = decide_consent([a, b], request(), OPT_OUT)
    assert decision.decision is Effect.DENY
    assert decision.consents == ("Consent/b",)
    assert any("deny wins" in r for r in decision.reasons)


def test_a_consent_without_a_date_cannot_be_ordered_so_deny_wins() -> None:
    dated_permit = consent("a", rule="OPTIN", date="2026-03-01")
    undated_deny = consent("b", rule="OPTOUT", date=None)
    assert decide_consent([dated_permit, undated_deny], request(), OPT_OUT).decision is Effect.DENY


def test_an_opt_out_registry_entry_always_wins() -> None:
    registry = consent(
        "reg",
        rule="OPTOUT",
        date="2020-01-01",
        category=[{"coding": [{"system": OPT_OUT_REGISTRY[0], "code": OPT_OUT_REGISTRY[1]}]}],
    )
    newer_permit = consent("new", rule="OPTIN", date="2026-05-01")
    decision = decide_consent([newer_permit, registry], request(), OPT_OUT)
    assert decision.decision is Effect.DENY
    assert decision.consents == ("Consent/reg",)


def test_research_requests_weigh_both_scopes_and_any_deny_wins() -> None:
    privacy = consent("p", rule="OPTIN", date="2026-05-01")
    research = consent("r", rule="OPTOUT", scope="research", date="2020-01-01")
    assert (
        decide_consent([privacy, research], request(why="HRESCH"), OPT_IN).decision is Effect.DENY
    )
    assert decide_consent([privacy, research], request(why="TREAT"), OPT_IN).permitted


# --- step 5: the default policy -----------------------------------------------------------


def test_opt_out_policy_permits_treatment_and_opt_in_denies() -> None:
    out = decide_consent([], request(why="TREAT"), OPT_OUT)
    assert out.permitted and out.default_applied and out.consents == ()
    assert decide_consent([], request(why="ETREAT"), OPT_OUT).permitted
    assert not decide_consent([], request(why="HMARKT"), OPT_OUT).permitted
    assert not decide_consent([], request(why=None), OPT_OUT).permitted
    inn = decide_consent([], request(why="TREAT"), OPT_IN)
    assert not inn.permitted and inn.default_applied


def test_opt_out_with_exceptions() -> None:
    c = consent(
        rule="OPTOUT",
        provision={
            "provision": [{"actor": [actor("Organization/clinic")], "purpose": [purpose("TREAT")]}]
        },
    )
    assert decide_consent([c], request(who=CLINIC, why="ETREAT"), OPT_OUT).permitted
    assert not decide_consent([c], request(who=CLINIC, why="HPAYMT"), OPT_OUT).permitted
    assert not decide_consent([c], request(who=LAB, why="TREAT"), OPT_OUT).permitted


def test_opt_in_with_a_data_specific_permit() -> None:
    c = consent(
        rule=None,
        provision={
            "type": "deny",
            "provision": [
                {
                    "class": [
                        {"system": "http://hl7.org/fhir/resource-types", "code": "Immunization"}
                    ]
                }
            ],
        },
    )
    shot = DataItem(resource_type="Immunization", reference="Immunization/1")
    assert decide_consent([c], request(data=shot), OPT_IN).permitted
    assert not decide_consent([c], request(data=lab_result()), OPT_IN).permitted


def test_sensitive_label_without_a_permit_is_denied() -> None:
    sud = request(data=lab_result("SUD"))
    by_default = decide_consent([], sud, OPT_OUT)
    assert not by_default.permitted and by_default.default_applied
    assert any("SUD" in r for r in by_default.reasons)
    general_permit = consent(rule="OPTIN")
    assert not decide_consent([general_permit], sud, OPT_OUT).permitted
    explicit = consent(
        "c2", rule=None, provision={"type": "permit", "securityLabel": [label("SUD")]}
    )
    assert decide_consent([explicit], sud, OPT_OUT).permitted


def test_general_requests_carry_an_obligation_to_redact_sensitive_data() -> None:
    decision = decide_consent([], request(), OPT_OUT)
    (obligation,) = decision.obligations
    assert {c.code for c in obligation.codes} >= {"SUD", "PSY", "HIV", "ETH"}


def test_reasons_and_repr_hold_no_identifier_values() -> None:
    who = Actor(identifiers=frozenset({"urn:oid:2.16.840.1.113883.4.1|123-45-6789"}))
    npi = {"reference": {"identifier": {"system": "urn:oid:1", "value": "987-65-4321"}}}
    c = consent(rule="OPTOUT", provision={"actor": [npi]})
    decision = decide_consent([c], request(who=who), OPT_OUT)
    text = repr(decision) + repr(who) + repr(request(who=who))
    assert "123-45-6789" not in text and "987-65-4321" not in text


def test_a_reference_with_both_forms_is_compared_by_identifier_too() -> None:
    both = {
        "reference": {
            "reference": "Organization/org1",
            "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
        }
    }
    c = consent(rule="OPTOUT", provision={"actor": [both]})
    npi = Actor(identifiers=frozenset({"http://hl7.org/fhir/sid/us-npi|1234567893"}))
    other = Actor(identifiers=frozenset({"http://hl7.org/fhir/sid/us-npi|1111111111"}))
    assert decide_consent([c], request(who=npi), OPT_OUT).decision is Effect.DENY
    decision = decide_consent([c], request(who=other), OPT_OUT)
    assert decision.permitted and decision.default_applied  # definitively someone else
