"""Consent: a FHIR R4 Consent engine and where it is enforced (pipeline, reads, notifications)."""

from __future__ import annotations

from .engine import decide_consent
from .errors import ConsentError, ConsentInputError, ConsentUnavailableError
from .models import (
    Action,
    Actor,
    Code,
    ConsentDecision,
    ConsentRequest,
    DataItem,
    Effect,
    Obligation,
    Policy,
    PolicyMode,
)

__all__ = [
    "Action",
    "Actor",
    "Code",
    "ConsentDecision",
    "ConsentError",
    "ConsentInputError",
    "ConsentRequest",
    "ConsentUnavailableError",
    "DataItem",
    "Effect",
    "Obligation",
    "Policy",
    "PolicyMode",
    "decide_consent",
]
