"""CSV exports into FHIR R4 Observations (or Consents) through declarative, per-partner
mappings.

A mapping (JSON, validated by ``CsvMapping``, whose JSON Schema ``intake`` can print)
says which column holds the patient identifier and the time, and how columns become
Observations: a fixed code per column (vital signs) or a code read from a column (lab
extracts), values as quantities, text or codes, units looked up to UCUM, statuses
mapped from the partner's words. Each row is a record: a bad row is reported with its
line and column and costs only itself. The report names the rule the cell broke, never
the cell: it is kept in the ingestion's status, which ``$purge`` does not erase.

Rows reference the patient by identifier (and the id the HL7 v2 and FHIR paths give
that identifier); they do not create or overwrite a Patient, since a CSV row knows
nothing else about the patient. A mapping with a ``consent`` rule makes one Consent
per row instead (``csv_consent``: opt-out lists).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .context import BundleBuilder, ConversionContext
from .csv_consent import ConsentRule, consent_from_row, unlisted_status
from .errors import Issue, IssueCode, NormalizationError
from .fhir_rules import REQUIRED_BINDINGS, canonical_system
from .ids import local_system, patient_id, resource_id
from .models import Conversion, Rejection
from .payload import read_utf8
from .provenance import add_provenance
from .vital_signs import conform_vital_signs

__all__ = ["MAPPINGS_DIR", "CsvMapping", "convert_csv", "load_mapping", "mapping_schema"]

MAPPINGS_DIR = Path(__file__).parent / "mappings"
MAX_CSV_BYTES = 256 * 1024 * 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")
_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_UCUM = "http://unitsofmeasure.org"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FixedCode(_Strict):
    """A code written in the mapping."""

    system: str
    code: str
    display: str | None = None


class ColumnCode(_Strict):
    """A code read from a column, in a system the mapping names."""

    system: str
    code_column: str
    display_column: str | None = None


class Unit(_Strict):
    """A UCUM unit: fixed, or read from a column and looked up."""

    code: str | None = None
    display: str | None = None
    column: str | None = None
    lookup: dict[str, str] = Field(default_factory=dict)  # partner's spelling -> UCUM code

    @model_validator(mode="after")
    def _one_source(self) -> Unit:
        if (self.code is None) == (self.column is None):
            raise ValueError("a unit has either a fixed code or a column")
        return self


class Component(_Strict):
    """One part of a panel (systolic and diastolic of a blood pressure)."""

    column: str
    code: FixedCode
    unit: Unit | None = None


class ObservationRule(_Strict):
    """How one Observation per row is made."""

    code: FixedCode | ColumnCode
    column: str | None = None  # the value's column; None for a panel of components
    value_type: Literal["quantity", "string", "codeable"] = "quantity"
    value_system: str | None = None  # for codeable values
    unit: Unit | None = None
    components: list[Component] = Field(default_factory=list)
    category: Literal["vital-signs", "laboratory", "survey", "activity", "exam"] | None = None
    status: str = "final"
    status_column: str | None = None
    status_lookup: dict[str, str] = Field(default_factory=dict)
    reference_range_column: str | None = None
    interpretation_column: str | None = None

    @model_validator(mode="after")
    def _value_or_components(self) -> ObservationRule:
        if (self.column is None) == (not self.components):
            raise ValueError("an observation has a value column or components, not both")
        allowed = REQUIRED_BINDINGS[("Observation", "status")]
        for status in (self.status, *self.status_lookup.values()):
            if status not in allowed:
                raise ValueError(f"status {status!r} is not an Observation.status")
        return self


class CsvMapping(_Strict):
    """A partner's CSV layout and how it becomes FHIR."""

    name: str
    description: str
    delimiter: str = ","
    patient_column: str
    patient_system: str | None = None  # URI/OID, or the partner's authority name (as CX.4)
    time_column: str
    time_format: str | None = None  # strptime format; None: ISO 8601
    observations: list[ObservationRule] = Field(default_factory=list)
    consent: ConsentRule | None = None  # one Consent per row (an opt-out list)

    @model_validator(mode="after")
    def _valid_name(self) -> CsvMapping:
        if not _NAME.match(self.name):
            raise ValueError("name: lowercase letters, digits and hyphens")
        if len(self.delimiter) != 1:
            raise ValueError("delimiter: one character")
        if not self.observations and self.consent is None:
            raise ValueError("a mapping makes observations, a consent, or both")
        return self

    def columns(self) -> set[str]:
        """Every column the mapping reads."""
        found = {self.patient_column, self.time_column}
        if self.consent is not None:
            found |= self.consent.columns()
        for rule in self.observations:
            found |= {
                c
                for c in (
                    rule.column,
                    rule.status_column,
                    rule.reference_range_column,
                    rule.interpretation_column,
                )
                if c
            }
            if isinstance(rule.code, ColumnCode):
                found |= {c for c in (rule.code.code_column, rule.code.display_column) if c}
            for unit in (rule.unit, *(c.unit for c in rule.components)):
                if unit and unit.column:
                    found.add(unit.column)
            found |= {c.column for c in rule.components}
        return found


