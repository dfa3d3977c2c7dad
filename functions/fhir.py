"""The FHIR read API: ``GET /api/fhir/metadata``, ``/api/fhir/{type}/{id}``,
``/_history/{vid}``, ``/_history``, and searches ``/api/fhir/{type}?patient=...``.
Callers need the read, population or admin role and may state only the purposes of use
they are registered for; every patient-data read passes the read scope and consent and
is audited (``shared/records/reads``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import azure.functions as func

from shared import __version__, wiring
from shared.consent import ConsentInputError, ConsentUnavailableError
from shared.consent.actors import partner_actor
from shared.consent.inputs import parse_purpose
from shared.consent.vocabulary import covered_by
from shared.normalize import json_codec
from shared.platform import StorageUnavailableError
from shared.records.capability import capability_statement
from shared.records.everything import parse_everything
from shared.records.reads import Reader
from shared.records.search import Page
from shared.records.search_params import SearchError, parse_search
from shared.security.audit import AdminAction, admin_audit_event
from shared.security.models import Role

from .responses import FHIR_JSON, forbidden, outcome, partner_with_role, public_url, query_params

bp = func.Blueprint()  # type: ignore[no-untyped-call]
_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}\Z")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}\Z")
_READERS = (Role.READ, Role.POPULATION, Role.ADMIN)
_HIDDEN = "no such resource"  # the same words for absent and withheld


def reader_for(req: func.HttpRequest) -> Reader | func.HttpResponse:
    """The caller as a reader (partner and purpose of use), or the 4xx answer: a purpose
    the partner is not registered for is refused (403), whatever the caller claims."""
    partner = partner_with_role(req, *_READERS)
    if isinstance(partner, func.HttpResponse):
        return partner
    allowed = partner.allowed_purposes()
    default = "TREAT" if "TREAT" in allowed or not allowed else sorted(allowed)[0]
    try:
        purpose = parse_purpose(req.headers.get("x-purpose-of-use") or default)
    except ConsentInputError as exc:
        return outcome(400, "value", f"X-Purpose-Of-Use: {exc.diagnostics}")
    # ETREAT is treatment (TREAT covers it); reaching beyond relationships with it is the
    # break-the-glass role's, decided per read.
    if not covered_by(purpose.code, allowed):
        return forbidden(
            req,
            partner.id,
            f"X-Purpose-Of-Use {purpose.code} is not a purpose this partner is registered for "
            f"({', '.join(sorted(allowed)) or 'none'})",
            {"purpose": purpose.code},
        )
    return Reader(partner_actor(partner.id, partner), purpose, partner.id, caller=partner)


def _resource(resource: dict[str, Any]) -> func.HttpResponse:
    meta = resource.get("meta") or {}
    headers = {"ETag": f'W/"{meta.get("versionId", "")}"'}
    if meta.get("lastUpdated"):
        updated = datetime.fromisoformat(str(meta["lastUpdated"]).replace("Z", "+00:00"))
        headers["Last-Modified"] = format_datetime(updated, usegmt=True)
    return func.HttpResponse(json_codec.dumps(resource), mimetype=FHIR_JSON, headers=headers)


def _history(kind: str, ident: str, versions: list[dict[str, Any]]) -> func.HttpResponse:
    entries = []
    for resource in versions:
        meta = resource.get("meta") or {}
        deleted = set(resource) <= {"resourceType", "id", "meta"}
        entry: dict[str, Any] = {
            "fullUrl": f"{kind}/{ident}",
            "request": {"method": "DELETE" if deleted else "PUT", "url": f"{kind}/{ident}"},
            "response": {
                "status": "204" if deleted else "200",
                "etag": f'W/"{meta.get("versionId", "")}"',
                "lastModified": meta.get("lastUpdated"),
            },
        }
        if not deleted:
            entry["resource"] = resource
        entries.append(entry)
    bundle = {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}
    return func.HttpResponse(json_codec.dumps(bundle), mimetype=FHIR_JSON)


def _read(req: func.HttpRequest, history: bool = False) -> func.HttpResponse:
    """Validate, authorize, read; the record's answer or a 4xx/503 OperationOutcome."""
    kind, ident = req.route_params.get("type", ""), req.route_params.get("id", "")
    version = req.route_params.get("vid")
    if not _TYPE.match(kind) or not _ID.match(ident):
        return outcome(400, "value", "expected /fhir/{ResourceType}/{id}")
    reader = reader_for(req)
    if isinstance(reader, func.HttpResponse):
        return reader
    records = wiring.record_reader()
    try:
        if history:
            versions = records.history(reader, kind, ident)
            return (
                _history(kind, ident, versions) if versions else outcome(404, "not-found", _HIDDEN)
            )
        found = records.read(reader, kind, ident, int(version) if version else None)
    except (ConsentUnavailableError, StorageUnavailableError):
        return outcome(503, "transient", "the record cannot be read now")
    return _resource(found) if found else outcome(404, "not-found", _HIDDEN)


@bp.route(route="fhir/metadata", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def fhir_metadata(req: func.HttpRequest) -> func.HttpResponse:
    """The CapabilityStatement."""
    base = public_url(req).split("/metadata")[0]
    return func.HttpResponse(
        json_codec.dumps(capability_statement(base, __version__)), mimetype=FHIR_JSON
    )


def _page_bundle(
    req: func.HttpRequest, echo: tuple[tuple[str, str], ...], page: Page
) -> func.HttpResponse:
    """A searchset Bundle with self and next links, made of the parameters read (never
    the function key, which ``query_params`` leaves out)."""
    base = public_url(req).split("?")[0]
    root = base.split("/fhir/")[0] + "/fhir"
    links = [{"relation": "self", "url": f"{base}?{urlencode(echo)}"}]
    if page.next_page:
        query = urlencode([*echo, ("_page", page.next_page)])
        links.append({"relation": "next", "url": f"{base}?{query}"})
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{root}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in page.resources
        ],
    }
    return func.HttpResponse(json_codec.dumps(bundle), mimetype=FHIR_JSON)


