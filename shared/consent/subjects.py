"""Whose data each entry of a sender's Bundle is, resolved to the sender's own Patients.

``compartment.place`` says what a resource names; this turns it into record ids: a
literal ``Patient/<id>`` is already the sender's (normalization scopes every reference by
partner); an identifier, or a contained Patient's identifiers, stands for the sender's
Patient that carries it (in the same Bundle first, then in the record), else for the id
the sender's converters give a Patient with that identifier. Another partner's Patient is
never the answer. What cannot be placed is refused with the reason (fail closed): the
consent stage quarantines it rather than store patient data with no patient.

The consent stage writes each permitted entry's patients on it (``COMPARTMENT_EXTENSION``)
and marks the Bundle (``PLACED_TAG``), so the store files the data exactly where consent
was decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.normalize.ids import SSN_SYSTEM, patient_id
from shared.platform.envelope import PATIENTS_PER_RESOURCE

from .compartment import Named, place

__all__ = [
    "COMPARTMENT_EXTENSION",
    "PLACED_TAG",
    "SubjectResolver",
    "Subjects",
    "placed_patients",
]

COMPARTMENT_EXTENSION = "urn:fhir-intake:StructureDefinition:compartment"
PLACED_TAG = {"system": "urn:fhir-intake:bundle-state", "code": "placed"}


@dataclass(frozen=True, slots=True)
class Subjects:
    """Whose data one resource is: ``Patient/<id>`` of each, the identifiers it names each
    one by (``system|value``: consent keys too), or why it cannot be told."""

    patients: tuple[str, ...] = ()
    named_by: tuple[tuple[str, frozenset[str]], ...] = ()  # (patient, its identifier keys)
    problem: str | None = None

    @property
    def identifiers(self) -> frozenset[str]:
        """Every identifier key the resource names its patients by."""
        return frozenset(k for _, keys in self.named_by for k in keys)

    def identifiers_of(self, patient: str) -> frozenset[str]:
        """The identifier keys the resource names one of its patients by."""
        return frozenset(k for p, keys in self.named_by if p == patient for k in keys)

    def __repr__(self) -> str:  # identifiers are PHI
        return f"Subjects(patients={len(self.patients)}, problem={self.problem is not None})"


def _identifiers(resource: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = [
        (str(i["system"]), str(i["value"]))
        for i in resource.get("identifier") or ()
        if isinstance(i, Mapping) and i.get("system") and i.get("value")
    ]
    return sorted(found, key=lambda sv: sv[0] == SSN_SYSTEM)  # an SSN only as a last resort


class SubjectResolver:
    """Places the resources of one Bundle from one partner."""

    def __init__(
        self,
        entries: Iterable[Mapping[str, Any]],
        partner: str,
        holders: Callable[[str, str], Sequence[str]],
        max_patients: int = PATIENTS_PER_RESOURCE,
    ) -> None:
        """``holders(system, value)``: ids of the partner's stored Patients with that
        identifier, in id order."""
        self._partner = partner
        self._holders = holders
        self._max = max_patients
        self._cache: dict[tuple[str, str], str] = {}
        self.bundle_patients: dict[str, Mapping[str, Any]] = {}  # id -> Patient
        self._by_identifier: dict[tuple[str, str], str] = {}
        for entry in entries:
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "Patient" and resource.get("id"):
                self.bundle_patients[str(resource["id"])] = resource
                for pair in _identifiers(resource):
                    self._by_identifier.setdefault(pair, str(resource["id"]))

    def _by(self, system: str, value: str) -> str:
        """The sender's Patient known by an identifier."""
        pair = (system, value)
        if pair in self._by_identifier:
            return self._by_identifier[pair]
        if pair not in self._cache:
            held = list(self._holders(system, value))
            self._cache[pair] = held[0] if held else patient_id(self._partner, system, value)
        return self._cache[pair]

    def _resolve(self, named: Named) -> tuple[str | None, set[str]]:
        """A ``Patient/<id>`` for one way of naming a patient, and the identifier keys."""
        if named.reference:
            return named.reference, {"|".join(named.identifier)} if named.identifier else set()
        if named.identifier:
            system, value = named.identifier
            return f"Patient/{self._by(system, value)}", {f"{system}|{value}"}
        pairs = _identifiers(named.contained or {})
        if not pairs:
            return None, set()
        keys = {f"{s}|{v}" for s, v in pairs}
        for system, value in pairs:  # the one the sender holds, if any
            if (system, value) in self._by_identifier or self._holders(system, value):
                return f"Patient/{self._by(system, value)}", keys
        return f"Patient/{patient_id(self._partner, *pairs[0])}", keys

    def of(self, resource: Mapping[str, Any]) -> Subjects:
        """Whose data ``resource`` is.

        Raises:
            StorageUnavailableError: the record could not be asked.
        """
        placement = place(resource)
        problem = placement.undetermined
        if problem:
            return Subjects(problem=problem)
        keys: dict[str, set[str]] = {}  # patient -> identifier keys, in order named
        for named in placement.named:
            reference, found = self._resolve(named)
            if reference is None:
                return Subjects(problem=f"{named.path} is a contained Patient without identifiers")
            keys.setdefault(reference, set()).update(found)
        if len(keys) > self._max:
            return Subjects(problem=f"it names {len(keys)} patients (at most {self._max})")
        return Subjects(tuple(keys), tuple((p, frozenset(k)) for p, k in keys.items()))


def placed_patients(bundle: Mapping[str, Any], entry: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The patients the consent stage wrote on an entry, or None if it did not place the
    Bundle (one from before the trust model)."""
    tags = (bundle.get("meta") or {}).get("tag") or ()
    if not any(t.get("system") == PLACED_TAG["system"] for t in tags if isinstance(t, Mapping)):
        return None
    return tuple(
        str((e.get("valueReference") or {}).get("reference"))
        for e in entry.get("extension") or ()
        if e.get("url") == COMPARTMENT_EXTENSION
    )