def load_mapping(name: str, extra_dir: Path | None = None) -> CsvMapping:
    """A mapping by name: the partner's folder first, then the built-in ones.

    Raises:
        NormalizationError: no such mapping, or it is invalid.
    """
    if not _NAME.match(name):
        raise NormalizationError.at(
            "mapping",
            "not a mapping name: lowercase letters, digits and hyphens",
            IssueCode.VALUE,
        )
    for folder in (extra_dir, MAPPINGS_DIR):
        path = folder / f"{name}.json" if folder else None
        if path and path.exists():
            try:
                return CsvMapping.model_validate_json(path.read_bytes())
            except ValidationError as exc:
                raise NormalizationError.at(
                    f"mapping {name}",
                    f"the mapping is invalid: {exc.errors()[0]['msg']}",
                    IssueCode.INVALID,
                ) from exc
    raise NormalizationError.at("mapping", "no CSV mapping has this name", IssueCode.VALUE)


def _decimal(text: str) -> int | Decimal | None:
    """A cell as a FHIR decimal with its digits kept, or an integer; None if not a number."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return int(number) if number == number.to_integral_value() and "." not in text else number


class _RowError(Exception):
    def __init__(self, column: str, text: str, code: IssueCode = IssueCode.VALUE) -> None:
        super().__init__(text)
        self.column, self.text, self.code = column, text, code


def _time(mapping: CsvMapping, text: str, ctx: ConversionContext) -> str:
    try:
        moment = (
            datetime.strptime(text, mapping.time_format)
            if mapping.time_format
            else datetime.fromisoformat(text.replace("Z", "+00:00"))
        )
    except ValueError as exc:
        raise _RowError(
            mapping.time_column,
            f"not a time in the mapping's format ({mapping.time_format or 'ISO 8601'})",
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ctx.local_zone)
    return moment.isoformat()


def _quantity(value: int | Decimal, unit: Unit | None, row: dict[str, str]) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value}
    if unit is None:
        return quantity
    if unit.column:
        spelled = (row.get(unit.column) or "").strip()
        code = unit.lookup.get(spelled, unit.lookup.get(spelled.lower(), spelled))
        if not code:
            return quantity
        quantity.update(unit=spelled or code, system=_UCUM, code=code)
    else:
        quantity.update(unit=unit.display or unit.code, system=_UCUM, code=unit.code)
    return quantity


def _observation(
    rule: ObservationRule,
    row: dict[str, str],
    patient: dict[str, Any],
    when: str,
    ctx: ConversionContext,
    key: str,
) -> dict[str, Any] | None:
    if isinstance(rule.code, FixedCode):
        coding = {"system": canonical_system(rule.code.system), "code": rule.code.code}
        if rule.code.display:
            coding["display"] = rule.code.display
    else:
        code = (row.get(rule.code.code_column) or "").strip()
        if not code:
            raise _RowError(rule.code.code_column, "the code is empty", IssueCode.REQUIRED)
        coding = {"system": canonical_system(rule.code.system), "code": code}
        display = (
            (row.get(rule.code.display_column) or "").strip() if rule.code.display_column else ""
        )
        if display:
            coding["display"] = display
    resource: dict[str, Any] = {"resourceType": "Observation"}
    if rule.column is not None:
        text = (row.get(rule.column) or "").strip()
        if not text:
            return None  # nothing measured in this row
        if rule.value_type == "quantity":
            number = _decimal(text)
            if number is None:
                raise _RowError(rule.column, "not a number")
            resource["valueQuantity"] = _quantity(number, rule.unit, row)
        elif rule.value_type == "codeable":
            resource["valueCodeableConcept"] = {
                "coding": [{"system": canonical_system(rule.value_system or ""), "code": text}]
            }
        else:
            resource["valueString"] = text
    else:
        parts = []
        for component in rule.components:
            text = (row.get(component.column) or "").strip()
            if not text:
                continue
            number = _decimal(text)
            if number is None:
                raise _RowError(component.column, "not a number")
            parts.append(
                {
                    "code": {"coding": [component.code.model_dump(exclude_none=True)]},
                    "valueQuantity": _quantity(number, component.unit, row),
                }
            )
        if not parts:
            return None
        resource["component"] = parts
    status = rule.status
    if rule.status_column:
        said = (row.get(rule.status_column) or "").strip()
        if said:
            if said not in rule.status_lookup:
                raise _RowError(rule.status_column, unlisted_status(rule.status_lookup))
            status = rule.status_lookup[said]
    resource["status"] = status
    if rule.category:
        resource["category"] = [{"coding": [{"system": _CATEGORY, "code": rule.category}]}]
    resource["code"] = {"coding": [coding]}
    resource["subject"] = patient
    resource["effectiveDateTime"] = when
    if rule.reference_range_column and (row.get(rule.reference_range_column) or "").strip():
        resource["referenceRange"] = [{"text": row[rule.reference_range_column].strip()}]
    if rule.interpretation_column and (row.get(rule.interpretation_column) or "").strip():
        resource["interpretation"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": row[rule.interpretation_column].strip(),
                    }
                ]
            }
        ]
    resource["id"] = resource_id(
        ctx.partner, "Observation", key, coding["system"], coding["code"], when
    )
    return resource


def convert_csv(data: bytes, mapping: CsvMapping, ctx: ConversionContext) -> Conversion:
    """Convert a CSV file with a mapping; one record per row.

    Raises:
        NormalizationError: the file cannot be read, lacks a column the mapping needs,
            or no row could be converted.
    """
    text = read_utf8(data, MAX_CSV_BYTES, "CSV file")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=mapping.delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = sorted(mapping.columns() - set(header))
    if missing:
        raise NormalizationError.at(
            "line 1",
            f"the header lacks the column(s) {', '.join(missing)} "
            f"that mapping {mapping.name!r} reads",
            IssueCode.REQUIRED,
        )
    system = _patient_system(mapping, ctx)
    out = BundleBuilder()
    rejected: list[Rejection] = []
    rows = 0
    try:
        for row in reader:
            rows += 1
            line = reader.line_num
            try:
                _convert_row(row, mapping, system, ctx, out, line)
            except _RowError as exc:
                column = header.index(exc.column) + 1 if exc.column in header else 0
                rejected.append(
                    Rejection(
                        location=f"line {line}",
                        issues=(
                            Issue(
                                code=exc.code,
                                diagnostics=exc.text,
                                location=f"line {line}, column {column} ({exc.column})",
                            ),
                        ),
                    )
                )
    except csv.Error as exc:
        raise NormalizationError.at(f"line {reader.line_num}", f"not valid CSV: {exc}") from exc
    if rows == 0:
        raise NormalizationError.at(
            "line 2", "the file has a header but no rows", IssueCode.REQUIRED
        )
    if not out.resources:
        if rejected:
            raise NormalizationError([i for r in rejected for i in r.issues])
        raise NormalizationError.at(
            None, "no row holds a value the mapping reads", IssueCode.REQUIRED
        )
    conform_vital_signs(list(out.resources.values()), out.warn)
    digest = hashlib.sha256(data).hexdigest()[:32]
    add_provenance(
        out,
        ctx,
        key=f"csv|{mapping.name}|{digest}",
        activity=f"converted from CSV with mapping {mapping.name}",
        source_id=f"sha256:{digest}",
    )
    return Conversion(
        bundle=out.bundle(),
        issues=tuple(out.issues),
        rejected=tuple(rejected),
        message_type=f"CSV {mapping.name}",
        records=rows,
    )


def _patient_system(mapping: CsvMapping, ctx: ConversionContext) -> str:
    """A URI or OID names the authority itself; a bare name is an assigning authority of
    the partner's, the same system an HL7 v2 identifier with that authority (CX.4) gets."""
    given = (mapping.patient_system or "").strip()
    if given.startswith(("http://", "https://", "urn:")) or re.match(
        r"^(oid:)?[0-2](\.\d+)+\Z", given
    ):
        return canonical_system(given)
    return local_system(ctx.partner, given or "MR")


