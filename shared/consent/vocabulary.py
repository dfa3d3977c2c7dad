"""The code systems consent decisions read: purposes of use, confidentiality, sensitivity.

Purposes are v3 ActReason codes with their is-a hierarchy (a provision for TREAT covers a
request for ETREAT); the hierarchy is poly-hierarchical (CLINTRCH is both treatment and
research), so each code lists all its parents. Confidentiality codes are ordered, which
lets a provision for "normal" data cover low and moderate data too.
"""

from __future__ import annotations

from functools import cache

__all__ = [
    "ACT_CODE",
    "ACT_REASON",
    "CONFIDENTIALITY",
    "CONFIDENTIALITY_ORDER",
    "CONSENT_ACTION",
    "CONSENT_SCOPE",
    "DEFAULT_SENSITIVE_LABELS",
    "OPT_OUT_REGISTRY",
    "PARTNER_IDENTIFIER_SYSTEM",
    "RESOURCE_TYPES",
    "covered_by",
    "is_research",
    "purpose_ancestors",
    "subsumes",
]

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
PARTNER_IDENTIFIER_SYSTEM = "urn:fhir-intake:partner"  # Identifier.system of a partner
OPT_OUT_REGISTRY = ("urn:fhir-intake:consent-category", "opt-out-registry")
"""Consent.category coding that marks an opt-out registry entry: it always wins."""

# v3 ActReason PurposeOfUse: code -> parents (the abstract root is left out).
_PARENTS: dict[str, tuple[str, ...]] = {
    "TREAT": (),
    "ETREAT": ("TREAT",),
    "BTG": ("ETREAT",),
    "ERTREAT": ("ETREAT",),
    "CAREMGT": ("TREAT", "HOPERAT"),
    "COC": ("TREAT",),
    "POPHLTH": ("TREAT",),
    "CLINTRCH": ("TREAT", "HRESCH"),
    "DISASTER": ("TREAT", "PUBHLTH"),
    "HPAYMT": (),
    "CLMATTCH": ("HPAYMT",),
    "COVAUTH": ("HPAYMT",),
    "COVERAGE": ("HPAYMT",),
    "ELIGDTRM": ("COVERAGE",),
    "ELIGVER": ("COVERAGE",),
    "ENROLLM": ("COVERAGE",),
    "REMITADV": ("HPAYMT",),
    "HOPERAT": (),
    "HSYSADMIN": ("HOPERAT",),
    "HQUALIMP": ("HOPERAT",),
    "HLEGAL": ("HOPERAT",),
    "HACCRED": ("HOPERAT",),
    "HCOMPL": ("HOPERAT",),
    "PATADMIN": ("HOPERAT",),
    "PATSFTY": ("HOPERAT",),
    "RECORDMGT": ("HOPERAT",),
    "TRAIN": ("HOPERAT",),
    "HRESCH": (),
    "BIORCH": ("HRESCH",),
    "CLINTRCHNPC": ("CLINTRCH",),
    "CLINTRCHPC": ("CLINTRCH",),
    "PRECLINTRCH": ("HRESCH",),
    "DSRCH": ("HRESCH",),
    "POARCH": ("HRESCH",),
    "TRANSRCH": ("HRESCH",),
    "PUBHLTH": (),
    "THREAT": ("PUBHLTH",),
    "HMARKT": (),
    "PATRQT": (),
    "FAMRQT": ("PATRQT",),
    "PWATRNY": ("PATRQT",),
    "SUPNWK": ("PATRQT",),
    "HDIRECT": ("HOPERAT",),
    "GOV": (),
}

CONFIDENTIALITY_ORDER: dict[str, int] = {"U": 0, "L": 1, "M": 2, "N": 3, "R": 4, "V": 5}
"""v3 Confidentiality, least to most restricted; data without a label counts as N."""

DEFAULT_SENSITIVE_LABELS: frozenset[str] = frozenset(
    {"ETH", "SUD", "ETHUD", "OPIOIDUD", "PSY", "PSYTHPN", "HIV", "STD", "SDV", "SEX", "SICKLE"}
)
"""v3 ActCode sensitivity labels that never pass on a default policy (42 CFR Part 2 and
state law treat substance use, mental health, HIV and similar data this way)."""


@cache
def purpose_ancestors(code: str) -> frozenset[str]:
    """The code and every purpose it is a kind of (ETREAT -> {ETREAT, TREAT})."""
    seen = {code}
    stack = [code]
    while stack:
        for parent in _PARENTS.get(stack.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return frozenset(seen)


def subsumes(general: str, specific: str) -> bool:
    """Whether a request for ``specific`` is covered by a rule for ``general``."""
    return general in purpose_ancestors(specific)


def covered_by(purpose: str, registered: frozenset[str]) -> bool:
    """Whether a stated purpose is one of the registered ones or a kind of one (ETREAT
    is treatment, so TREAT covers it)."""
    return any(subsumes(r, purpose) for r in registered)


def is_research(purpose: str | None) -> bool:
    """Whether a purpose of use is research (HRESCH or a kind of it)."""
    return purpose is not None and subsumes("HRESCH", purpose)
