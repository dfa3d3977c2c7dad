"""The consent decision: every consent of the patient, then the deployment's policy.

1. Each consent is evaluated on its own (``provisions``): inactive, out-of-period,
   out-of-scope consents and those whose root provision does not match do not apply.
2. An applicable opt-out registry entry that denies always wins.
3. Within a scope the most recent consent (``dateTime``) decides; when the most recent
   dates are equal, or a consent has no date to compare, deny wins.
4. A research request also weighs research-scope consents; any scope that denies wins.
5. No consent applies: the policy decides (opt-in denies; opt-out permits its purposes).
6. Data carrying a sensitive label (42 CFR Part 2 and similar) is permitted only by a
   provision that names that label; a question about no data in particular is permitted
   with an obligation to redact sensitive data not explicitly permitted.
Pure: no I/O, and the clock is the request's ``at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .models import Code, ConsentDecision, ConsentRequest, Effect, Obligation, Policy, PolicyMode
from .provisions import ConsentEvaluation, evaluate_consent
from .vocabulary import ACT_CODE, subsumes

__all__ = ["decide_consent"]


def _winners(evaluations: list[ConsentEvaluation]) -> list[ConsentEvaluation]:
    """The consents that decide within one scope: the most recent, plus any undated."""
    dates = [e.date for e in evaluations if e.date is not None]
    latest = max(dates, default=None)
    return [e for e in evaluations if e.date is None or e.date == latest]


def _sensitive(request: ConsentRequest, policy: Policy) -> set[str]:
    """Sensitive labels the data carries."""
    if request.data is None:
        return set()
    return {c.code for c in request.data.security_labels if c.code in policy.sensitive_labels}


def _redact_sensitive(policy: Policy, explicit: frozenset[str]) -> tuple[Obligation, ...]:
    remaining = sorted(policy.sensitive_labels - explicit)
    if not remaining:
        return ()
    return (Obligation(tuple(Code(ACT_CODE, c) for c in remaining), "policy:sensitive-data"),)


def _by_policy(request: ConsentRequest, policy: Policy, reasons: list[str]) -> ConsentDecision:
    sensitive = _sensitive(request, policy)
    purpose = request.purpose.code if request.purpose else None
    if sensitive:
        reasons.append(
            f"no consent permits it, and data labelled {', '.join(sorted(sensitive))} "
            "needs an explicit permit"
        )
        return ConsentDecision(Effect.DENY, default_applied=True, reasons=tuple(reasons))
    if policy.mode is PolicyMode.OPT_IN:
        reasons.append("no consent applies; the opt-in policy denies without one")
        return ConsentDecision(Effect.DENY, default_applied=True, reasons=tuple(reasons))
    if purpose and any(subsumes(p, purpose) for p in policy.permitted_purposes):
        reasons.append(f"no consent applies; the opt-out policy permits {purpose}")
        return ConsentDecision(
            Effect.PERMIT,
            obligations=_redact_sensitive(policy, frozenset()) if request.data is None else (),
            default_applied=True,
            reasons=tuple(reasons),
        )
    reasons.append(
        f"no consent applies; the opt-out policy permits only "
        f"{', '.join(sorted(policy.permitted_purposes))}, not {purpose or 'an unstated purpose'}"
    )
    return ConsentDecision(Effect.DENY, default_applied=True, reasons=tuple(reasons))


def decide_consent(
    consents: Iterable[Mapping[str, Any]], request: ConsentRequest, policy: Policy
) -> ConsentDecision:
    """Decide one request against the patient's consents.

    Args:
        consents: the patient's Consent resources (JSON objects), in any order.
        request: what is asked, including the instant to decide at.
        policy: the deployment's default policy.

    Returns:
        The decision with the consents that decided it and the reasons.
    """
    evaluations = [evaluate_consent(c, request, policy) for c in consents]
    reasons = [note for e in evaluations for note in e.notes]
    applicable = [e for e in evaluations if e.effect is not None]
    registry = [e for e in applicable if e.registry and e.effect is Effect.DENY]
    if registry:
        reasons.append("an opt-out registry entry applies, and it always wins")
        return ConsentDecision(
            Effect.DENY, consents=tuple(e.ref for e in registry), reasons=tuple(reasons)
        )
    if not applicable:
        return _by_policy(request, policy, reasons)
    deciding: list[ConsentEvaluation] = []
    for scope in sorted({e.scope for e in applicable if e.scope}):
        winners = _winners([e for e in applicable if e.scope == scope])
        if len(winners) > 1 and len({w.effect for w in winners}) > 1:
            reasons.append(f"{scope}: consents of equal or unknown date disagree; deny wins")
        deciding += winners
    denies = [e for e in deciding if e.effect is Effect.DENY]
    if denies:
        return ConsentDecision(
            Effect.DENY, consents=tuple(e.ref for e in denies), reasons=tuple(reasons)
        )
    explicit = frozenset().union(*(e.explicit_labels for e in deciding))
    missing = _sensitive(request, policy) - explicit
    refs = tuple(e.ref for e in deciding)
    if missing:
        reasons.append(
            f"data labelled {', '.join(sorted(missing))} needs a permit that names the label"
        )
        return ConsentDecision(Effect.DENY, consents=refs, reasons=tuple(reasons))
    obligations = tuple(o for e in deciding for o in e.obligations)
    if request.data is None:
        obligations += _redact_sensitive(policy, explicit)
    return ConsentDecision(
        Effect.PERMIT, obligations=obligations, consents=refs, reasons=tuple(reasons)
    )
