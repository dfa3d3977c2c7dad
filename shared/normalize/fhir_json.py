"""FHIR R4 JSON from partners (a resource, a batch or transaction Bundle, or NDJSON) into
our transaction Bundle.

Structure is validated with ``fhir.resources`` (R4B models, compatible with R4), plus
what it does not check: required bindings, reference format, and ``urn:uuid``
references that must resolve inside a transaction. Then normalized: systems to their
canonical URIs (bare OIDs to ``urn:oid:``), strings trimmed, and ids made ours: every id
is namespaced by the sending partner (two partners' ``Patient/1`` never collide, and no
partner can name another partner's resource), and so is every relative reference,
inside contained resources too. A resource without id gets one from its content; a
Patient without id but with an identifier gets the id the HL7 v2 path gives the
partner's Patient with that identifier.

A transaction is all or nothing; a batch, a collection or NDJSON lose only their bad
entries, each reported with its JSON path. Issue texts say where and which rule, never
the value (they are kept in the ingestion's status, which ``$purge`` does not erase; the
value stays in the raw payload the quarantine record points at, which it does). A method
named in a text is one of ours, matched exactly.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from . import json_codec
from .context import BundleBuilder, ConversionContext
from .errors import Issue, IssueCode, NormalizationError
from .fhir_rules import REQUIRED_BINDINGS, canonical_system
from .ids import SSN_SYSTEM, patient_id, resource_id
from .models import Conversion, Rejection
from .payload import read_utf8
from .provenance import add_provenance

__all__ = ["MAX_FHIR_BYTES", "convert_fhir_json", "validate_resource"]

MAX_FHIR_BYTES = 64 * 1024 * 1024
_RELATIVE = re.compile(
    r"^(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?\Z"
)
_ABSOLUTE = re.compile(r"^https?://[^\s/]+(/\S*)?\Z")
_UUID = re.compile(
    r"^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)


def _records(data: bytes) -> tuple[list[tuple[str, Any]], str]:
    """JSON values with their locations, and the payload kind ("json" or "ndjson")."""
    text = read_utf8(data, MAX_FHIR_BYTES, "FHIR JSON payload")
    if not text.strip():
        raise NormalizationError.at(None, "the payload is empty", IssueCode.REQUIRED)
    try:
        return [("$", json_codec.loads(text))], "json"
    except json_codec.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise NormalizationError.at(
                f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}"
            ) from exc
    except RecursionError as exc:
        raise NormalizationError.at("$", "JSON nested too deeply", IssueCode.TOO_COSTLY) from exc
    records: list[tuple[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", json_codec.loads(line)))
        except json_codec.JSONDecodeError as exc:
            records.append((f"line {number}", _BadJson(exc.msg, exc.colno)))
        except RecursionError:
            records.append((f"line {number}", _BadJson("nested too deeply", 1)))
    return records, "ndjson"


class _BadJson:
    def __init__(self, message: str, column: int) -> None:
        self.message, self.column = message, column


def _clean(value: Any, key: str = "") -> Any:
    """Trim strings and canonicalize ``system`` values, recursively."""
    if isinstance(value, str):
        stripped = value if key == "div" else value.strip()
        return canonical_system(stripped) if key == "system" else stripped
    if isinstance(value, list):
        return [_clean(v, key) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v, k) for k, v in value.items()}
    return value


def _validation_issues(exc: ValidationError, path: str) -> list[Issue]:
    """The model's findings by path. Its messages state the rule; one that quotes the
    value it was given (a custom validator's) is replaced by the rule's name, since issue
    texts reach the ingestion's status, which ``$purge`` keeps."""
    issues = []
    for error in exc.errors()[:20]:
        where = path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        text = error["msg"].removeprefix("Value error, ")
        given = error.get("input")
        if isinstance(given, str | int | float) and str(given) and str(given) in text:
            text = f"the value is not valid here ({error['type']})"
        issues.append(Issue(code=IssueCode.STRUCTURE, diagnostics=text, location=where))
    return issues


def _binding_issues(resource: dict[str, Any], path: str) -> list[Issue]:
    """Required bindings the model does not check; the text names the element and the
    codes it takes, never the value sent (the partner has its payload, and the status
    row outlives ``$purge``)."""
    kind = resource.get("resourceType", "")
    issues = []
    for (rtype, element), allowed in REQUIRED_BINDINGS.items():
        if rtype == kind and element in resource and resource[element] not in allowed:
            issues.append(
                Issue(
                    code=IssueCode.CODE_INVALID,
                    location=f"{path}.{element}",
                    diagnostics=f"the value is not allowed: {kind}.{element} takes "
                    f"one of {', '.join(sorted(allowed))}",
                )
            )
    return issues


class _NoResource:
    def __init__(self, method: str) -> None:
        self.method = method.upper()


def _check(resource: Any, path: str) -> tuple[dict[str, Any] | None, list[Issue]]:
    if isinstance(resource, _NoResource):
        if resource.method in {"GET", "HEAD", "DELETE", "PATCH"}:
            text = (
                f"{resource.method} entries are not accepted: this service takes data in "
                "(reads and deletions go through the record API)"
            )
            return None, [
                Issue(
                    code=IssueCode.NOT_SUPPORTED,
                    location=f"{path}.request.method",
                    diagnostics=text,
                )
            ]
        return None, [
            Issue(code=IssueCode.REQUIRED, location=path, diagnostics="the entry has no resource")
        ]
    if isinstance(resource, _BadJson):
        return None, [
            Issue(
                code=IssueCode.STRUCTURE,
                location=f"{path}, column {resource.column}",
                diagnostics=f"not valid JSON: {resource.message}",
            )
        ]
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return _refused(
            IssueCode.STRUCTURE, path, "expected a FHIR resource: a JSON object with resourceType"
        )
    try:
        resource = _clean(resource)
    except RecursionError:
        return _refused(IssueCode.TOO_COSTLY, path, "resource nested too deeply")
    try:
        model = get_fhir_model_class(resource["resourceType"])
    except (KeyError, ValueError, AttributeError):
        return _refused(
            IssueCode.NOT_SUPPORTED,
            f"{path}.resourceType",
            "the resourceType is not a resource type this service validates "
            "(not in R4, or dropped by R4B)",
        )
    for n, inner in enumerate(resource.get("contained") or ()):
        try:
            get_fhir_model_class(inner.get("resourceType") if isinstance(inner, dict) else "")
        except (KeyError, ValueError, AttributeError):
            return _refused(
                IssueCode.NOT_SUPPORTED,
                f"{path}.contained[{n}].resourceType",
                "a contained resource's resourceType is not a resource type this service validates",
            )
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return None, _validation_issues(exc, path)
    except KeyError:  # the models look nested resources' classes up by name (Bundle, Parameters)
        return _refused(
            IssueCode.NOT_SUPPORTED,
            path,
            "a nested resource's resourceType is not a resource type this service validates",
        )
    except RecursionError:
        return _refused(IssueCode.TOO_COSTLY, path, "resource nested too deeply")
    issues = _binding_issues(resource, path)
    return (None, issues) if issues else (resource, [])


def validate_resource(resource: Any, path: str) -> tuple[dict[str, Any] | None, list[Issue]]:
    """One resource checked with the full R4B model and our required bindings, with its
    strings trimmed and systems canonical: (the resource, []) or (None, why not).
    Other converters whose output is not valid by construction use it too (C-CDA)."""
    return _check(resource, path)


def _refused(code: IssueCode, location: str, text: str) -> tuple[None, list[Issue]]:
    """A resource refused for one reason, at one place."""
    return None, [Issue(code=code, location=location, diagnostics=text)]


def _our_id(resource: dict[str, Any], ctx: ConversionContext) -> str:
    kind = resource["resourceType"]
    if resource.get("id"):
        return resource_id(ctx.partner, kind, "id", resource["id"])
    if kind == "Patient":
        for ident in resource.get("identifier", []):
            system, value = ident.get("system"), ident.get("value")
            if value and system and system != SSN_SYSTEM:
                return patient_id(ctx.partner, system, value)
    content = json_codec.dumps(resource, sort_keys=True).encode()
    return resource_id(ctx.partner, kind, "content", hashlib.sha256(content).hexdigest())


def _references(value: Any, path: str, found: list[tuple[str, dict[str, Any]]]) -> None:
    """Every Reference in a value, contained resources' included (their references are
    the partner's too, and must not name anything outside its name space)."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            found.append((f"{path}.reference", value))
        for key, item in value.items():
            _references(item, f"{path}.{key}", found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _references(item, f"{path}[{index}]", found)


def _entries(root: Any, path: str) -> tuple[list[tuple[str, Any, str | None]], str | None]:
    """(path, resource, fullUrl) for each resource; and the Bundle type if a Bundle."""
    if isinstance(root, dict) and root.get("resourceType") == "Bundle":
        kind = root.get("type")
        items: list[tuple[str, Any, str | None]] = []
        for index, entry in enumerate(root.get("entry") or []):
            where = f"{path}.entry[{index}]"
            if not isinstance(entry, dict) or "resource" not in entry:
                method = (
                    (entry.get("request") or {}).get("method") if isinstance(entry, dict) else None
                )
                items.append((where, _NoResource(str(method or "")), None))
                continue
            items.append((f"{where}.resource", entry["resource"], entry.get("fullUrl")))
        return items, kind if isinstance(kind, str) else "collection"
    return [(path, root, None)], None


def convert_fhir_json(data: bytes, ctx: ConversionContext) -> Conversion:
    """Validate and normalize a FHIR JSON payload.

    Raises:
        NormalizationError: nothing could be accepted (every record was bad, a
            transaction had a bad entry, or the payload is not JSON).
    """
    records, payload_kind = _records(data)
    items: list[tuple[str, Any, str | None]] = []
    bundle_kinds: set[str] = set()
    for path, root in records:
        entries, bundle_kind = _entries(root, path)
        if bundle_kind:
            bundle_kinds.add(bundle_kind)
        items.extend(entries)
    atomic = "transaction" in bundle_kinds and payload_kind == "json"
    accepted: list[tuple[str, dict[str, Any], str | None]] = []
    rejected: list[Rejection] = []
    for path, resource, full_url in items:
        clean, issues = _check(resource, path)
        if clean is None:
            rejected.append(Rejection(location=path, issues=tuple(issues)))
        else:
            accepted.append((path, clean, full_url))
    # Our ids, and where each of the partner's ways of naming a resource now points.
    targets: dict[str, str] = {}
    for _, resource, full_url in accepted:
        our = _our_id(resource, ctx)
        ref = f"{resource['resourceType']}/{our}"
        if resource.get("id"):
            targets[f"{resource['resourceType']}/{resource['id']}"] = ref
        if full_url:
            targets[full_url] = ref
        resource["_our_id"] = our
    out = BundleBuilder()
    resolved = []
    for path, resource, full_url in accepted:
        problems = _rewrite_references(resource, path, targets, ctx)
        if problems:
            rejected.append(Rejection(location=path, issues=tuple(problems)))
        else:
            resolved.append((path, resource, full_url))
    accepted = resolved
    if rejected and (atomic or not accepted):
        issues = [i for r in rejected for i in r.issues]
        if atomic:
            issues.insert(
                0,
                Issue(
                    code=IssueCode.INVALID,
                    location="$",
                    diagnostics="a transaction is accepted whole or not at all; "
                    f"{len(rejected)} entr{'y' if len(rejected) == 1 else 'ies'} failed",
                ),
            )
        raise NormalizationError(issues)
    for path, resource, _ in accepted:
        our = resource.pop("_our_id")
        if resource.get("id") and resource["id"] != our:
            resource.setdefault("meta", {})["source"] = (
                f"urn:fhir-intake:partner:{ctx.partner}#{resource['resourceType']}/{resource['id']}"
            )
        resource["id"] = our
        kept = out.get({"reference": f"{resource['resourceType']}/{our}"})
        if kept is not None and kept != resource:
            out.warn(
                path,
                f"this {resource['resourceType']} has the same identifier as an "
                "earlier one in the payload; they are one record and the first was kept",
            )
        out.add(resource)
    digest = hashlib.sha256(data).hexdigest()[:32]
    source_id = (
        records[0][1].get("id")
        if (payload_kind == "json" and isinstance(records[0][1], dict))
        else None
    )
    add_provenance(
        out,
        ctx,
        key=f"fhir|{digest}",
        activity=f"validated FHIR R4 {payload_kind}",
        source_id=source_id or f"sha256:{digest}",
    )
    return Conversion(
        bundle=out.bundle(),
        issues=tuple(out.issues),
        rejected=tuple(rejected),
        message_type=f"FHIR {'/'.join(sorted(bundle_kinds)) or payload_kind}",
        control_id=source_id,
        records=len(items),
    )


def _rewrite_references(
    resource: dict[str, Any], path: str, targets: dict[str, str], ctx: ConversionContext
) -> list[Issue]:
    found: list[tuple[str, dict[str, Any]]] = []
    _references({k: v for k, v in resource.items() if k != "_our_id"}, path, found)
    problems = []
    for where, holder in found:
        ref = holder["reference"]
        if ref.startswith("#"):
            continue
        if ref in targets:
            holder["reference"] = targets[ref]
        elif _UUID.match(ref):
            problems.append(
                Issue(
                    code=IssueCode.INVALID,
                    location=where,
                    diagnostics="the urn:uuid: reference names no entry of this Bundle",
                )
            )
        elif (relative := _RELATIVE.match(ref)) is not None:
            holder["reference"] = f"{relative['type']}/" + resource_id(
                ctx.partner, relative["type"], "id", relative["id"]
            )
        elif _ABSOLUTE.match(ref) or ref.startswith("urn:oid:"):
            continue  # a resource on another server: kept as the partner wrote it
        else:
            problems.append(
                Issue(
                    code=IssueCode.STRUCTURE,
                    location=where,
                    diagnostics="the value is not a reference: expected Type/id, "
                    "an absolute URL, urn:uuid: or #contained",
                )
            )
    return problems
