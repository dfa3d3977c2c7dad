"""A C-CDA document into our transaction Bundle, through the library and our checks.

The document is read by our hardened parser, mapped by ``ccda-to-fhir`` (IG 2.0.0),
retried part by part if the library refuses it, then made ours: partner-scoped ids,
references and identifiers set right, the times the library invents replaced, every
resource validated with the full R4B model (a resource that fails is reported and left
out, and references to it dropped), and one Provenance for the document. The report
says, per section, what converted and what was skipped and why; in strict mode any of
that refuses the document instead.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from lxml import etree

from ..context import BundleBuilder, ConversionContext
from ..errors import Issue, IssueCode, NormalizationError, Severity
from ..fhir_json import validate_resource
from ..models import Conversion, Rejection
from ..provenance import add_provenance
from .identity import assign_ids, rewrite_references
from .library import check_tree, convert_tree
from .sections import SectionReport, convert_isolating, inventory, safe_code, safe_oid
from .unstructured import document_reference
from .xml_safety import cda_path, parse_document

__all__ = ["convert_ccda"]

_DATE_ONLY = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?\Z", re.ASCII)
_ZONED = re.compile(r"(Z|[+-]\d{2}:\d{2})\Z")
_ERROR_TYPE = re.compile(r"[^A-Za-z0-9_]")  # a Python exception's class name, nothing else


def _document_key(root: etree._Element, data: bytes) -> tuple[str, str | None]:
    """What the document is known by across resends (its setId, the series a replacing
    document shares, else its id), and its id for the Provenance (``root^extension``)."""

    def ii(name: str) -> str | None:
        found = root.find(cda_path(root, name))
        if found is None or not found.get("root"):
            return None
        return "^".join(v for v in (found.get("root"), found.get("extension")) if v)

    own = ii("id")
    return ii("setId") or own or "sha256:" + hashlib.sha256(data).hexdigest(), own


def _document_type(root: etree._Element) -> str:
    """The document's LOINC type name, for the ingestion's message type."""
    code = root.find(cda_path(root, "code"))
    shown = safe_code(code.get("code")) if code is not None else None
    return f"C-CDA {shown}" if shown and shown != "other" else "C-CDA"


def _fix_times(
    resources: list[dict[str, Any]], root: etree._Element, ctx: ConversionContext
) -> None:
    """Provenance.recorded must be an instant: the library writes an author's date-only
    time as it is and, with no time at all, its own clock without a zone. A date is read
    as midnight in the partner's zone; the library's clock becomes our receipt time."""
    received = ctx.received.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    dated = root.find(cda_path(root, "effectiveTime"))
    for resource in resources:
        if resource["resourceType"] == "Provenance":
            recorded = resource.get("recorded")
            if isinstance(recorded, str) and _DATE_ONLY.match(recorded) and len(recorded) == 10:
                day = datetime.fromisoformat(recorded).replace(tzinfo=ctx.local_zone)
                resource["recorded"] = day.isoformat()
            elif not isinstance(recorded, str) or not _ZONED.search(recorded):
                resource["recorded"] = received
        elif resource["resourceType"] == "Composition" and (
            dated is None or not dated.get("value")
        ):
            resource["date"] = received  # not the library's clock: the document had none


def _validated(
    resources: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    kept, rejected = [], []
    for number, resource in enumerate(resources):
        where = f"{resource['resourceType']}[{number}]"
        clean, issues = validate_resource(resource, where)
        if clean is None:
            rejected.append(Rejection(location=where, issues=tuple(issues)))
        else:
            kept.append(clean)
    return kept, rejected


def _drop_dangling_entries(resources: list[dict[str, Any]]) -> None:
    """Composition.section.entry and Provenance.target hold only what is in the Bundle."""
    for resource in resources:
        if resource["resourceType"] == "Composition":
            for section in resource.get("section") or []:
                _keep_references(section, "entry")
        elif resource["resourceType"] == "Provenance":
            _keep_references(resource, "target")


def _keep_references(holder: dict[str, Any], element: str) -> None:
    if element in holder:
        holder[element] = [r for r in holder[element] if "reference" in r]
        if not holder[element]:
            del holder[element]


def _report_issues(
    reports: list[SectionReport], metadata: dict[str, Any], rejected: list[Rejection]
) -> list[Issue]:
    issues: list[Issue] = []
    for report in reports:
        line = report.as_dict()
        issues.append(
            Issue(
                IssueCode.INFORMATIONAL,
                f"section {report.number} (LOINC {report.code or 'none'}, template "
                f"{report.template or 'none'}): {line['converted']} of {report.entries} "
                "entries converted",
                f"section[{report.number}]",
                Severity.INFORMATION,
            )
        )
        for skip in report.skipped:
            where = f"section[{skip.section}]" + (f".entry[{skip.entry}]" if skip.entry else "")
            issues.append(
                Issue(
                    IssueCode.INVALID,
                    f"left out (template {skip.template or 'none'}): {skip.rule}",
                    where,
                    Severity.WARNING,
                )
            )
    for error in metadata.get("errors") or []:
        issues.append(
            Issue(
                IssueCode.INVALID,
                f"an entry of template {safe_oid(error.get('template_id')) or 'none'} could "
                f"not be mapped ({_ERROR_TYPE.sub('', str(error.get('error_type')))[:60]})",
                None,
                Severity.WARNING,
            )
        )
    for template, info in sorted((metadata.get("skipped_templates") or {}).items()):
        issues.append(
            Issue(
                IssueCode.NOT_SUPPORTED,
                f"template {safe_oid(template)} has no FHIR mapping here "
                f"({info.get('count', 1)} entr{'y' if info.get('count', 1) == 1 else 'ies'})",
                None,
                Severity.INFORMATION,
            )
        )
    for rejection in rejected:
        issues.append(
            Issue(
                IssueCode.INVALID,
                "a resource the mapper made is not valid R4 and was left out",
                rejection.location,
                Severity.WARNING,
            )
        )
    return issues


def convert_ccda(data: bytes, ctx: ConversionContext, *, strict: bool = False) -> Conversion:
    """Convert one C-CDA document.

    Args:
        data: the document's bytes (its XML declaration names the encoding).
        ctx: partner, zones and receipt time.
        strict: refuse the document if any part of it cannot be converted.

    Raises:
        NormalizationError: unsafe or malformed XML, a header that cannot be converted,
            or (strict) any part left out.
    """
    root = parse_document(data)
    reports = inventory(root)
    result = convert_isolating(root, convert_tree, check_tree, reports)
    metadata = result.get("metadata") or {}
    resources = [e["resource"] for e in result["bundle"].get("entry", []) if "resource" in e]
    unstructured_issues: list[Issue] = []
    if resources and resources[0]["resourceType"] == "Composition":
        unstructured = document_reference(root, resources[0], unstructured_issues)
        if unstructured is not None:
            resources[0] = unstructured
    key, own_id = _document_key(root, data)
    _fix_times(resources, root, ctx)
    renamed = assign_ids(resources, ctx, key)
    resources, rejected = _validated(resources)
    kept = {f"{r['resourceType']}/{r['id']}" for r in resources}
    renamed = {name: ours for name, ours in renamed.items() if ours in kept}
    rewrite_references(resources, renamed)
    _drop_dangling_entries(resources)
    out = BundleBuilder()
    for resource in resources:
        out.add(resource)
    issues = _report_issues(reports, metadata, rejected) + unstructured_issues + out.issues
    out.issues.clear()
    if strict and (rejected or any(i.severity is Severity.WARNING for i in issues)):
        raise NormalizationError(
            [
                Issue(
                    IssueCode.INVALID,
                    "strict mode: the document is refused because part of it could not "
                    "be converted",
                    "ClinicalDocument",
                ),
                *(i for i in issues if i.severity is Severity.WARNING),
            ]
        )
    add_provenance(
        out,
        ctx,
        key=f"ccda|{key}",
        activity=f"converted {_document_type(root)} document",
        source_id=own_id,
    )
    return Conversion(
        bundle=out.bundle(),
        issues=tuple(issues + out.issues),
        rejected=tuple(rejected),
        message_type=_document_type(root),
        control_id=own_id,
        records=1,
        sections=tuple(r.as_dict() for r in reports),
    )
