"""The auditor's view: ``GET /api/audit/AuditEvent?patient=&agent=&start=&end=&_count=``
(admin role) searches the append-only trail and answers a FHIR searchset Bundle."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import azure.functions as func

from shared import wiring
from shared.platform import StorageUnavailableError
from shared.security.audit import AdminAction, admin_audit_event
from shared.security.models import Role

from .responses import FHIR_JSON, outcome, partner_with_role, query_params

bp = func.Blueprint()  # type: ignore[no-untyped-call]
_KNOWN = {"patient", "agent", "start", "end", "_count"}


@bp.route(route="audit/AuditEvent", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def audit_search(req: func.HttpRequest) -> func.HttpResponse:
    """AuditEvents about a patient and/or by an agent, newest day first (default: the last
    7 days; at most 31)."""
    caller = partner_with_role(req, Role.ADMIN)
    if isinstance(caller, func.HttpResponse):
        return caller
    query = {k: v[-1] for k, v in query_params(req).items()}
    unknown = sorted(set(query) - _KNOWN)
    if unknown:
        return outcome(400, "not-supported", f"unknown parameters: {', '.join(unknown)}")
    try:
        end = date.fromisoformat(query["end"]) if "end" in query else datetime.now(UTC).date()
        start = date.fromisoformat(query["start"]) if "start" in query else end - timedelta(6)
        count = int(query.get("_count", "100"))
        if not 1 <= count <= 1000:
            raise ValueError("_count")
        events = wiring.audit_query().search(
            start, end, query.get("patient"), query.get("agent"), count
        )
        asked: dict[str, str] = {k: query[k] for k in ("patient", "agent") if k in query}
        wiring.audit_log().write(  # the auditors are audited too
            admin_audit_event(
                AdminAction.AUDIT_SEARCH,
                caller.id,
                "AuditEvent",
                datetime.now(UTC),
                {
                    **asked,
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "found": str(len(events)),
                },
            )
        )
    except (ValueError, OverflowError):  # OverflowError: no 7 days before 0001-01-06
        return outcome(
            400, "value", "start and end are dates (YYYY-MM-DD), 1 to 31 days; _count 1-1000"
        )
    except StorageUnavailableError:
        return outcome(503, "transient", "storage is unavailable; retry later")
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(events),
        "entry": [{"fullUrl": f"urn:uuid:{e['id']}", "resource": e} for e in events],
    }
    return func.HttpResponse(json.dumps(bundle), mimetype=FHIR_JSON)
