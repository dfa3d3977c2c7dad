"""FHIR Bulk Data export of the record: one NDJSON file per resource type, streamed.

A job (``ExportJob``) is accepted over HTTP and run from the ``export`` queue. It walks
the index type by type, page by page, reads each current resource, and writes the ones
the caller may use into ``exports/{job}/{type}.ndjson`` block by block, so memory stays
flat for any size of record. Patient data passes the consent engine (``use``, the
caller's purpose; each patient's consents are looked up once, in a bounded cache), and
each decision is written as a patient-specific AuditEvent into one NDJSON audit blob for
the job, itself streamed. A cancelled job stops at the next type; a job that fails is
retried by the queue and starts over (its files are replaced).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.consent.actors import partner_actor
from shared.consent.audit import consent_audit_event
from shared.consent.engine import decide_consent
from shared.consent.index import ConsentSource
from shared.consent.models import Action, Code, ConsentRequest, Policy
from shared.consent.periods import parse_span
from shared.consent.resources import describe_resource
from shared.consent.vocabulary import ACT_REASON
from shared.security.partners import PartnerLookup

from .models import CurrentVersion, ExportJob, ExportStatus

__all__ = ["Exporter"]

log = logging.getLogger(__name__)
_CACHED_PATIENTS = 10_000


class _Record(Protocol):
    def resource_types(self) -> list[str]: ...

    def current_rows(self, resource_type: str) -> Iterator[tuple[str, CurrentVersion]]: ...

    def read_version(
        self, resource_type: str, resource_id: str, version: int
    ) -> dict[str, Any] | None: ...

    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None: ...


class _Writer(Protocol):
    count: int

    def write(self, resource: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class _Files(Protocol):
    def export_file(self, name: str) -> _Writer: ...

    def audit_file(self, name: str) -> _Writer: ...


class _Jobs(Protocol):
    def save(self, job: ExportJob) -> None: ...

    def get(self, partner: str, job_id: str) -> ExportJob | None: ...


class Exporter:
    """Runs export jobs."""

    def __init__(
        self,
        record: _Record,
        consents: ConsentSource,
        partners: PartnerLookup,
        jobs: _Jobs,
        files: _Files,
        policy: Policy,
    ) -> None:
        self._record = record
        self._consents = consents
        self._partners = partners
        self._jobs = jobs
        self._files = files
        self._policy = policy

    def run(self, partner: str, job_id: str) -> ExportJob | None:
        """Run one job to its end; None if there is no such job.

        Raises:
            StorageUnavailableError, ConsentUnavailableError: retry through the queue.
        """
        job = self._jobs.get(partner, job_id)
        if job is None or job.status in (ExportStatus.COMPLETED, ExportStatus.CANCELLED):
            return job
        job.status, job.outputs, job.error = ExportStatus.RUNNING, [], None
        self._jobs.save(job)
        since = parse_span(job.since, UTC)[0] if job.since else None
        types = job.types or self._record.resource_types()
        audit = self._files.audit_file(
            f"AuditEvent/{job.transaction_time[:10].replace('-', '/')}/export-{job.id}.ndjson"
        )
        walk = _Walk(self._record, self._consents, self._policy, job, audit)
        walk.actor = partner_actor(job.partner, self._partners.get(job.partner))
        for number, kind in enumerate(sorted(types), start=1):
            current = self._jobs.get(partner, job_id)
            if current is not None and current.status is ExportStatus.CANCELLED:
                audit.close()
                return current
            count = walk.export_type(self._files, kind, since)
            if count:
                job.outputs.append({"type": kind, "file": f"{kind}.ndjson", "count": count})
            job.progress = f"{number} of {len(types)} types"
            self._jobs.save(job)
        audit.close()
        job.status, job.progress = ExportStatus.COMPLETED, "done"
        self._jobs.save(job)
        log.info(
            "export: completed",
            extra={
                "stage": "export",
                "correlation_id": job.id,
                "partner": partner,
                "outcome": "completed",
                "files": len(job.outputs),
                "resources": sum(o["count"] for o in job.outputs),
                "withheld": walk.withheld,
            },
        )
        return job

    def fail(self, partner: str, job_id: str, reason: str) -> None:
        """Mark a job failed (its last attempt failed), so its status says so.

        Raises:
            StorageUnavailableError: storage failed.
        """
        job = self._jobs.get(partner, job_id)
        if job is None or job.status in (ExportStatus.COMPLETED, ExportStatus.CANCELLED):
            return
        job.status, job.error, job.progress = ExportStatus.FAILED, reason, "failed"
        self._jobs.save(job)


class _Walk:
    """One job's pass over the record."""

    def __init__(
        self,
        record: _Record,
        consents: ConsentSource,
        policy: Policy,
        job: ExportJob,
        audit: _Writer,
    ) -> None:
        self._record = record
        self._index = consents
        self._policy = policy
        self._job = job
        self._audit = audit
        self.actor = partner_actor(job.partner, None)
        self._purpose = Code(ACT_REASON, job.purpose)
        self._consents: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._now = datetime.now(UTC)
        self._decisions = 0
        self.withheld = 0

    def open(self, files: _Files, kind: str) -> _Writer:
        return files.export_file(f"{self._job.id}/{kind}.ndjson")

    def export_type(self, files: _Files, kind: str, since: datetime | None) -> int:
        writer: _Writer | None = None
        for ident, row in self._record.current_rows(kind):
            if row.deleted or row.version == 0:
                continue
            if self._job.level == "patient" and not row.patient:
                continue
            if since is not None and (row.updated is None or row.updated < since):
                continue
            resource = self._record.read_version(kind, ident, row.version)
            if resource is None or not self._permitted(resource, row.patient):
                continue
            if writer is None:
                writer = self.open(files, kind)
            writer.write(resource)
        if writer is None:
            return 0
        writer.close()
        return writer.count

    def _patient_consents(self, patient: str) -> list[dict[str, Any]]:
        if patient in self._consents:
            self._consents.move_to_end(patient)
            return self._consents[patient]
        keys = {patient}
        kind, _, ident = patient.partition("/")
        row = self._record.current(kind, ident)
        holder = self._record.read_version(kind, ident, row.version) if row else None
        for identifier in (holder or {}).get("identifier") or ():
            if identifier.get("value"):
                keys.add(f"{identifier.get('system', '')}|{identifier['value']}")
        found = self._index.find(keys)
        self._consents[patient] = found
        if len(self._consents) > _CACHED_PATIENTS:
            self._consents.popitem(last=False)
        return found

    def _permitted(self, resource: dict[str, Any], patient: str | None) -> bool:
        if patient is None:
            return True
        request = ConsentRequest(
            action=Action.USE,
            at=self._now,
            purpose=self._purpose,
            actor=self.actor,
            data=describe_resource(resource, self._policy.zone),
        )
        decision = decide_consent(self._patient_consents(patient), request, self._policy)
        self._decisions += 1
        self._audit.write(
            consent_audit_event(
                work_id=f"export-{self._job.id}",
                number=self._decisions,
                decision=decision,
                action=Action.USE.value,
                purpose=self._purpose,
                actor=self.actor,
                policy=self._policy,
                recorded=self._now,
                patient=patient,
                resources=[f"{resource.get('resourceType')}/{resource.get('id')}"],
                observer="fhir-intake $export",
            )
        )
        if not decision.permitted:
            self.withheld += 1
        return decision.permitted
