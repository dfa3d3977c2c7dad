"""CSV rows as patients' Consents: an opt-out list (an HIE's opt-out registry export, a
practice's list of patients who declined sharing) becomes one FHIR R4 Consent per row.

Each row's Consent is keyed by partner and patient identifier, so a later row (or file)
for the same patient replaces the earlier one as a newer version: opting back in is a
row with a status the mapping maps to ``inactive``. A deny is marked as an opt-out
registry entry, which the consent engine lets win over every other consent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.consent.vocabulary import ACT_CODE, CONSENT_SCOPE, OPT_OUT_REGISTRY

from .ids import resource_id

__all__ = ["ConsentRule", "consent_from_row", "unlisted_status"]

_STATUSES = {"active", "inactive", "draft", "proposed", "rejected", "entered-in-error"}


class ConsentRule(BaseModel):
    """How one Consent per row is made (``Consent.provision.type`` for all data)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: Literal["deny", "permit"] = "deny"
    status: str = "active"
    status_column: str | None = None
    status_lookup: dict[str, str] = Field(default_factory=dict)  # partner's word -> status
    registry: bool = True  # a deny is an opt-out registry entry (it always wins)

    @model_validator(mode="after")
    def _statuses(self) -> ConsentRule:
        for status in (self.status, *self.status_lookup.values()):
            if status not in _STATUSES:
                raise ValueError(f"status {status!r} is not a Consent.status")
        return self

    def columns(self) -> set[str]:
        """The columns the rule reads."""
        return {self.status_column} if self.status_column else set()


def unlisted_status(lookup: dict[str, str]) -> str:
    """The issue text for a status cell a mapping does not list: the words it does list
    (the mapping's own), never the cell, since the text is kept in the ingestion's status."""
    return f"the status is not in the mapping (it lists {', '.join(sorted(lookup)) or 'none'})"


def consent_from_row(
    rule: ConsentRule,
    row: dict[str, str],
    patient: dict[str, Any],
    when: str,
    key: str,
    partner: str,
) -> dict[str, Any]:
    """The Consent for one row (``when`` is the row's time: Consent.dateTime and the start
    of provision.period).

    Raises:
        ValueError: the row's status is not in the mapping; the message names the
            words the mapping lists, not the cell.
    """
    status = rule.status
    if rule.status_column:
        said = (row.get(rule.status_column) or "").strip()
        if said:
            if said not in rule.status_lookup:
                raise ValueError(unlisted_status(rule.status_lookup))
            status = rule.status_lookup[said]
    category = [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]
    if rule.registry and rule.decision == "deny":
        category.append({"coding": [{"system": OPT_OUT_REGISTRY[0], "code": OPT_OUT_REGISTRY[1]}]})
    return {
        "resourceType": "Consent",
        "id": resource_id(partner, "Consent", "csv", key),
        "status": status,
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": category,
        "patient": patient,
        "dateTime": when,
        "policyRule": {
            "coding": [
                {"system": ACT_CODE, "code": "OPTOUT" if rule.decision == "deny" else "OPTIN"}
            ]
        },
        "provision": {"type": rule.decision, "period": {"start": when}},
    }