@bp.route(route="fhir/{type}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def fhir_search(req: func.HttpRequest) -> func.HttpResponse:
    """A searchset of one type: ``patient=`` (or ``identifier=`` for Patient) and filters."""
    kind = req.route_params.get("type", "")
    if not _TYPE.match(kind):
        return outcome(400, "value", "expected /fhir/{ResourceType}")
    reader = reader_for(req)
    if isinstance(reader, func.HttpResponse):
        return reader
    query = query_params(req)
    try:
        search = parse_search(kind, query, wiring.consent_policy().zone)
        page = wiring.record_search().run(reader, search)
    except SearchError as exc:
        return outcome(400, "not-supported", str(exc))
    except (ConsentUnavailableError, StorageUnavailableError):
        return outcome(503, "transient", "the record cannot be searched now")
    return _page_bundle(req, search.echo, page)


@bp.route(
    route="fhir/Patient/{id}/$everything", methods=["GET"], auth_level=func.AuthLevel.FUNCTION
)
def fhir_everything(req: func.HttpRequest) -> func.HttpResponse:
    """Everything of one person (the Patients linked by a global identifier), paged."""
    ident = req.route_params.get("id", "")
    if not _ID.match(ident):
        return outcome(400, "value", "expected /fhir/Patient/{id}/$everything")
    reader = reader_for(req)
    if isinstance(reader, func.HttpResponse):
        return reader
    query = query_params(req)
    try:
        asked = parse_everything(ident, query)
        page = wiring.patient_everything().run(reader, asked)
    except SearchError as exc:
        return outcome(400, "not-supported", str(exc))
    except (ConsentUnavailableError, StorageUnavailableError):
        return outcome(503, "transient", "the record cannot be read now")
    if page is None:
        return outcome(404, "not-found", _HIDDEN)
    echo = tuple((k, v) for k in sorted(query) if k != "_page" for v in query[k])
    return _page_bundle(req, echo, page)


@bp.route(route="fhir/Patient/{id}/$purge", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def fhir_purge(req: func.HttpRequest) -> func.HttpResponse:
    """Erase a patient (admin role); the counts of what went, as Parameters."""
    ident = req.route_params.get("id", "")
    if not _ID.match(ident):
        return outcome(400, "value", "expected /fhir/Patient/{id}/$purge")
    partner = partner_with_role(req, Role.ADMIN)
    if isinstance(partner, func.HttpResponse):
        return partner
    try:
        report = wiring.purger().purge(ident, partner_actor(partner.id, partner))
    except (ConsentUnavailableError, StorageUnavailableError):
        return outcome(503, "transient", "the purge stopped part-way; run it again")
    counts = {
        "resources": report.resources,
        "versions": report.versions,
        "payloads": report.payloads,
        "consents": report.consents,
        "sharedPayloadsKept": report.shared_payloads_kept,
        "sharedResourcesKept": report.shared_resources_kept,
    }
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": k, "valueInteger": v} for k, v in counts.items()],
    }
    return func.HttpResponse(json_codec.dumps(body), mimetype=FHIR_JSON)


@bp.route(route="fhir/Patient/{id}/$unlink", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def fhir_unlink(req: func.HttpRequest) -> func.HttpResponse:
    """Separate two Patient records the record took for one person (admin role); the
    body is a Parameters with ``other`` (valueReference to the other Patient)."""
    ident = req.route_params.get("id", "")
    partner = partner_with_role(req, Role.ADMIN)
    if isinstance(partner, func.HttpResponse):
        return partner
    try:
        body = json_codec.loads(req.get_body() or b"{}")
    except (json_codec.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return outcome(400, "structure", "the body must be a FHIR Parameters resource")
    others = [
        str((p.get("valueReference") or {}).get("reference") or "")
        for p in (body.get("parameter") or [] if isinstance(body, dict) else [])
        if isinstance(p, dict) and p.get("name") == "other"
    ]
    other = others[0].removeprefix("Patient/") if others else ""
    if not _ID.match(ident) or not _ID.match(other) or other == ident:
        return outcome(400, "required", "give other: valueReference Patient/{id} of another record")
    try:
        wiring.person_index().unlink(ident, other)
        wiring.audit_log().write(
            admin_audit_event(
                AdminAction.PATIENT_UNLINK,
                partner.id,
                f"Patient/{ident}",
                datetime.now(UTC),
                {"other": f"Patient/{other}"},
            )
        )
    except StorageUnavailableError:
        return outcome(503, "transient", "storage is unavailable; try again later")
    done = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "information",
                "code": "informational",
                "diagnostics": f"Patient/{ident} and Patient/{other} are no longer one person",
            }
        ],
    }
    return func.HttpResponse(json_codec.dumps(done), mimetype=FHIR_JSON)


@bp.route(route="fhir/{type}/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def fhir_read(req: func.HttpRequest) -> func.HttpResponse:
    """The current version of a resource."""
    return _read(req)


@bp.route(
    route="fhir/{type}/{id}/_history/{vid:int}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION
)
def fhir_vread(req: func.HttpRequest) -> func.HttpResponse:
    """One version of a resource."""
    return _read(req)


@bp.route(route="fhir/{type}/{id}/_history", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def fhir_history(req: func.HttpRequest) -> func.HttpResponse:
    """Every version the caller may see, newest first."""
    return _read(req, history=True)
