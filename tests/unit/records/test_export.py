"""The exporter on fakes: files per type, consent per patient resource, cancel, failure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from shared.consent.models import Policy, PolicyMode
from shared.records import CurrentVersion
from shared.records.export import Exporter
from shared.records.models import ExportJob, ExportStatus

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _row(patient: str | None, deleted: bool = False) -> CurrentVersion:
    return CurrentVersion(1, 1, T0, "h", (), patient, deleted, "c", "e", updated=T0)


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

    def current_rows(self, resource_type: str) -> Iterator[tuple[str, CurrentVersion]]:
        yield from self.rows.get(resource_type, {}).items()

    def read_version(
        self, resource_type: str, resource_id: str, version: int
    ) -> dict[str, Any] | None:
        return {"resourceType": resource_type, "id": resource_id}

    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None:
        return self.rows.get(resource_type, {}).get(resource_id)


class Consents:
    """p2 opted out of everything."""

    def find(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        if "Patient/p2" not in set(keys):
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
    def get(self, partner_id: str) -> None:
        return None


class Jobs:
    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.cancel_after_saves: int | None = None
        self.saves = 0

    def save(self, job: ExportJob) -> None:
        self.saves += 1
        self.job = ExportJob.from_json(job.to_json())

    def get(self, partner: str, job_id: str) -> ExportJob | None:
        if self.cancel_after_saves is not None and self.saves >= self.cancel_after_saves:
            self.job.status = ExportStatus.CANCELLED
        return ExportJob.from_json(self.job.to_json())


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


def _job(level: str = "system", types: list[str] | None = None) -> ExportJob:
    return ExportJob(
        id="j1",
        partner="analytics",
        level=level,
        types=types or [],
        since=None,
        purpose="TREAT",
        request="/fhir/$export",
        transaction_time=T0.isoformat(),
    )


def _exporter(jobs: Jobs, files: Files) -> Exporter:
    return Exporter(
        Record(),
        Consents(),
        Partners(),
        jobs,
        files,  # type: ignore[arg-type]
        Policy(mode=PolicyMode.OPT_OUT),
    )


def test_files_per_type_with_consent_and_audit() -> None:
    jobs, files = Jobs(_job()), Files()
    done = _exporter(jobs, files).run("analytics", "j1")
    assert done is not None and done.status is ExportStatus.COMPLETED
    assert {o["type"]: o["count"] for o in done.outputs} == {
        "Observation": 1,
        "Organization": 1,
        "Patient": 1,
    }
    assert [r["id"] for r in files.written["j1/Observation.ndjson"]] == [
        "o1"
    ]  # o2 withheld, gone deleted
    audit = next(v for k, v in files.written.items() if k.startswith("AuditEvent/"))
    assert len(audit) == 4  # one decision per patient resource: p1, p2, o1, o2


def test_a_patient_export_leaves_out_what_is_in_no_compartment() -> None:
    jobs, files = Jobs(_job("patient", ["Organization", "Observation"])), Files()
    done = _exporter(jobs, files).run("analytics", "j1")
    assert done is not None and [o["type"] for o in done.outputs] == ["Observation"]


def test_cancel_stops_between_types_and_failure_is_reported() -> None:
    jobs, files = Jobs(_job()), Files()
    jobs.cancel_after_saves = 2  # running, then one type done
    stopped = _exporter(jobs, files).run("analytics", "j1")
    assert stopped is not None and stopped.status is ExportStatus.CANCELLED
    assert len([k for k in files.written if k.startswith("j1/")]) == 1
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
