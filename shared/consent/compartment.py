"""Whose data a resource is: the FHIR R4 Patient CompartmentDefinition, and what it misses.

The table is the R4 (4.0.1) CompartmentDefinition ``patient`` with each inclusion
parameter replaced by its search parameter's path (HL7 FHIR R4 ``compartmentdefinition-
patient.json`` and ``search-parameters.json``, CC0). A path is marked ``True`` when it can
only point at a Patient (``AllergyIntolerance.patient``), so a reference that names its
target by identifier alone is a patient; ``False`` when it may point at other types too
(``Observation.subject``: Group, Device, Location), or when the parameter keeps only the
Patients among its targets (``Task.for.where(resolve() is Patient)``), so such a reference
names a patient only if it says ``type: Patient``.

Beyond the table, the R4 elements that can only reference a Patient but are left out of
the compartment (``Device.patient``, ``DocumentReference.context.sourcePatientInfo``),
any other literal ``Patient/<id>`` reference anywhere in a resource, every contained
Patient, what the resource's contained resources name, and what the entries of a stored
Bundle name count too: a resource that names a patient is that patient's data. Pure:
resolving identifiers and contained Patients to record ids is the caller's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PATIENT_COMPARTMENT", "Named", "Placement", "place"]

# Resource type -> (path of a compartment search parameter, whether it points at Patients
# only). Generated from the R4 definitions; types the definition lists without a
# parameter are not in the compartment and are left out.
PATIENT_COMPARTMENT: dict[str, tuple[tuple[str, bool], ...]] = {
    "Account": (("subject", False),),  # subject
    "AdverseEvent": (("subject", False),),  # subject
    "AllergyIntolerance": (
        ("patient", True),
        ("recorder", False),
        ("asserter", False),
    ),  # asserter, patient, recorder
    "Appointment": (("participant.actor", False),),  # actor
    "AppointmentResponse": (("actor", False),),  # actor
    "AuditEvent": (
        ("agent.who", False),
        ("entity.what", False),
    ),  # patient
    "Basic": (
        ("subject", False),
        ("author", False),
    ),  # author, patient
    "BodyStructure": (("patient", True),),  # patient
    "CarePlan": (
        ("subject", False),
        ("activity.detail.performer", False),
    ),  # patient, performer
    "CareTeam": (
        ("subject", False),
        ("participant.member", False),
    ),  # participant, patient
    "ChargeItem": (("subject", False),),  # subject
    "Claim": (
        ("patient", True),
        ("payee.party", False),
    ),  # patient, payee
    "ClaimResponse": (("patient", True),),  # patient
    "ClinicalImpression": (("subject", False),),  # subject
    "Communication": (
        ("subject", False),
        ("sender", False),
        ("recipient", False),
    ),  # recipient, sender, subject
    "CommunicationRequest": (
        ("subject", False),
        ("sender", False),
        ("recipient", False),
        ("requester", False),
    ),  # recipient, requester, sender, subject
    "Composition": (
        ("subject", False),
        ("author", False),
        ("attester.party", False),
    ),  # attester, author, subject
    "Condition": (
        ("subject", False),
        ("asserter", False),
    ),  # asserter, patient
    "Consent": (("patient", True),),  # patient
    "Coverage": (
        ("policyHolder", False),
        ("subscriber", False),
        ("beneficiary", True),
        ("payor", False),
    ),  # beneficiary, payor, policy-holder, subscriber
    "CoverageEligibilityRequest": (("patient", True),),  # patient
    "CoverageEligibilityResponse": (("patient", True),),  # patient
    "DetectedIssue": (("patient", True),),  # patient
    "DeviceRequest": (
        ("subject", False),
        ("performer", False),
    ),  # performer, subject
    "DeviceUseStatement": (("subject", False),),  # subject
    "DiagnosticReport": (("subject", False),),  # subject
    "DocumentManifest": (
        ("subject", False),
        ("author", False),
        ("recipient", False),
    ),  # author, recipient, subject
    "DocumentReference": (
        ("subject", False),
        ("author", False),
    ),  # author, subject
    "Encounter": (("subject", False),),  # subject
    "EnrollmentRequest": (("candidate", True),),  # subject
    "EpisodeOfCare": (("patient", True),),  # patient
    "ExplanationOfBenefit": (
        ("patient", True),
        ("payee.party", False),
    ),  # patient, payee
    "FamilyMemberHistory": (("patient", True),),  # patient
    "Flag": (("subject", False),),  # patient
    "Goal": (("subject", False),),  # patient
    "Group": (("member.entity", False),),  # member
    "ImagingStudy": (("subject", False),),  # patient
    "Immunization": (("patient", True),),  # patient
    "ImmunizationEvaluation": (("patient", True),),  # patient
    "ImmunizationRecommendation": (("patient", True),),  # patient
    "Invoice": (
        ("subject", False),
        ("recipient", False),
    ),  # patient, recipient, subject
    "List": (
        ("subject", False),
        ("source", False),
    ),  # source, subject
    "MeasureReport": (("subject", False),),  # patient
    "Media": (("subject", False),),  # subject
    "MedicationAdministration": (
        ("subject", False),
        ("performer.actor", False),
    ),  # patient, performer, subject
    "MedicationDispense": (
        ("subject", False),
        ("receiver", False),
    ),  # patient, receiver, subject
    "MedicationRequest": (("subject", False),),  # subject
    "MedicationStatement": (("subject", False),),  # subject
    "MolecularSequence": (("patient", True),),  # patient
    "NutritionOrder": (("patient", True),),  # patient
    "Observation": (
        ("subject", False),
        ("performer", False),
    ),  # performer, subject
    "Patient": (("link.other", False),),  # link
    "Person": (("link.target", False),),  # patient
    "Procedure": (
        ("subject", False),
        ("performer.actor", False),
    ),  # patient, performer
    "Provenance": (("target", False),),  # patient
    "QuestionnaireResponse": (
        ("subject", False),
        ("author", False),
    ),  # author, subject
    "RelatedPerson": (("patient", True),),  # patient
    "RequestGroup": (
        ("subject", False),
        ("action.participant", False),
    ),  # participant, subject
    "ResearchSubject": (("individual", True),),  # individual
    "RiskAssessment": (("subject", False),),  # subject
    "Schedule": (("actor", False),),  # actor
    "ServiceRequest": (
        ("subject", False),
        ("performer", False),
    ),  # performer, subject
    "Specimen": (("subject", False),),  # subject
    "SupplyDelivery": (("patient", True),),  # patient
    "SupplyRequest": (("deliverTo", False),),  # subject
    "Task": (
        ("for", False),
        ("focus", False),
    ),  # focus, patient
    "VisionPrescription": (("patient", True),),  # patient
}

# R4 elements of type Reference(Patient) only, outside the compartment (StructureDefinitions).
PATIENT_ONLY_ELSEWHERE: dict[str, tuple[str, ...]] = {
    "Device": ("patient",),
    "DocumentReference": ("context.sourcePatientInfo",),
}

_ID = r"[A-Za-z0-9\-.]{1,64}"
_PATIENT = re.compile(rf"^Patient/({_ID})(?:/_history/{_ID})?\Z")
_OTHER = re.compile(rf"^[A-Z][A-Za-z]+/{_ID}(?:/_history/{_ID})?\Z")
# An absolute URL that may name a Patient: .../Patient/1, .../patient/1, .../Patient?identifier=
_ABSOLUTE_PATIENT = re.compile(r"^[a-z][a-z0-9+.\-]*:.*/patient(?:[/?]|\Z)", re.IGNORECASE)
_URL = re.compile(r"^https?://", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Named:
    """One way a resource names a patient: a literal ``Patient/<id>``, an identifier that
    stands for the partner's Patient, or a contained Patient (resolved by its identifiers)."""

    path: str  # where, e.g. "Appointment.participant.actor"
    reference: str | None = None  # "Patient/<id>" (it decides when given)
    identifier: tuple[str, str] | None = None  # (system, value), alone or beside the reference
    contained: Mapping[str, Any] | None = None  # the contained Patient resource

    def __repr__(self) -> str:  # identifiers are PHI
        kind = "reference" if self.reference else "identifier" if self.identifier else "contained"
        return f"Named(path={self.path!r}, {kind})"


