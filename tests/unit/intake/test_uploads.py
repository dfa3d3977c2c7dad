"""Batch uploads: the names we issue, and which dropped files the drop stage takes as whose
(security review MEDIUM-4), with in-memory stand-ins for the signer, record and partners."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from shared.intake.errors import InvalidUploadRequestError
from shared.intake.models import AdmissionBasis, Upload, UploadRequest
from shared.intake.uploads import UploadService, parse_upload_name, safe_file_name
from shared.security import Partner, Role
from tests.unit.records.fakes import Audit

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DROP = "d" * 32


class Signer:
    """Records what it was asked to sign; the URL says so."""

    def __init__(self) -> None:
        self.signed: list[tuple[str, datetime]] = []

    def sign(self, name: str, expires: datetime) -> str:
        self.signed.append((name, expires))
        return f"https://account.example/ingest-drop/{name}?sig=x"


class Uploads:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Upload] = {}

    def record(self, upload: Upload) -> None:
        # what the table keeps: no name
        self.rows[(upload.partner, upload.id)] = Upload(
            upload.id, upload.partner, upload.name_sha256, upload.issued, upload.expires
        )

    def get(self, partner: str, upload_id: str) -> Upload | None:
        return self.rows.get((partner, upload_id))


class Partners:
    def get(self, partner_id: str) -> Partner | None:
        if partner_id == "viewer":  # registered, but may not submit
            return Partner(id=partner_id, name=partner_id, roles=frozenset({Role.READ}))
        return Partner(id=partner_id, name=partner_id) if partner_id in {"lab", "clinic"} else None


def service(direct: frozenset[str] = frozenset()) -> tuple[UploadService, Signer, Uploads, Audit]:
    signer, uploads, audit = Signer(), Uploads(), Audit()
    return (
        UploadService(
            signer,
            uploads,
            Partners(),
            audit,
            lifetime=timedelta(minutes=15),
            direct_partners=direct,
            clock=lambda: NOW,
        ),
        signer,
        uploads,
        audit,
    )


@pytest.mark.parametrize(
    ("suggested", "safe"),
    [
        ("day1.ndjson.gz", "day1.ndjson.gz"),
        ("../../hosp-b/x.hl7", "x.hl7"),
        ("C:\\exports\\labs 03.csv", "labs_03.csv"),
        ("..", "upload"),
        (".hidden.csv", "hidden.csv"),
        ("Müller, Anna.csv", "M_ller_Anna.csv"),
        ("a\x00b\r\n.json", "a_b_.json"),
        ("", "upload"),
        (None, "upload"),
        ("x" * 300 + ".ndjson.gz", "x" * 118 + ".ndjson.gz"),
    ],
)
def test_suggested_file_names_become_one_safe_segment(suggested: str | None, safe: str) -> None:
    assert safe_file_name(suggested) == safe


def test_issuing_records_the_name_by_digest_then_signs_it_then_audits() -> None:
    uploads_service, signer, uploads, audit = service()
    issued = uploads_service.issue("lab", "../Day 1.ndjson")
    upload = issued.upload
    assert issued.upload.name == f"lab/uploads/{upload.id}/Day_1.ndjson"
    assert len(upload.id) == 32 and parse_upload_name(upload.name) == ("lab", upload.id)
    assert signer.signed == [(upload.name, datetime(2026, 3, 2, 10, 15, tzinfo=UTC))]
    [row] = uploads.rows.values()
    assert row.name == "" and row.name_sha256 == upload.name_sha256  # no file name kept
    assert issued.to_json()["expires"] == "2026-03-02T10:15:00+00:00"
    assert issued.to_json()["headers"] == {"x-ms-blob-type": "BlockBlob"}
    [event] = audit.events
    AuditEvent.model_validate(event)
    assert event["subtype"][0]["code"] == "upload-issue"
    assert event["entity"][0]["what"]["identifier"]["value"] == upload.id
    assert "Day" not in repr(issued) and "sig=" not in repr(issued)  # name and credential
    assert uploads_service.issue("lab", "x.csv").upload.id != upload.id


def test_an_issued_upload_is_admitted_as_its_partners_until_it_expires() -> None:
    uploads_service, _, _, audit = service()
    name = uploads_service.issue("lab", "x.ndjson").upload.name
    admitted = uploads_service.admit(name, DROP, NOW + timedelta(minutes=14))
    assert (admitted.partner, admitted.basis) == ("lab", AdmissionBasis.UPLOAD)
    # last-modified has whole seconds: the SAS's last second still counts...
    assert uploads_service.admit(name, DROP, NOW + timedelta(minutes=15, seconds=59)).basis is (
        AdmissionBasis.UPLOAD
    )
    # ...a write later than that did not come through the URL
    late = uploads_service.admit(name, DROP, NOW + timedelta(minutes=17))
    assert late.basis is AdmissionBasis.REFUSED
    assert late.reason == "the file was written after its upload expired"
    assert len(audit.events) == 2  # the issue and the refusal


def test_files_without_a_matching_upload_are_refused_and_audited_by_ids() -> None:
    uploads_service, _, _, audit = service()
    upload = uploads_service.issue("lab", "x.ndjson").upload
    cases = {
        "clinic/written-by-someone-else.ndjson": "the file is not an issued upload",
        f"clinic/uploads/{upload.id}/x.ndjson": "no upload of this name was issued",  # B's
        f"lab/uploads/{upload.id}/y.ndjson": "no upload of this name was issued",  # renamed
        f"lab/uploads/{'0' * 32}/x.ndjson": "no upload of this name was issued",  # made up
        f"lab/uploads/{upload.id}/x.ndjson/more": "the file is not an issued upload",
        "Smith_John/x.ndjson": "a drop must be under ingest-drop/{partner}/ of a registered",
        "lab": "a drop must be under",
    }
    for name, reason in cases.items():
        admission = uploads_service.admit(name, DROP, NOW)
        assert admission.basis is AdmissionBasis.REFUSED, name
        assert admission.reason.startswith(reason), (name, admission.reason)
    refusals = audit.events[1:]
    assert len(refusals) == len(cases)
    for event in refusals:
        AuditEvent.model_validate(event)
        assert event["outcome"] == "4"
        assert event["entity"][0]["what"]["identifier"]["value"] == DROP
    # the registered partner a folder names is in the event, not as the requestor...
    assert refusals[0]["agent"][1]["who"]["identifier"]["value"] == "clinic"
    assert refusals[0]["agent"][1]["requestor"] is False
    # ...a folder that names no partner (maybe a patient) is not
    assert len(refusals[5]["agent"]) == 1 and "Smith" not in str(refusals[5])
    assert refusals[1]["entity"][0]["detail"][1] == {"type": "upload", "valueString": upload.id}


def test_only_block_blobs_of_partners_that_may_still_submit() -> None:
    uploads_service, _, _, audit = service(direct=frozenset({"viewer"}))
    name = uploads_service.issue("lab", "x.ndjson").upload.name
    # the URL can create a page blob too: terabytes of zeros for the drop stage to read
    page = uploads_service.admit(name, DROP, NOW, block_blob=False)
    assert (page.basis, page.reason) == (AdmissionBasis.REFUSED, "only block blobs are taken")
    viewer = uploads_service.admit("viewer/batch.ndjson", DROP, NOW)
    assert (viewer.basis, viewer.reason) == (
        AdmissionBasis.REFUSED,
        "the partner may not submit data",
    )
    assert [e["subtype"][0]["code"] for e in audit.events[1:]] == ["drop-refused"] * 2


def test_direct_drop_partners_are_trusted_by_folder_and_no_one_else() -> None:
    uploads_service, _, _, audit = service(direct=frozenset({"lab"}))
    direct = uploads_service.admit("lab/2026/03/02/batch.hl7", DROP, NOW)
    assert (direct.partner, direct.basis) == ("lab", AdmissionBasis.FOLDER)
    other = uploads_service.admit("clinic/2026/03/02/batch.hl7", DROP, NOW)
    assert other.basis is AdmissionBasis.REFUSED
    assert len(audit.events) == 1


def test_upload_requests_take_an_optional_file_name_and_nothing_else() -> None:
    assert UploadRequest.from_body(b"").filename is None
    assert UploadRequest.from_body(b'{"filename": "a.csv"}').filename == "a.csv"
    for body in (b"[]", b'{"filename": 3}', b'{"name": "a"}', b"not json", b'"a.csv"'):
        with pytest.raises(InvalidUploadRequestError):
            UploadRequest.from_body(body)
    with pytest.raises(InvalidUploadRequestError):
        UploadRequest.from_body(b'{"filename": "' + b"a" * 1025 + b'"}')


@pytest.mark.parametrize(
    "name", ["lab/../clinic/x.ndjson", "lab/./x.ndjson", "lab//x.ndjson", "lab/a\\..\\x.ndjson"]
)
def test_names_a_url_would_normalize_elsewhere_are_refused(name: str) -> None:
    # A hostile read: p1/../p2/x is read as p2's blob while p1's folder was checked.
    uploads_service, _, _, _ = service(direct=frozenset({"lab"}))
    assert uploads_service.admit(name, DROP, NOW).basis is AdmissionBasis.REFUSED
