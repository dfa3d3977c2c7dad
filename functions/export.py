"""FHIR Bulk Data export: ``GET /api/fhir/$export`` and ``/api/fhir/Patient/$export``
start a job (202 + Content-Location), ``/api/fhir/$export-status/{job}`` reports it (or
cancels it with DELETE), ``/api/fhir/$export-file/{job}/{file}`` serves its NDJSON, and
the ``export`` queue runs it. Only the partner that started a job sees it. A system
export needs the population role (or an operator's admin); a Patient-level export by a
read-role partner takes the persons it has a relationship with (``records/export``)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime

import azure.functions as func

from shared import wiring
from shared.consent.periods import parse_span
from shared.platform import Queue, Setting, StorageUnavailableError
from shared.records.models import ExportJob, ExportStatus
from shared.security.models import Role

from .fhir import reader_for
from .queue_stages import run_stage
from .responses import (
    forbidden,
    outcome,
    partner_with_role,
    public_url,
    query_params,
    url_without_key,
)

bp = func.Blueprint()  # type: ignore[no-untyped-call]
_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}\Z")
_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}


def _kickoff(req: func.HttpRequest, level: str) -> func.HttpResponse:
    reader = reader_for(req)
    if isinstance(reader, func.HttpResponse):
        return reader
    roles = reader.caller.roles if reader.caller else frozenset()
    population = bool(roles & {Role.POPULATION, Role.ADMIN})
    if level == "system" and not population:
        return forbidden(
            req,
            reader.caller.id if reader.caller else "",
            "a system-level $export needs the population role; "
            "Patient/$export exports the persons this partner has a relationship with",
        )
    if "respond-async" not in (req.headers.get("prefer") or ""):
        return outcome(400, "required", "bulk export needs the header Prefer: respond-async")
    query = query_params(req)
    unknown = sorted(set(query) - {"_type", "_since", "_outputFormat"})
    if unknown:
        return outcome(400, "not-supported", f"$export does not take {', '.join(unknown)}")
    if query.get("_outputFormat") and query["_outputFormat"][-1] not in _FORMATS:
        return outcome(400, "not-supported", "_outputFormat: only application/fhir+ndjson")
    types = sorted({t for v in query.get("_type", []) for t in v.split(",") if t})
    if any(not _TYPE.match(t) for t in types):
        return outcome(400, "value", "_type: resource type names, comma-separated")
    since = query["_since"][-1] if query.get("_since") else None
    try:
        if since:
            parse_span(since, UTC)
    except ValueError:
        return outcome(400, "value", "_since: not a FHIR instant")
    job = ExportJob(
        id=uuid.uuid4().hex,
        partner=reader.partner,
        level=level,
        types=types,
        since=since,
        purpose=reader.purpose.code,
        request=url_without_key(req, public_url(req)),
        transaction_time=datetime.now(UTC).isoformat(),
        scope="population" if population else "persons",
    )
    try:
        wiring.export_jobs().save(job)
        wiring.queue_export(job)
    except StorageUnavailableError:
        return outcome(503, "transient", "storage is unavailable; try again later")
    location = f"{public_url(req).split('/fhir/')[0]}/fhir/$export-status/{job.id}"
    return func.HttpResponse(status_code=202, headers={"Content-Location": location})


@bp.route(route="fhir/$export", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def export_system(req: func.HttpRequest) -> func.HttpResponse:
    """Start an export of the whole record the caller may use."""
    return _kickoff(req, "system")


@bp.route(route="fhir/Patient/$export", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def export_patients(req: func.HttpRequest) -> func.HttpResponse:
    """Start an export of all patients' compartments."""
    return _kickoff(req, "patient")


def _job(req: func.HttpRequest) -> ExportJob | func.HttpResponse:
    partner = partner_with_role(req, Role.READ, Role.POPULATION, Role.ADMIN)
    if isinstance(partner, func.HttpResponse):
        return partner
    job = wiring.export_jobs().get(partner.id, req.route_params.get("job", ""))
    if job is None or job.status is ExportStatus.CANCELLED:
        return outcome(404, "not-found", "no such export job")
    return job


@bp.route(
    route="fhir/$export-status/{job}", methods=["GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION
)
def export_status(req: func.HttpRequest) -> func.HttpResponse:
    """202 while running, the manifest when done; DELETE cancels."""
    try:
        job = _job(req)
        if isinstance(job, func.HttpResponse):
            return job
        if req.method == "DELETE":
            job.status = ExportStatus.CANCELLED
            wiring.export_jobs().save(job)
            return func.HttpResponse(status_code=202)
    except StorageUnavailableError:
        return outcome(503, "transient", "storage is unavailable; try again later")
    if job.status is ExportStatus.FAILED:
        return outcome(500, "exception", f"the export failed: {job.error}")
    if job.status is not ExportStatus.COMPLETED:
        progress = job.progress or job.status.value
        return func.HttpResponse(
            status_code=202, headers={"X-Progress": progress, "Retry-After": "2"}
        )
    base = public_url(req).split("/fhir/")[0] + "/fhir"
    manifest = {
        "transactionTime": job.transaction_time,
        "request": job.request,
        "requiresAccessToken": True,
        "output": [
            {
                "type": o["type"],
                "url": f"{base}/$export-file/{job.id}/{o['file']}",
                "count": o["count"],
            }
            for o in job.outputs
        ],
        "error": [],
    }
    return func.HttpResponse(json.dumps(manifest), mimetype="application/json")


@bp.route(
    route="fhir/$export-file/{job}/{file}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION
)
def export_file(req: func.HttpRequest) -> func.HttpResponse:
    """One NDJSON file of a completed export (its owner only)."""
    try:
        job = _job(req)
        if isinstance(job, func.HttpResponse):
            return job
        name = req.route_params.get("file", "")
        if job.status is not ExportStatus.COMPLETED or name not in {o["file"] for o in job.outputs}:
            return outcome(404, "not-found", "no such export file")
        data = wiring.export_file(f"{job.id}/{name}")
    except StorageUnavailableError:
        return outcome(503, "transient", "storage is unavailable; try again later")
    if data is None:
        return outcome(404, "not-found", "no such export file")
    return func.HttpResponse(data, mimetype="application/fhir+ndjson")


@bp.queue_trigger(arg_name="msg", queue_name=Queue.EXPORT.value, connection=Setting.STORAGE.value)
def export_run(msg: func.QueueMessage) -> None:
    """Run an export job's next slice (which queues the one after). A retryable failure
    raises, so the queue runs the slice again from the saved cursor; on the last attempt
    (host.json maxDequeueCount) the job is marked failed, so its status URL answers with
    the error instead of "in progress" for ever."""
    run_stage(msg, Queue.EXPORT)
