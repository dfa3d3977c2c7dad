"""FHIR Bulk Data export of the record, run in slices of bounded time.

A job (``ExportJob``) is accepted over HTTP and run from the ``export`` queue, one slice
per message: a slice walks the index type by type in id order from the job's cursor,
reads each current resource, and writes the ones the caller may use into
``exports/{job}/{type}-{slice}-{runner}.ndjson`` block by block (memory stays flat).
When its time is up (well inside the function timeout, whatever the size of the record)
it saves the cursor and queues the next slice; the manifest lists every file, several per
type for a large record, as Bulk Data allows.

Patient data is within the job's scope first: a ``population`` job (the population role,
or an operator) takes everyone, a ``persons`` job (a read-role partner's Patient-level
export) only the persons the caller has a relationship with (it sent data of one of
their linked Patients, or is registered to them); the rest is not part of its export.
Then it passes the consent engine (``use``, the caller's purpose, against the consents of
the whole person; each person is resolved once per slice, in a bounded cache), and each
decision is written as a patient-specific AuditEvent into the slice's own NDJSON audit
blob (a new name per runner: ``audit`` is immutable in Azure, so nothing is ever written
twice).

A slice saves the job only if the row is as it read it (its etag): a cancel in between,
or a second runner of the same slice (a message delivered again after a crash), makes
the save fail and that runner stops; its files are orphans the export lifecycle rule
removes. A slice that fails is retried by the queue from the saved cursor.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.consent.actors import partner_actor
from shared.consent.audit import consent_audit_event
from shared.consent.engine import decide_consent
from shared.consent.index import ConsentSource
from shared.consent.models import Action, Code, ConsentDecision, ConsentRequest, Effect, Policy
from shared.consent.periods import parse_span
from shared.consent.resources import describe_resource
from shared.consent.vocabulary import ACT_REASON
from shared.security.models import Partner
from shared.security.partners import PartnerLookup
from shared.security.trust import Access, read_access

from .models import CurrentVersion, ExportJob, ExportStatus
from .people import Person
from .reads import reference_keys

__all__ = ["Exporter"]

log = logging.getLogger(__name__)
_CACHED_PATIENTS = 10_000
_PAGE_ROWS = 64  # index rows taken at a time; the deadline is checked between pages
READERS = 8  # resource reads in flight (bench/bench_export.py)
_OVER = (ExportStatus.COMPLETED, ExportStatus.CANCELLED, ExportStatus.FAILED)


class _Record(Protocol):
    def resource_types(self) -> list[str]: ...

    def current_rows(
        self, resource_type: str, after: str = ""
    ) -> Iterator[tuple[str, CurrentVersion]]: ...

    def read_version(
        self, resource_type: str, resource_id: str, version: int
    ) -> dict[str, Any] | None: ...


class _People(Protocol):
    def person(self, patient_id: str, memo: dict[str, Person] | None = None) -> Person: ...

    def asserted(self, partner_id: str, keys: Iterable[str]) -> frozenset[str]: ...


class _Writer(Protocol):
    count: int

    def write(self, resource: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class _Files(Protocol):
    def export_file(self, name: str) -> _Writer: ...

    def audit_file(self, name: str) -> _Writer: ...


class _Jobs(Protocol):
    def save(self, job: ExportJob) -> None: ...

    def advance(self, job: ExportJob) -> bool: ...

    def get(self, partner: str, job_id: str) -> ExportJob | None: ...


class Exporter:
    """Runs export jobs, a slice at a time."""

    def __init__(
        self,
        record: _Record,
        consents: ConsentSource,
        partners: PartnerLookup,
        jobs: _Jobs,
        files: _Files,
        policy: Policy,
        resume: Callable[[ExportJob], None],
        people: _People,
        clock: Callable[[], float] = time.monotonic,
        readers: int = READERS,
    ) -> None:
        self._people = people
        self._record = record
        self._consents = consents
        self._partners = partners
        self._jobs = jobs
        self._files = files
        self._policy = policy
        self._resume = resume
        self._clock = clock
        self._readers = readers

    def run(self, partner: str, job_id: str, budget: float) -> ExportJob | None:
        """Run a job's next slice for about ``budget`` seconds (a resource more at
        least), save where it stopped and queue the next slice (``resume``); None if
        there is no such job.

        Raises:
            StorageUnavailableError, ConsentUnavailableError: retry through the queue.
        """
        job = self._jobs.get(partner, job_id)
        if job is None or job.status in _OVER:
            return job
        if job.status is ExportStatus.ACCEPTED or not job.plan:
            # The first slice (or a job a version without slices left running: it
            # starts over, as it would have then).
            job.status, job.outputs = ExportStatus.RUNNING, []
            job.plan = sorted(job.types or self._record.resource_types())
            job.cursor = [job.plan[0], ""] if job.plan else None
        deadline = self._clock() + budget
        slice_name = f"{job.slices:04d}-{uuid.uuid4().hex[:8]}"
        audit = self._files.audit_file(
            f"AuditEvent/{job.transaction_time[:10].replace('-', '/')}"
            f"/export-{job.id}-{slice_name}.ndjson"
        )
        caller = self._partners.get(job.partner)
        walk = _Walk(
            self._record,
            self._consents,
            self._people,
            self._policy,
            job,
            audit,
            (slice_name, self._readers),
            caller,
        )
        since = parse_span(job.since, UTC)[0] if job.since else None
        while job.cursor is not None and self._clock() < deadline:
            current = self._jobs.get(partner, job_id)
            if current is not None and current.status is ExportStatus.CANCELLED:
                audit.close()
                return current
            kind, after = job.cursor
            output, last = walk.export_type(self._files, kind, after, since, self._clock, deadline)
            if output:
                job.outputs.append(output)
            following = job.plan.index(kind) + 1
            if last is not None:
                job.cursor = [kind, last]
            elif following < len(job.plan):
                job.cursor = [job.plan[following], ""]
            else:
                job.cursor = None
        audit.close()
        job.slices += 1
        job.withheld += walk.withheld
        if job.cursor is None:
            job.status, job.progress = ExportStatus.COMPLETED, "done"
        else:
            job.progress = f"{job.plan.index(job.cursor[0])} of {len(job.plan)} types"
        if not self._jobs.advance(job):
            # Cancelled meanwhile, or another runner saved this slice first: it goes on.
            log.info("export: slice superseded", extra=self._fields(job, "superseded"))
            return self._jobs.get(partner, job_id)
        if job.status is ExportStatus.RUNNING:
            self._resume(job)
            log.info("export: slice done", extra=self._fields(job, "continued"))
        else:
            log.info("export: completed", extra=self._fields(job, "completed"))
        return job

    @staticmethod
    def _fields(job: ExportJob, outcome: str) -> dict[str, Any]:
        return {
            "stage": "export",
            "correlation_id": job.id,
            "partner": job.partner,
            "outcome": outcome,
            "slices": job.slices,
            "files": len(job.outputs),
            "resources": sum(o["count"] for o in job.outputs),
            "withheld": job.withheld,
        }

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
    """One slice's pass over the record."""

    def __init__(
        self,
        record: _Record,
        consents: ConsentSource,
        people: _People,
        policy: Policy,
        job: ExportJob,
        audit: _Writer,
        run: tuple[str, int],
        caller: Partner | None,
    ) -> None:
        self._record = record
        self._slice, self._readers = run
        self._index = consents
        self._people = people
        self._policy = policy
        self._job = job
        self._audit = audit
        self._caller = caller
        self.actor = partner_actor(job.partner, caller)
        self._purpose = Code(ACT_REASON, job.purpose)
        # Per patient: whether the job may take their data, and the person's consents.
        self._consents: OrderedDict[str, tuple[bool, list[dict[str, Any]] | None]] = OrderedDict()
        self._now = datetime.now(UTC)
        self._decisions = 0
        self.withheld = 0

    def export_type(
        self,
        files: _Files,
        kind: str,
        after: str,
        since: datetime | None,
        clock: Callable[[], float],
        deadline: float,
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Export one type from past ``after`` until its end or the deadline: the file's
        manifest entry (None if nothing was written) and the last id done if time ran out
        (None if the type is finished)."""
        name = f"{kind}-{self._slice}.ndjson"
        writer: _Writer | None = None
        rows = iter(self._record.current_rows(kind, after))
        context = contextvars.copy_context()  # log ids and the function's tag, in workers
        with ThreadPoolExecutor(
            self._readers,
            thread_name_prefix="export",
            initializer=lambda: [var.set(value) for var, value in context.items()],
        ) as pool:
            while page := list(itertools.islice(rows, _PAGE_ROWS)):
                wanted = [(ident, row) for ident, row in page if self._wanted(row, since)]
                # The reads overlap (each is a blob round trip); consent and writing stay
                # in id order.
                read = pool.map(lambda item: self._read(kind, *item), wanted)
                self._look_up(pool, wanted)
                for (_, row), resource in zip(wanted, read, strict=True):
                    if resource is not None and (
                        not row.patients or self._permitted(resource, row)
                    ):
                        if writer is None:
                            writer = files.export_file(f"{self._job.id}/{name}")
                        writer.write(resource)
                if clock() >= deadline:
                    return self._close(writer, kind, name), page[-1][0]
        return self._close(writer, kind, name), None

    def _read(self, kind: str, ident: str, row: CurrentVersion) -> dict[str, Any] | None:
        return self._record.read_version(kind, ident, row.version)

    def _wanted(self, row: CurrentVersion, since: datetime | None) -> bool:
        if row.deleted or row.version == 0:
            return False
        if self._job.level == "patient" and not row.patients:
            return False
        return since is None or (row.updated is not None and row.updated >= since)

    @staticmethod
    def _close(writer: _Writer | None, kind: str, name: str) -> dict[str, Any] | None:
        if writer is None:
            return None
        writer.close()
        return {"type": kind, "file": name, "count": writer.count}

    def _look_up(self, pool: ThreadPoolExecutor, rows: list[tuple[str, CurrentVersion]]) -> None:
        """Find the consents of a page's patients not yet cached, overlapped like the
        reads (each is a row, a blob and an index query)."""
        patients = sorted({p for _, row in rows for p in row.patients} - set(self._consents))
        for patient, found in zip(patients, pool.map(self._find, patients), strict=True):
            self._consents[patient] = found
            if len(self._consents) > _CACHED_PATIENTS:
                self._consents.popitem(last=False)

    def _find(self, patient: str) -> tuple[bool, list[dict[str, Any]] | None]:
        """Whether the job may take a patient's data, and the consents of their person
        (under every key of each linked Patient; None: a person too large to see whole,
        whose data is withheld)."""
        person = self._people.person(patient.removeprefix("Patient/"))
        if self._job.scope != "population":
            access = read_access(self._caller, self._job.purpose, person.sources, person.related)
            if access is not Access.RELATIONSHIP:
                return False, []
        return True, None if person.truncated else self._index.find(person.keys)

    def _patient_consents(self, patient: str) -> tuple[bool, list[dict[str, Any]] | None]:
        if patient not in self._consents:  # left out of the cache meanwhile
            self._consents[patient] = self._find(patient)
        self._consents.move_to_end(patient)
        return self._consents[patient]

    def _permitted(self, resource: dict[str, Any], row: CurrentVersion) -> bool:
        """Whether a resource goes into the export: within scope for each of its patients,
        and permitted by each one's consents (every decision audited)."""
        found = [(p, *self._patient_consents(p)) for p in row.patients]
        if not all(in_scope for _, in_scope, _ in found):
            return False  # not part of this caller's export: neither withheld nor audited
        named = reference_keys(resource)
        return all(
            self._decide(
                resource,
                p,
                consents,
                self._people.asserted(
                    row.source, named.get(p, frozenset()) | named.get("", frozenset())
                ),
            )
            for p, _, consents in found
        )

    def _decide(
        self,
        resource: dict[str, Any],
        patient: str,
        consents: list[dict[str, Any]] | None,
        extra: frozenset[str],
    ) -> bool:
        request = ConsentRequest(
            action=Action.USE,
            at=self._now,
            purpose=self._purpose,
            actor=self.actor,
            data=describe_resource(resource, self._policy.zone),
        )
        if consents is None:  # the person is larger than is followed: withheld
            decision = ConsentDecision(Effect.DENY, reasons=("the person spans too many records",))
        else:
            if extra:
                consents = [*consents, *self._index.find(extra)]
            decision = decide_consent(consents, request, self._policy)
        self._decisions += 1
        self._audit.write(
            consent_audit_event(
                work_id=f"export-{self._job.id}-{self._slice}",
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
