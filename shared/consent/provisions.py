"""One Consent against one request: does it apply, and what do its provisions say?

R4 semantics (Consent.provision): the root provision holds the conditions under which
the consent applies; its answer is its own ``type`` where present, else the base policy
(``policyRule`` OPTIN permits, OPTOUT denies). Nested provisions are exceptions, to any
depth: a nested provision's effect is its own ``type``, or the opposite of its parent's.
Within a provision every element must match (AND) and any value of one element may
match (OR); an element left out matches anything. The deepest matching provision
decides; matching siblings that disagree resolve to deny.

What cannot be known (an actor reference we cannot resolve, a purpose or a date the
request lacks) fails closed: it counts as a match for a provision that denies and as
no match for one that permits, and the evaluation notes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .models import Code, ConsentRequest, Effect, Obligation, Policy
from .periods import parse_span, period_contains, span_within
from .vocabulary import (
    CONFIDENTIALITY,
    CONFIDENTIALITY_ORDER,
    CONSENT_SCOPE,
    OPT_OUT_REGISTRY,
    RESOURCE_TYPES,
    subsumes,
)

__all__ = ["ConsentEvaluation", "evaluate_consent"]

Tri = bool | None  # True, False, or None: cannot tell
_DATA_ELEMENTS = ("securityLabel", "class", "code", "dataPeriod", "data")
_POLICY_RULES = {"OPTIN": Effect.PERMIT, "OPTINR": Effect.PERMIT}
_POLICY_RULES |= {"OPTOUT": Effect.DENY, "OPTOUTE": Effect.DENY}


@dataclass(frozen=True, slots=True)
class _Match:
    """A matching provision: its effect, where it is, and the labels its path names."""

    effect: Effect
    path: str
    labels: frozenset[str]


@dataclass(slots=True)
class ConsentEvaluation:
    """What one consent said about the request (``effect`` None: it does not apply)."""

    ref: str
    effect: Effect | None = None
    path: str = ""
    explicit_labels: frozenset[str] = frozenset()
    scope: str | None = None
    registry: bool = False
    date: datetime | None = None  # the first instant of Consent.dateTime
    obligations: list[Obligation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _codings(concepts: Iterable[Mapping[str, Any]] | None) -> list[Code]:
    """Codes of CodeableConcepts."""
    found = []
    for concept in concepts or ():
        for coding in concept.get("coding") or ():
            if coding.get("code"):
                found.append(Code(coding.get("system"), str(coding["code"])))
    return found


def _codes(codings: Iterable[Mapping[str, Any]] | None) -> list[Code]:
    """Codes of a list of Codings."""
    return [Code(c.get("system"), str(c["code"])) for c in codings or () if c.get("code")]


def _literal(reference: str) -> str:
    """``Type/id`` of a relative or absolute literal reference, version dropped."""
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:])


class _Evaluator:
    """Walks one consent's provisions for one request."""

    def __init__(self, consent: Mapping[str, Any], request: ConsentRequest, policy: Policy):
        self.consent = consent
        self.request = request
        self.policy = policy
        self.result = ConsentEvaluation(ref=f"Consent/{consent.get('id', '?')}")

    # --- elements -------------------------------------------------------------------

    def _period(self, period: Mapping[str, Any], what: str) -> Tri:
        try:
            return period_contains(period, self.request.at, self.policy.zone)
        except ValueError:
            self.result.notes.append(f"{self.result.ref}: {what} is not a valid Period")
            return None

    def _contained_identifiers(self, local_id: str) -> set[str]:
        for resource in self.consent.get("contained") or ():
            if resource.get("id") == local_id:
                return {
                    f"{i.get('system', '')}|{i.get('value', '')}"
                    for i in resource.get("identifier") or ()
                    if i.get("value")
                }
        return set()

    def _one_actor(self, entry: Mapping[str, Any]) -> Tri:
        actor = self.request.actor
        if actor is None:
            return None
        if actor.role is not None:
            roles = _codings([entry.get("role") or {}])
            if roles and not any(r.matches(actor.role) for r in roles):
                return False
        ref = entry.get("reference") or {}
        literal, identifier = ref.get("reference"), ref.get("identifier")
        wanted: set[str] = set()
        if identifier and identifier.get("value"):
            wanted.add(f"{identifier.get('system', '')}|{identifier['value']}")
        checks: list[Tri] = []
        if literal and literal.startswith("#"):
            wanted |= self._contained_identifiers(literal[1:])
        elif literal:
            # A literal reference is compared with the requester's literal references.
            found = _literal(literal) in actor.references
            checks.append(True if found else (False if actor.references else None))
        if wanted:
            found = bool(wanted & actor.identifiers)
            checks.append(True if found else (False if actor.identifiers else None))
        if True in checks:
            return True
        if False in checks:
            return False
        return None  # display only, a contained actor without identifiers, or no common ground

    def _actors(self, entries: Sequence[Mapping[str, Any]]) -> Tri:
        results = [self._one_actor(e) for e in entries]
        if any(results):
            return True
        if None in results:
            self.result.notes.append(
                f"{self.result.ref}: an actor could not be resolved against the requester"
            )
            return None
        return False

    def _action(self, concepts: Sequence[Mapping[str, Any]]) -> Tri:
        wanted = self.request.action.value
        return any(c.code == wanted for c in _codings(concepts))

    def _purpose(self, codings: Sequence[Mapping[str, Any]]) -> Tri:
        if self.request.purpose is None:
            return None
        asked = self.request.purpose
        return any(
            subsumes(c.code, asked.code) and Code(c.system, asked.code).matches(asked)
            for c in _codes(codings)
        )

    def _labels(self, codings: Sequence[Mapping[str, Any]], effect: Effect) -> Tri:
        data = self.request.data
        assert data is not None
        levels = [
            CONFIDENTIALITY_ORDER[c.code]
            for c in data.security_labels
            if c.system in (None, CONFIDENTIALITY) and c.code in CONFIDENTIALITY_ORDER
        ]
        level = max(levels, default=CONFIDENTIALITY_ORDER["N"])
        for label in _codes(codings):
            if label.system == CONFIDENTIALITY and label.code in CONFIDENTIALITY_ORDER:
                # High-water mark: a permit for a level covers data up to it; a deny for
                # a level covers data at it and above.
                limit = CONFIDENTIALITY_ORDER[label.code]
                if (level <= limit) if effect is Effect.PERMIT else (level >= limit):
                    return True
            elif any(label.matches(have) for have in data.security_labels):
                return True
        return False

    def _classes(self, codings: Sequence[Mapping[str, Any]]) -> Tri:
        kind = self.request.data.resource_type if self.request.data else None
        if kind is None:
            return None
        return any(c.code == kind and c.system in (None, RESOURCE_TYPES) for c in _codes(codings))

    def _code(self, concepts: Sequence[Mapping[str, Any]]) -> Tri:
        have = self.request.data.codes if self.request.data else frozenset()
        return any(c.matches(h) for c in _codings(concepts) for h in have)

    def _data_period(self, period: Mapping[str, Any]) -> Tri:
        span = self.request.data.span if self.request.data else None
        if span is None:
            return None
        try:
            return span_within(span, period, self.policy.zone)
        except ValueError:
            return None

    def _data(self, entries: Sequence[Mapping[str, Any]]) -> Tri:
        data = self.request.data
        assert data is not None
        unknown = False
        for entry in entries:
            target = _literal((entry.get("reference") or {}).get("reference") or "")
            meaning = entry.get("meaning")
            if meaning == "instance":
                if data.reference is None:
                    unknown = True
                elif data.reference == target:
                    return True
            elif (
                (meaning == "related" and target in data.references | {data.reference})
                or (meaning == "dependents" and target in data.references)
                or (meaning == "authoredby" and target in data.authors)
            ):
                return True
        return None if unknown else False

    # --- provisions -----------------------------------------------------------------

    def _conditions(self, provision: Mapping[str, Any], effect: Effect, path: str) -> bool:
        """Whether a provision's conditions hold, failing closed on what is unknown."""
        checks: list[Tri] = []
        if provision.get("period"):
            checks.append(self._period(provision["period"], f"{path}.period"))
        if provision.get("actor"):
            checks.append(self._actors(provision["actor"]))
        if provision.get("action"):
            checks.append(self._action(provision["action"]))
        if provision.get("purpose"):
            checks.append(self._purpose(provision["purpose"]))
        if False in checks:
            return False
        if any(provision.get(name) for name in _DATA_ELEMENTS):
            if self.request.data is None:
                self._obligation(provision, effect)
                return False
            if provision.get("securityLabel"):
                checks.append(self._labels(provision["securityLabel"], effect))
            if provision.get("class"):
                checks.append(self._classes(provision["class"]))
            if provision.get("code"):
                checks.append(self._code(provision["code"]))
            if provision.get("dataPeriod"):
                checks.append(self._data_period(provision["dataPeriod"]))
            if provision.get("data"):
                checks.append(self._data(provision["data"]))
        if False in checks:
            return False
        if None in checks:
            verdict = "applied, as it denies" if effect is Effect.DENY else "not applied"
            self.result.notes.append(
                f"{self.result.ref} {path}: not all conditions could be checked; {verdict}"
            )
            return effect is Effect.DENY
        return True

    def _obligation(self, provision: Mapping[str, Any], effect: Effect) -> None:
        """A data-dependent deny, asked about no data in particular: redact its codes."""
        if effect is not Effect.DENY:
            return
        codes = _codes(provision.get("securityLabel"))
        codes += _codings(provision.get("code"))
        codes += [Code(RESOURCE_TYPES, c.code) for c in _codes(provision.get("class"))]
        if codes:
            self.result.obligations.append(Obligation(tuple(codes), self.result.ref))
        elif provision.get("data") or provision.get("dataPeriod"):
            self.result.notes.append(
                f"{self.result.ref}: a deny for specific records or dates cannot be "
                "expressed as codes to redact; ask about each resource"
            )

    def walk(
        self, provision: Mapping[str, Any], effect: Effect, path: str, labels: frozenset[str]
    ) -> _Match | None:
        """The deciding match in this provision's subtree, or None if it does not match."""
        if not self._conditions(provision, effect, path):
            return None
        here = _Match(
            effect, path, labels | {c.code for c in _codes(provision.get("securityLabel"))}
        )
        found = []
        for number, child in enumerate(provision.get("provision") or ()):
            kind = child.get("type")
            child_effect = Effect(kind) if kind in ("permit", "deny") else effect.opposite()
            hit = self.walk(child, child_effect, f"{path}.provision[{number}]", here.labels)
            if hit is not None:
                found.append(hit)
        if not found:
            return here
        return next((m for m in found if m.effect is Effect.DENY), found[0])

    # --- the consent ----------------------------------------------------------------

    def _scope(self) -> str | None:
        codes = _codings([self.consent.get("scope") or {}]) + _codings(self.consent.get("category"))
        wanted = {"patient-privacy"} | ({"research"} if self.request.research else set())
        for code in codes:
            if code.code in wanted and code.system in (None, CONSENT_SCOPE):
                return code.code
        return None

    def _base(self, root: Mapping[str, Any]) -> Effect | None:
        if root.get("type") in ("permit", "deny"):
            return Effect(root["type"])
        for code in _codings([self.consent.get("policyRule") or {}]):
            if code.code in _POLICY_RULES:
                return _POLICY_RULES[code.code]
        return None

    def evaluate(self) -> ConsentEvaluation:
        result = self.result
        status = self.consent.get("status")
        if status != "active":
            result.notes.append(f"{result.ref}: not applied, its status is {status}")
            return result
        result.scope = self._scope()
        if result.scope is None:
            result.notes.append(
                f"{result.ref}: not applied, its scope is not patient privacy"
                + (" or research" if self.request.research else "")
            )
            return result
        root = self.consent.get("provision") or {}
        base = self._base(root)
        if base is None:
            result.notes.append(
                f"{result.ref}: skipped, warning: neither provision.type nor a known "
                "policyRule (OPTIN/OPTOUT) says whether it permits or denies"
            )
            return result
        registry = OPT_OUT_REGISTRY
        result.registry = any(
            c.system == registry[0] and c.code == registry[1]
            for c in _codings(self.consent.get("category"))
        )
        when = self.consent.get("dateTime")
        if when:
            try:
                result.date = parse_span(when, self.policy.zone)[0]
            except ValueError:
                result.notes.append(f"{result.ref}: dateTime is not valid; treated as missing")
        root_period = root.get("period")
        if root_period:
            inside = self._period(root_period, "provision.period")
            if inside is False:
                start = (
                    parse_span(root_period["start"], self.policy.zone)[0]
                    if root_period.get("start")
                    else None
                )
                late = start is not None and self.request.at < start
                result.notes.append(
                    f"{result.ref}: not applied, it is "
                    f"{'not yet in force' if late else 'expired'} at {self.request.at.isoformat()}"
                )
                return result
        match = self.walk(root, base, "provision", frozenset())
        if match is None:
            result.notes.append(f"{result.ref}: not applied, its root provision does not match")
            return result
        result.effect, result.path, result.explicit_labels = match.effect, match.path, match.labels
        where = "its root provision" if match.path == "provision" else match.path
        result.notes.append(f"{result.ref}: {match.effect.value} by {where}")
        return result


def evaluate_consent(
    consent: Mapping[str, Any], request: ConsentRequest, policy: Policy
) -> ConsentEvaluation:
    """What one Consent resource says about a request; ``effect`` None if it does not apply."""
    return _Evaluator(consent, request, policy).evaluate()
