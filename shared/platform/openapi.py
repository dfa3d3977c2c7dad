"""The HTTP API described as OpenAPI 3.0, served at ``/api/openapi.json``.

Every refusal (4xx) and every "try later" (503) is a FHIR OperationOutcome, whichever
route or layer answers (the host's own 401/404/405/413/429 too), so the document says so
once for all routes; a schemathesis run against the local host checks that no input
gets a 5xx other than a documented 503 and that every answer fits this document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["openapi_document"]

_OUTCOME = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                },
            },
        },
    },
}
_RESOURCE = {"type": "object", "required": ["resourceType"]}
_JSON_OBJECT = {"type": "object"}
_UPLOAD = {
    "type": "object",
    "required": ["id", "url", "blob", "expires", "method", "headers"],
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string", "description": "SAS URL: create or write this one blob"},
        "blob": {"type": "string"},
        "expires": {"type": "string", "format": "date-time"},
        "method": {"type": "string", "enum": ["PUT"]},
        "headers": {"type": "object"},
    },
}
_FHIR = "application/fhir+json"
_HL7 = "x-application/hl7-v2+er7"


def _param(
    name: str, where: str, schema: Mapping[str, Any], required: bool = False
) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema}


_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_TYPE = {"type": "string", "pattern": "^[A-Z][A-Za-z]{1,63}$"}
_PURPOSE = {
    **_param("X-Purpose-Of-Use", "header", {"type": "string", "maxLength": 64}),
    "description": (
        "A v3 ActReason purpose of use the partner is registered for (else 403); ETREAT or "
        "BTG reaches beyond the caller's relationships only with the break-glass role"
    ),
}


def _op(
    summary: str,
    ok: Mapping[str, tuple[str, Mapping[str, Any]] | None],
    params: list[dict[str, Any]] | None = None,
    body: Mapping[str, Mapping[str, Any]] | None = None,
    anonymous: bool = False,
) -> dict[str, Any]:
    """One operation: its successes (status -> media type and schema, or no body), and
    the OperationOutcome refusals every operation shares."""
    responses: dict[str, Any] = {}
    for status, content in ok.items():
        responses[status] = {"description": summary}
        if content is not None:
            media, schema = content
            responses[status]["content"] = {media: {"schema": schema}}
    for status, why in (("4XX", "refused"), ("503", "unavailable; Retry-After says when")):
        responses[status] = {
            "description": why,
            "content": {_FHIR: {"schema": _OUTCOME}, "application/json": {"schema": _OUTCOME}},
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {media: {"schema": schema} for media, schema in body.items()},
        }
    op["security"] = (
        []
        if anonymous
        else [
            {"functionKey": [], "apiKey": []},
            {"functionKey": [], "bearer": []},
        ]
    )
    return op


def openapi_document(server_url: str, version: str) -> dict[str, Any]:
    """The document, with ``server_url`` (…/api) as its server."""
    fhir_ok = {"200": (_FHIR, _RESOURCE)}
    json_ok = {"200": ("application/json", _JSON_OBJECT)}
    paths: dict[str, dict[str, Any]] = {
        "/health": {"get": _op("Storage reachability", json_ok, anonymous=True)},
        "/openapi.json": {"get": _op("This document", json_ok, anonymous=True)},
        "/schemas/intake-request": {
            "get": _op(
                "The JSON Schema of an intake-requests queue message",
                {"200": ("application/schema+json", _JSON_OBJECT)},
                anonymous=True,
            )
        },
        "/ingest": {
            "post": _op(
                "Submit a payload (ingest role)",
                {"202": ("application/json", _JSON_OBJECT)},
                [
                    _param("mapping", "query", {"type": "string", "maxLength": 64}),
                    _param("Idempotency-Key", "header", {"type": "string", "maxLength": 200}),
                    _param("traceparent", "header", {"type": "string", "maxLength": 200}),
                ],
                {
                    _HL7: {"type": "string"},
                    _FHIR: _JSON_OBJECT,
                    "text/csv": {"type": "string"},
                    "application/cda+xml": {"type": "string"},
                },
            )
        },
        "/ingest/uploads": {
            "post": _op(
                "A URL to PUT one batch file to, in the caller's drop folder (ingest role)",
                {"201": ("application/json", _UPLOAD)},
                body={
                    "application/json": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"filename": {"type": "string", "maxLength": 1024}},
                    }
                },
            )
        },
        "/ingest/{id}": {
            "get": _op(
                "An ingestion's journey (its sender only)",
                json_ok,
                [_param("id", "path", {"type": "string", "format": "uuid"})],
            )
        },
        "/ingest/{id}/ack": {
            "get": _op(
                "The application ACK of an HL7 v2 ingestion, once converted (its sender only)",
                {"200": (_HL7, {"type": "string"}), "202": (_FHIR, _RESOURCE)},
                [_param("id", "path", {"type": "string", "format": "uuid"})],
            )
        },
        "/consent/$evaluate": {
            "post": _op(
                "Decide a consent question (read or admin role)",
                {"200": (_FHIR, _RESOURCE)},
                body={_FHIR: _JSON_OBJECT},
            )
        },
        "/cds-services": {"get": _op("CDS Hooks discovery", json_ok, anonymous=True)},
        "/cds-services/patient-consent-consult": {
            "post": _op(
                "CDS Hooks consent consult (read or admin role)",
                json_ok,
                body={"application/json": _JSON_OBJECT},
            )
        },
        "/fhir/metadata": {"get": _op("CapabilityStatement", fhir_ok, anonymous=True)},
        "/fhir/{type}": {
            "get": _op(
                "Search a type (patient=, identifier=, code=, date=, _lastUpdated=)",
                fhir_ok,
                [
                    _param("type", "path", _TYPE),
                    _param("patient", "query", {"type": "string", "maxLength": 80}),
                    _param("code", "query", {"type": "string", "maxLength": 200}),
                    _param("date", "query", {"type": "string", "maxLength": 40}),
                    _param("_count", "query", {"type": "integer"}),
                    _PURPOSE,
                ],
            )
        },
        "/fhir/{type}/{id}": {
            "get": _op(
                "Read",
                fhir_ok,
                [_param("type", "path", _TYPE), _param("id", "path", _ID), _PURPOSE],
            )
        },
        "/fhir/{type}/{id}/_history": {
            "get": _op(
                "Instance history",
                fhir_ok,
                [_param("type", "path", _TYPE), _param("id", "path", _ID), _PURPOSE],
            )
        },
        "/fhir/{type}/{id}/_history/{vid}": {
            "get": _op(
                "Version read",
                fhir_ok,
                [
                    _param("type", "path", _TYPE),
                    _param("id", "path", _ID),
                    _param("vid", "path", {"type": "integer", "minimum": 1}),
                    _PURPOSE,
                ],
            )
        },
        "/fhir/Patient/{id}/$everything": {
            "get": _op("One person's record", fhir_ok, [_param("id", "path", _ID), _PURPOSE])
        },
        "/fhir/Patient/{id}/$purge": {
            "post": _op("Erase a patient (admin role)", fhir_ok, [_param("id", "path", _ID)])
        },
        "/fhir/Patient/{id}/$unlink": {
            "post": _op(
                "Separate two records for good (admin role)",
                fhir_ok,
                [_param("id", "path", _ID)],
                {_FHIR: _JSON_OBJECT},
            )
        },
        "/fhir/$export": {
            "get": _op(
                "Bulk export kick-off (Prefer: respond-async; population or admin role)",
                {"202": None},
                [
                    _param("Prefer", "header", {"type": "string"}),
                    _param("_type", "query", {"type": "string"}),
                ],
            )
        },
        "/fhir/Patient/$export": {
            "get": _op(
                "Patient-level bulk export kick-off (a read role: the persons it relates to)",
                {"202": None},
                [_param("Prefer", "header", {"type": "string"})],
            )
        },
        "/fhir/$export-status/{job}": {
            "get": _op(
                "Export progress or manifest",
                {"200": ("application/json", _JSON_OBJECT), "202": None},
                [_param("job", "path", _ID)],
            ),
            "delete": _op("Cancel an export", {"202": None}, [_param("job", "path", _ID)]),
        },
        "/fhir/$export-file/{job}/{file}": {
            "get": _op(
                "One export file",
                {"200": ("application/fhir+ndjson", {"type": "string"})},
                [_param("job", "path", _ID), _param("file", "path", _ID)],
            )
        },
        "/audit/AuditEvent": {
            "get": _op(
                "Search the audit trail by patient and/or agent (admin role)",
                fhir_ok,
                [
                    _param("patient", "query", {"type": "string", "maxLength": 80}),
                    _param("agent", "query", {"type": "string", "maxLength": 200}),
                    _param("start", "query", {"type": "string", "format": "date"}),
                    _param("end", "query", {"type": "string", "format": "date"}),
                    _param("_count", "query", {"type": "integer"}),
                ],
            )
        },
        "/subscriptions": {
            "post": _op(
                "Create a webhook subscription (its secret is in the answer, once)",
                {"201": ("application/json", _JSON_OBJECT)},
                body={"application/json": _JSON_OBJECT},
            ),
            "get": _op("The caller's subscriptions", json_ok),
        },
        "/subscriptions/{id}": {
            method: _op(
                summary,
                ok,
                [_param("id", "path", _ID)],
                {"application/json": _JSON_OBJECT} if method == "patch" else None,
            )
            for method, summary, ok in (
                ("get", "One subscription", json_ok),
                ("patch", "Change a subscription", json_ok),
                ("delete", "Delete a subscription", {"204": None}),
            )
        },
        "/subscriptions/{id}/$rotate-secret": {
            "post": _op(
                "A new signing secret",
                json_ok,
                [_param("id", "path", _ID), _param("overlapHours", "query", {"type": "number"})],
            )
        },
        "/subscriptions/{id}/$replay": {
            "post": _op(
                "Re-deliver dead letters (admin role)",
                {"202": ("application/json", _JSON_OBJECT)},
                [_param("id", "path", _ID), _param("since", "query", {"type": "string"})],
            )
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "fhir-intake", "version": version},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            }
        },
    }