def _convert_row(
    row: dict[str, str],
    mapping: CsvMapping,
    system: str,
    ctx: ConversionContext,
    out: BundleBuilder,
    line: int,
) -> None:
    if None in row:
        raise _RowError(
            mapping.patient_column, "the row has more cells than the header", IssueCode.STRUCTURE
        )
    value = (row.get(mapping.patient_column) or "").strip()
    if not value:
        raise _RowError(
            mapping.patient_column, "the patient identifier is empty", IssueCode.REQUIRED
        )
    when_text = (row.get(mapping.time_column) or "").strip()
    if not when_text:
        raise _RowError(mapping.time_column, "the time is empty", IssueCode.REQUIRED)
    when = _time(mapping, when_text, ctx)
    patient = {
        "reference": f"Patient/{patient_id(ctx.partner, system, value)}",
        "identifier": {"system": system, "value": value},
    }
    made = []
    if mapping.consent is not None:
        try:
            made.append(
                consent_from_row(
                    mapping.consent, row, patient, when, f"{system}|{value}", ctx.partner
                )
            )
        except ValueError as exc:
            raise _RowError(mapping.consent.status_column or "", str(exc)) from exc
    for rule in mapping.observations:
        resource = _observation(rule, row, patient, when, ctx, f"{system}|{value}")
        if resource is not None:
            made.append(resource)
    for resource in made:  # only once the whole row converted
        out.add(resource)


def mapping_schema() -> str:
    """The JSON Schema mapping files are validated against."""
    return json.dumps(CsvMapping.model_json_schema(), indent=2)
