"""What a consent decision takes and gives: the request, the deployment policy, the answer.

Frozen and free of I/O, so the engine is a pure function of its inputs. Identifiers are
PHI: ``__repr__`` of anything holding them shows counts, not values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any

from .periods import Span
from .vocabulary import ACT_CODE, DEFAULT_SENSITIVE_LABELS, is_research

__all__ = [
    "Action",
    "Actor",
    "Code",
    "ConsentDecision",
    "ConsentRequest",
    "DataItem",
    "Effect",
    "Obligation",
    "Policy",
    "PolicyMode",
]


class Action(StrEnum):
    """What is done with the data (http://terminology.hl7.org/CodeSystem/consentaction)."""

    COLLECT = "collect"
    ACCESS = "access"
    USE = "use"
    DISCLOSE = "disclose"
    CORRECT = "correct"


class Effect(StrEnum):
    """A provision's type and a decision (http://hl7.org/fhir/consent-provision-type)."""

    PERMIT = "permit"
    DENY = "deny"

    def opposite(self) -> Effect:
        """The effect of an exception to a provision with this effect."""
        return Effect.DENY if self is Effect.PERMIT else Effect.PERMIT


class PolicyMode(StrEnum):
    """What the jurisdiction assumes when a patient has said nothing."""

    OPT_IN = "opt-in"  # nothing is permitted without a consent
    OPT_OUT = "opt-out"  # the default purposes (treatment) are permitted


@dataclass(frozen=True, slots=True)
class Code:
    """A Coding reduced to what matching reads; ``system`` None matches any system."""

    system: str | None
    code: str

    def matches(self, other: Code) -> bool:
        """Same code, and the same system where both name one."""
        return self.code == other.code and (
            self.system is None or other.system is None or self.system == other.system
        )

    def to_fhir(self) -> dict[str, str]:
        """As a FHIR Coding."""
        return {"system": self.system, "code": self.code} if self.system else {"code": self.code}

    @classmethod
    def parse(cls, text: str) -> Code:
        """``system|code`` or a bare code."""
        system, _, code = text.rpartition("|")
        return cls(system or None, code)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: literal references (``Organization/1``), identifiers (``system|value``),
    optionally the role they act in. Several references are alternatives (a practitioner
    and the organization they work for)."""

    references: frozenset[str] = frozenset()
    identifiers: frozenset[str] = frozenset()
    role: Code | None = None

    def __repr__(self) -> str:
        return (
            f"Actor(references={len(self.references)}, identifiers={len(self.identifiers)}, "
            f"role={self.role.code if self.role else None})"
        )


@dataclass(frozen=True, slots=True)
class DataItem:
    """The data asked about, as far as consent rules look at it."""

    resource_type: str | None = None
    reference: str | None = None  # Type/id of the resource itself
    codes: frozenset[Code] = frozenset()  # code, category and similar CodeableConcepts
    security_labels: frozenset[Code] = frozenset()  # meta.security
    span: Span | None = None  # the clinical date (effective, onset, period...)
    references: frozenset[str] = frozenset()  # what the resource refers to
    authors: frozenset[str] = frozenset()  # who wrote it (Provenance, author, performer)

    def __repr__(self) -> str:
        return (
            f"DataItem(type={self.resource_type}, codes={len(self.codes)}, "
            f"labels={sorted(c.code for c in self.security_labels)})"
        )


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """One question: may ``actor`` do ``action`` with ``data`` for ``purpose`` at ``at``?

    ``data`` None asks about the patient's record in general; rules that depend on the
    data then come back as obligations (what to redact) instead of a deny.
    """

    action: Action
    at: datetime
    purpose: Code | None = None
    actor: Actor | None = None
    data: DataItem | None = None

    @property
    def research(self) -> bool:
        """Whether the purpose is research, so research-scope consents apply too."""
        return is_research(self.purpose.code if self.purpose else None)


@dataclass(frozen=True, slots=True)
class Policy:
    """The deployment's answer when no consent applies."""

    mode: PolicyMode = PolicyMode.OPT_OUT
    permitted_purposes: frozenset[str] = frozenset({"TREAT"})  # what opt-out permits
    sensitive_labels: frozenset[str] = DEFAULT_SENSITIVE_LABELS
    zone: tzinfo = UTC  # for dates without a zone in consents and data


@dataclass(frozen=True, slots=True)
class Obligation:
    """Data the caller must leave out: the codes a data-dependent deny names."""

    codes: tuple[Code, ...]
    consent: str

    def to_json(self) -> dict[str, Any]:
        """In the shape consent decision services answer with (CDS Hooks cards)."""
        return {
            "id": {"system": ACT_CODE, "code": "REDACT"},
            "parameters": {"codes": [c.to_fhir() for c in self.codes]},
            "consent": self.consent,
        }


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """The answer, with the consents that decided it and reasons a person can read."""

    decision: Effect
    obligations: tuple[Obligation, ...] = ()
    consents: tuple[str, ...] = ()
    default_applied: bool = False
    reasons: tuple[str, ...] = field(default=())

    @property
    def permitted(self) -> bool:
        """Whether the request may go ahead."""
        return self.decision is Effect.PERMIT

    def to_json(self) -> dict[str, Any]:
        """The decision as the CLI and logs of decisions print it."""
        return {
            "decision": self.decision.value,
            "obligations": [o.to_json() for o in self.obligations],
            "consents": list(self.consents),
            "default_applied": self.default_applied,
            "reasons": list(self.reasons),
        }