@dataclass(frozen=True, slots=True)
class Placement:
    """What a resource says about whose data it is, before any look-up."""

    resource_type: str
    named: tuple[Named, ...] = ()
    unknown: tuple[str, ...] = ()  # why a patient it may name cannot be told, per place
    in_compartment: bool = False  # its type is in the Patient compartment
    names_other: bool = False  # a compartment path names something that is not a Patient

    @property
    def undetermined(self) -> str | None:
        """Why the resource's patient cannot be determined (fail closed), or None."""
        if self.unknown:
            return "; ".join(self.unknown)
        if self.in_compartment and not self.named and not self.names_other:
            paths = ", ".join(
                f"{self.resource_type}.{p}" for p, _ in PATIENT_COMPARTMENT[self.resource_type]
            )
            return f"it names no patient ({paths})"
        return None


def _pair(identifier: Any) -> tuple[str, str] | None:
    """(system, value) of an Identifier that has both, else None."""
    if isinstance(identifier, Mapping) and identifier.get("system") and identifier.get("value"):
        return str(identifier["system"]), str(identifier["value"])
    return None


def _values(value: Any, steps: list[str]) -> Iterator[Any]:
    """The values at a dotted path below ``value``, through lists at any level."""
    if isinstance(value, list):
        for item in value:
            yield from _values(item, steps)
        return
    if not steps:
        if value is not None:
            yield value
        return
    if isinstance(value, Mapping):
        yield from _values(value.get(steps[0]), steps[1:])


