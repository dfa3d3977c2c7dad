"""The exporter on fakes: files per type, consent per patient resource, the job's scope
(population or the caller's persons), slices that resume where time ran out, a
superseded runner, cancel, failure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from shared.consent.models import Policy, PolicyMode
from shared.records import CurrentVersion
from shared.records.export import Exporter
from shared.records.models import ExportJob, ExportStatus
from shared.records.people import Person
from shared.security.models import Partner, Role

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _row(patient: str | None, deleted: bool = False) -> CurrentVersion:
    patients = (patient,) if patient else ()
    return CurrentVersion(1, 1, T0, "h", (), patients, deleted, "c", "e", updated=T0)


class Record:
    def __init__(self) -> None:
        self.rows = {
            "Patient": {"p1": _row("Patient/p1"), "p2": _row("Patient/p2")},
            "Observation": {
                "o1": _row("Patient/p1"),
                "o2": _row("Patient/p2"),
                "gone": _row("Patient/p1", True),
            },
            "Organization": {"org": _row(None)},
        }

    def resource_types(self) -> list[str]:
        return sorted(self.rows)

    def current_rows(
        self, resource_type: str, after: str = ""
    ) -> Iterator[tuple[str, CurrentVersion]]:
        yield from sorted((k, v) for k, v in self.rows.get(resource_type, {}).items() if k > after)

    def read_version(
        self, resource_type: str, resource_id: str, version: int
    ) -> dict[str, Any] | None:
        return {"resourceType": resource_type, "id": resource_id}

    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None:
        return self.rows.get(resource_type, {}).get(resource_id)


class Consents:
    """p2's person opted out of everything (the Consent is on its linked record, q2)."""

    def find(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        if "Patient/q2" not in set(keys):
            return []
        return [
            {
                "resourceType": "Consent",
                "id": "c2",
                "status": "active",
                "scope": {"coding": [{"code": "patient-privacy"}]},
                "policyRule": {"coding": [{"code": "OPTOUT"}]},
            }
        ]

    def put(self, consent: dict[str, Any], keys: Iterable[str]) -> bool:
        return True

    def find_many(self, key_sets: Any) -> dict[frozenset[str], list[dict[str, Any]]]:
        return {k: self.find(k) for k in key_sets}


class Partners:
    def get(self, partner_id: str) -> Partner | None:
        roles = {"analytics": {Role.POPULATION}, "clinic": {Role.READ}}.get(partner_id)
        return Partner(id=partner_id, name=partner_id, roles=frozenset(roles or ()))


class People:
    """p1 came from the clinic, p2 from a lab; p2 is linked to q2 (another record)."""

    def asserted(self, partner_id: str, keys: Any) -> frozenset[str]:
        return frozenset(keys)  # the trust rule itself: tests/unit/records/test_people.py

    def person(self, patient_id: str, memo: Any = None) -> Person:
        source = {"p1": "clinic"}.get(patient_id, "lab")
        ids = (patient_id, "q2") if patient_id == "p2" else (patient_id,)
        return Person(ids, sources=frozenset({source}), keys=frozenset(f"Patient/{i}" for i in ids))


class Jobs:
    """The job row, with an etag that every save changes."""

    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.version = 0
        self.gets = 0
        self.cancel_at_get: int | None = None  # the user cancels before this read
        self.saved_by_another = False  # another runner saves before this one does

    def save(self, job: ExportJob) -> None:
        self.version += 1
        self.job = ExportJob.from_json(job.to_json())

    def advance(self, job: ExportJob) -> bool:
        if self.saved_by_another:
            self.version += 1
        if job.etag != str(self.version):
            return False
        self.save(job)
        return True

    def get(self, partner: str, job_id: str) -> ExportJob | None:
        self.gets += 1
        if self.gets == self.cancel_at_get:
            self.job.status = ExportStatus.CANCELLED
            self.version += 1
        job = ExportJob.from_json(self.job.to_json())
        job.etag = str(self.version)
        return job


class Writer:
    def __init__(self, files: dict[str, list[dict[str, Any]]], name: str) -> None:
        self.lines = files.setdefault(name, [])
        self.count = 0

    def write(self, resource: dict[str, Any]) -> None:
        self.lines.append(resource)
        self.count += 1

    def close(self) -> None:
        return None


class Files:
    def __init__(self) -> None:
        self.written: dict[str, list[dict[str, Any]]] = {}

    def export_file(self, name: str) -> Writer:
        return Writer(self.written, name)

    def audit_file(self, name: str) -> Writer:
        return Writer(self.written, name)


def _job(
    level: str = "system",
    types: list[str] | None = None,
    partner: str = "analytics",
    scope: str = "population",
) -> ExportJob:
    return ExportJob(
        id="j1",
        partner=partner,
        level=level,
        types=types or [],
        since=None,
        purpose="TREAT",
        request="/fhir/$export",
        transaction_time=T0.isoformat(),
        scope=scope,
    )


class Clock:
    """Each reading is a second later: a budget of n seconds covers about n resources."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def _exporter(jobs: Jobs, files: Files, resumed: list[ExportJob] | None = None) -> Exporter:
    return Exporter(
        Record(),
        Consents(),
        Partners(),
        jobs,
        files,  # type: ignore[arg-type]
        Policy(mode=PolicyMode.OPT_OUT),
        resume=(resumed if resumed is not None else []).append,
        people=People(),
        clock=Clock(),
    )


def _exported(files: Files, job: ExportJob) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for output in job.outputs:
        lines = files.written[f"{job.id}/{output['file']}"]
        assert len(lines) == output["count"]
        found.setdefault(output["type"], []).extend(r["id"] for r in lines)
    return found


def test_files_per_type_with_consent_and_audit() -> None:
    jobs, files = Jobs(_job()), Files()
    resumed: list[ExportJob] = []
    done = _exporter(jobs, files, resumed).run("analytics", "j1", budget=1000)
    assert done is not None and done.status is ExportStatus.COMPLETED and resumed == []
    assert jobs.job.status is ExportStatus.COMPLETED and jobs.job.slices == 1
    assert _exported(files, done) == {
        "Observation": ["o1"],  # o2 withheld, gone deleted
        "Organization": ["org"],
        "Patient": ["p1"],
    }
    assert done.withheld == 2
    audit = next(v for k, v in files.written.items() if k.startswith("AuditEvent/"))
    assert len(audit) == 4  # one decision per patient resource: p1, p2, o1, o2


def test_slices_resume_where_time_ran_out_until_everything_is_exported() -> None:
    jobs, files = Jobs(_job()), Files()
    resumed: list[ExportJob] = []
    exporter = _exporter(jobs, files, resumed)
    job = exporter.run("analytics", "j1", budget=3)
    while resumed:
        assert job is not None and job.status is ExportStatus.RUNNING and job.cursor
        job = exporter.run(resumed.pop().partner, "j1", budget=3)
    assert job is not None and job.status is ExportStatus.COMPLETED
    assert job.slices > 2  # the budget cut the walk short more than once
    assert _exported(files, job) == {
        "Observation": ["o1"],
        "Organization": ["org"],
        "Patient": ["p1"],
    }
    names = [o["file"] for o in job.outputs]
    assert len(set(names)) == len(names)  # each slice writes files of its own
    audits = [v for k, v in files.written.items() if k.startswith("AuditEvent/")]
    assert sum(len(a) for a in audits) == 4 and len(audits) == job.slices
    ids = [event["id"] for audit in audits for event in audit]
    assert len(set(ids)) == len(ids)


def test_a_job_left_running_by_the_version_without_slices_starts_over() -> None:
    jobs, files = Jobs(_job()), Files()
    jobs.job.status = ExportStatus.RUNNING
    jobs.job.outputs = [{"type": "Patient", "file": "Patient.ndjson", "count": 2}]
    done = _exporter(jobs, files).run("analytics", "j1", budget=1000)
    assert done is not None and done.status is ExportStatus.COMPLETED
    assert _exported(files, done) == {
        "Observation": ["o1"],
        "Organization": ["org"],
        "Patient": ["p1"],
    }


def test_a_runner_whose_slice_was_saved_by_another_stops() -> None:
    # A message delivered twice (the host died after queueing the next slice): both
    # runners walk the same slice, the first save wins, the second queues nothing.
    jobs, files = Jobs(_job()), Files()
    resumed: list[ExportJob] = []
    jobs.saved_by_another = True
    lost = _exporter(jobs, files, resumed).run("analytics", "j1", budget=3)
    assert resumed == [] and jobs.version == 1  # only the other runner's save
    assert lost is not None and lost.slices == 0 and lost.outputs == []


def test_a_patient_export_leaves_out_what_is_in_no_compartment() -> None:
    jobs, files = Jobs(_job("patient", ["Organization", "Observation"])), Files()
    done = _exporter(jobs, files).run("analytics", "j1", budget=1000)
    assert done is not None and [o["type"] for o in done.outputs] == ["Observation"]


def test_cancel_stops_between_types_and_failure_is_reported() -> None:
    jobs, files = Jobs(_job()), Files()
    resumed: list[ExportJob] = []
    jobs.cancel_at_get = 3  # the job is read, one type is walked, then it is cancelled
    stopped = _exporter(jobs, files, resumed).run("analytics", "j1", budget=1000)
    assert stopped is not None and stopped.status is ExportStatus.CANCELLED
    assert len([k for k in files.written if k.startswith("j1/")]) == 1 and resumed == []
    assert jobs.job.status is ExportStatus.CANCELLED and jobs.job.slices == 0
    failing = Jobs(_job())
    _exporter(failing, Files()).fail("analytics", "j1", "StorageUnavailableError")
    assert (failing.job.status, failing.job.error) == (
        ExportStatus.FAILED,
        "StorageUnavailableError",
    )
    finished = Jobs(_job())
    finished.job.status = ExportStatus.COMPLETED
    _exporter(finished, Files()).fail("analytics", "j1", "late")
    assert finished.job.status is ExportStatus.COMPLETED  # a finished job stays finished


def test_a_read_role_partner_exports_only_the_persons_it_has_a_relationship_with() -> None:
    jobs, files = Jobs(_job("patient", partner="clinic", scope="persons")), Files()
    done = _exporter(jobs, files).run("clinic", "j1", budget=1000)
    assert done is not None and done.status is ExportStatus.COMPLETED
    assert _exported(files, done) == {"Observation": ["o1"], "Patient": ["p1"]}
    assert done.withheld == 0  # p2's data is outside the export, not withheld from it
    audit = next(v for k, v in files.written.items() if k.startswith("AuditEvent/"))
    assert len(audit) == 2  # decisions about p1's data only
