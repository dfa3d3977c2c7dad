"""Properties that must hold for every consent set and request, checked on generated ones.

- Adding a deny provision anywhere never turns a deny into a permit.
- Under an opt-in policy, withdrawing (inactivating) a consent that grants the request
  never widens access. (Withdrawing a newer *revocation* does bring back an older grant
  that is still active: the most recent active consent decides, as issue 5 asks.)
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.consent import Action, Actor, Effect, Policy, PolicyMode, decide_consent

from .builders import CLINIC, LAB, action, actor, consent, lab_result, label, purpose, request

ANYONE = Actor(identifiers=frozenset({"urn:oid:1.2.3|1"}))  # cannot match literal references


def conditions() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "actor": st.lists(
                st.sampled_from(["Organization/lab", "Organization/clinic"]).map(actor),
                min_size=1,
                max_size=2,
            ),
            "action": st.lists(
                st.sampled_from(["access", "collect", "disclose"]).map(action),
                min_size=1,
                max_size=2,
            ),
            "purpose": st.lists(
                st.sampled_from(["TREAT", "ETREAT", "HPAYMT"]).map(purpose), min_size=1, max_size=2
            ),
            "securityLabel": st.lists(
                st.sampled_from(["N", "R", "PSY"]).map(label), min_size=1, max_size=2
            ),
            "period": st.sampled_from(
                [{"start": "2026-01-01"}, {"end": "2026-01-01"}, {"start": "2026-06-15"}]
            ),
        },
    )


def provisions(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    node = st.tuples(conditions(), st.sampled_from([None, "permit", "deny"]))

    def build(parts: tuple[dict[str, Any], str | None], children: list[dict[str, Any]]):
        found, kind = parts
        result = dict(found)
        if kind:
            result["type"] = kind
        if children:
            result["provision"] = children
        return result

    if depth == 0:
        return node.map(lambda parts: build(parts, []))
    return st.builds(build, node, st.lists(provisions(depth - 1), max_size=2))


consents = st.lists(
    st.builds(
        lambda i, rule, date, prov: consent(f"c{i}", rule=rule, date=date, provision=prov),
        st.integers(0, 1000),
        st.sampled_from(["OPTIN", "OPTOUT"]),
        st.sampled_from(["2025-01-01", "2026-01-01", "2026-03-01", None]),
        provisions(2),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda c: c["id"],
)
requests = st.builds(
    lambda act, why, who, data: request(act=act, why=why, who=who, data=data),
    st.sampled_from([Action.ACCESS, Action.COLLECT, Action.DISCLOSE]),
    st.sampled_from(["TREAT", "ETREAT", "HPAYMT", None]),
    st.sampled_from([LAB, CLINIC, ANYONE, None]),
    st.sampled_from([None, lab_result("N"), lab_result("R"), lab_result("PSY")]),
)
policies = st.sampled_from([Policy(mode=PolicyMode.OPT_IN), Policy(mode=PolicyMode.OPT_OUT)])


def _nodes(provision: dict[str, Any]) -> list[dict[str, Any]]:
    found = [provision]
    for child in provision.get("provision") or ():
        found += _nodes(child)
    return found


@settings(max_examples=400, deadline=None)
@given(consents, requests, policies, conditions(), st.data())
def test_adding_a_deny_provision_never_turns_deny_into_permit(
    found: list[dict[str, Any]], asked: Any, policy: Policy, extra: dict[str, Any], data: Any
) -> None:
    before = decide_consent(found, asked, policy)
    changed = copy.deepcopy(found)
    target = data.draw(st.sampled_from(changed))
    target.setdefault("provision", {})
    node = data.draw(st.sampled_from(_nodes(target["provision"])))
    siblings = node.setdefault("provision", [])
    siblings.insert(data.draw(st.integers(0, len(siblings))), {"type": "deny", **extra})
    after = decide_consent(changed, asked, policy)
    if before.decision is Effect.DENY:
        assert after.decision is Effect.DENY, (before.reasons, after.reasons)


@settings(max_examples=400, deadline=None)
@given(consents, requests, st.data())
def test_withdrawing_a_grant_never_widens_access_under_opt_in(
    found: list[dict[str, Any]], asked: Any, data: Any
) -> None:
    policy = Policy(mode=PolicyMode.OPT_IN)
    grants = [c for c in found if decide_consent([c], asked, policy).decision is Effect.PERMIT]
    before = decide_consent(found, asked, policy)
    if not grants:
        return
    withdrawn = data.draw(st.sampled_from(grants))["id"]
    after = decide_consent(
        [{**c, "status": "inactive"} if c["id"] == withdrawn else c for c in found], asked, policy
    )
    if before.decision is Effect.DENY:
        assert after.decision is Effect.DENY, (before.reasons, after.reasons)


def test_withdrawing_the_only_grant_restores_the_opt_in_default() -> None:
    grant = consent(rule="OPTIN")
    policy = Policy(mode=PolicyMode.OPT_IN)
    assert decide_consent([grant], request(), policy).permitted
    withdrawn = decide_consent([{**grant, "status": "inactive"}], request(), policy)
    assert not withdrawn.permitted and withdrawn.default_applied