class _Reader:
    """Classifies the references of one resource (``contained``: the container's contained
    resources, which references of a contained resource point at too)."""

    def __init__(
        self, resource: Mapping[str, Any], contained: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.resource = resource
        self.kind = str(resource.get("resourceType") or "")
        self.contained = dict(contained or {}) or {
            str(c.get("id")): c
            for c in resource.get("contained") or ()
            if isinstance(c, Mapping) and c.get("id")
        }
        self.named: list[Named] = []
        self.unknown: list[str] = []
        self.other = False

    def reference(self, ref: Any, path: str, patient_only: bool) -> None:
        """One Reference at a compartment path."""
        if not isinstance(ref, Mapping):
            return
        literal = ref.get("reference")
        kind = ref.get("type")
        identifier = ref.get("identifier")
        if isinstance(literal, str) and literal:
            self._literal(literal, path, _pair(identifier))
            return
        if isinstance(identifier, Mapping) and identifier.get("value"):
            if kind == "Patient" or (kind is None and patient_only):
                system = identifier.get("system")
                if not system:
                    self.unknown.append(f"{path} names a patient by an identifier without system")
                else:
                    self.named.append(
                        Named(path, identifier=(str(system), str(identifier["value"])))
                    )
            elif kind is not None:
                self.other = True
            else:
                self.unknown.append(f"{path} names its target by identifier only, without a type")
            return
        if ref.get("display"):
            self.unknown.append(f"{path} names its target by display text only")

    def _literal(self, literal: str, path: str, identifier: tuple[str, str] | None) -> None:
        if literal.startswith("#"):
            held = self.contained.get(literal[1:])
            if held is None:
                self.unknown.append(f"{path} points at a contained resource that is not there")
            elif held.get("resourceType") == "Patient":
                self.named.append(Named(path, contained=held))
            else:
                self.other = True
        elif found := _PATIENT.match(literal):
            self.named.append(Named(path, reference=f"Patient/{found[1]}", identifier=identifier))
        elif _OTHER.match(literal):
            self.other = True
        elif _ABSOLUTE_PATIENT.match(literal):
            self.unknown.append(f"{path} names a Patient on another server")
        elif _URL.match(literal):
            self.other = True  # a resource of another kind on another server
        else:
            self.unknown.append(f"{path} is not a reference this service can place")

    def elsewhere(self, value: Any, path: str) -> None:
        """Patient references (literal, or by identifier with ``type: Patient``) and
        contained Patients anywhere, the compartment paths' included."""
        if isinstance(value, Mapping):
            literal = value.get("reference")
            if not literal and value.get("type") == "Patient":
                self.reference(value, path, patient_only=True)
            if isinstance(literal, str):
                if found := _PATIENT.match(literal):
                    pair = _pair(value.get("identifier"))
                    self.named.append(Named(path, reference=f"Patient/{found[1]}", identifier=pair))
                elif literal.startswith("#"):
                    held = self.contained.get(literal[1:])
                    if held is not None and held.get("resourceType") == "Patient":
                        self.named.append(Named(path, contained=held))
                elif _ABSOLUTE_PATIENT.match(literal):
                    self.unknown.append(f"{path} names a Patient on another server")
            for key, item in value.items():
                if key not in ("contained", "meta"):
                    self.elsewhere(item, f"{path}.{key}")
        elif isinstance(value, list):
            for item in value:
                self.elsewhere(item, path)


def place(resource: Mapping[str, Any]) -> Placement:
    """Whose data ``resource`` says it is: the patients its compartment paths (and the other
    places listed above) name, and why a patient it may name cannot be told. A Patient is
    its own; its ``link`` is a merge or a link, never membership."""
    kind = str(resource.get("resourceType") or "")
    if kind == "Patient":
        ident = resource.get("id")
        named = (Named("Patient.id", reference=f"Patient/{ident}"),) if ident else ()
        return Placement("Patient", named, in_compartment=True, names_other=not named)
    reader = _Reader(resource)
    _read(reader, resource, kind)
    for held in reader.contained.values():  # every contained resource is the container's data
        if held.get("resourceType") == "Patient":
            reader.named.append(Named(f"{kind}.contained", contained=held))
        else:
            _merge(reader, _placed(held, reader.contained), f"{kind}.contained")
    if kind == "Bundle":  # a stored Bundle holds whole resources: theirs are its patients
        for number, entry in enumerate(resource.get("entry") or ()):
            inner = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(inner, Mapping):
                _merge(reader, place(inner), f"Bundle.entry[{number}]")
    return Placement(
        kind,
        tuple(_unique(reader.named)),
        tuple(dict.fromkeys(reader.unknown)),
        in_compartment=kind in PATIENT_COMPARTMENT,
        names_other=reader.other,
    )


def _read(reader: _Reader, resource: Mapping[str, Any], kind: str) -> None:
    """The compartment paths, the Patient-only ones outside it, and everything else."""
    paths = [
        *PATIENT_COMPARTMENT.get(kind, ()),
        *((p, True) for p in PATIENT_ONLY_ELSEWHERE.get(kind, ())),
    ]
    for path, patient_only in paths:
        where = f"{kind}.{path}"
        for ref in _values(resource, path.split(".")):
            reader.reference(ref, where, patient_only)
    for key, value in resource.items():
        if key not in ("contained", "meta", "resourceType", "id"):
            reader.elsewhere(value, f"{kind}.{key}")


def _placed(resource: Mapping[str, Any], contained: Mapping[str, Mapping[str, Any]]) -> Placement:
    """A contained resource's placement; its references to ``#id`` are its container's."""
    kind = str(resource.get("resourceType") or "")
    reader = _Reader(resource, contained)
    _read(reader, resource, kind)
    return Placement(
        kind,
        tuple(reader.named),
        tuple(reader.unknown),
        in_compartment=kind in PATIENT_COMPARTMENT,
        names_other=reader.other,
    )


def _merge(reader: _Reader, inner: Placement, where: str) -> None:
    """Take what an inner resource (contained, or a Bundle entry) names into its holder."""
    reader.named.extend(inner.named)
    problem = inner.undetermined
    if problem:
        reader.unknown.append(f"{where} ({inner.resource_type}): {problem}")


def _unique(named: list[Named]) -> list[Named]:
    """Each patient once: the first place that names it (compartment paths come first)."""
    kept: list[Named] = []
    keys: set[Any] = set()
    for item in named:
        key = item.reference or item.identifier or id(item.contained)
        if key not in keys:
            keys.add(key)
            kept.append(item)
    return kept
