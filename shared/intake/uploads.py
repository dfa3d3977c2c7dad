"""Batch uploads: a partner asks for one and gets a short-lived URL that writes one blob
in its own folder of ``ingest-drop``; the drop stage takes a file as a partner's only
when that name was issued to that partner (security review MEDIUM-4: the folder alone
proved nothing, since anyone able to write the container could choose it).

Names are ``{partner}/uploads/{upload id}/{file name}``. The partner may suggest the file
name (sanitized here; its extension decides the format, as for every drop); we choose
the rest. The URL's SAS grants create and write on that one blob (no read, list, delete
or tags) for ``INTAKE_UPLOAD_SAS_MINUTES``, so partners never need a role on the
container. The record (table ``uploads``, by partner and upload id) holds ids, times and
the name's SHA-256, never the name itself: a partner may name a file after a patient.

A deployment may keep the old rule for named partners (``INTAKE_DIRECT_DROP_PARTNERS``):
their folder proves a file theirs without an upload, for files that only operators (or
an operator-run gateway) can write there. Every other file is refused: reported in
``quarantine/drops/``, audited, never retried.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Protocol

from shared.platform.ports import AuditLog
from shared.security.audit import drop_refused_audit_event, upload_audit_event
from shared.security.models import PARTNER_ID_PATTERN, Role
from shared.security.partners import PartnerLookup

from .models import Admission, AdmissionBasis, IssuedUpload, Upload

__all__ = [
    "UPLOAD_FOLDER",
    "UploadLog",
    "UploadService",
    "UploadSigner",
    "name_digest",
    "parse_upload_name",
    "safe_file_name",
    "upload_name",
]

log = logging.getLogger(__name__)

UPLOAD_FOLDER = "uploads"
MAX_FILE_NAME = 128
DEFAULT_FILE_NAME = "upload"  # no name suggested: the drop stage tells the format by content
# Last-modified times have whole seconds, and a SAS expiry too: a write the SAS allowed
# in its last second must not look late.
WRITE_GRACE = timedelta(minutes=1)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}\Z")
_PARTNER_ID = re.compile(PARTNER_ID_PATTERN)


class UploadSigner(Protocol):
    """Port: a URL that lets its holder create or write exactly one ``ingest-drop`` blob
    until ``expires`` (``UserDelegationUploadSigner`` in Azure, ``AccountKeyUploadSigner``
    on Azurite, which issues user delegation keys only to OAuth callers over HTTPS)."""

    def sign(self, name: str, expires: datetime) -> str:
        """The blob's URL with a SAS for ``name`` (a logical name in ``ingest-drop``)."""


class UploadLog(Protocol):
    """Port: the uploads issued, by partner and upload id (``TableUploadLog``)."""

    def record(self, upload: Upload) -> None:
        """Keep an issued upload (its id, partner, name digest and times)."""

    def get(self, partner: str, upload_id: str) -> Upload | None:
        """The upload with this id issued to this partner, if any."""


def safe_file_name(suggested: str | None) -> str:
    """The partner's suggested file name, made a safe last segment of a blob name.

    Only the last path segment counts; anything but ASCII letters, digits, ``.``, ``_``
    and ``-`` becomes ``_``; leading dots go (no ``..``, no hidden names); a long name
    keeps its extensions (``.ndjson.gz``) and loses the end of its stem. An empty result
    is ``upload``.
    """
    base = re.split(r"[\\/]", suggested or "")[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")
    if len(cleaned) > MAX_FILE_NAME:
        suffix = "".join(PurePosixPath(cleaned).suffixes)[-32:]
        cleaned = cleaned[: MAX_FILE_NAME - len(suffix)] + suffix
    return cleaned or DEFAULT_FILE_NAME


def upload_name(partner: str, upload_id: str, file_name: str) -> str:
    """The one blob name an upload may write: ``{partner}/uploads/{id}/{file name}``."""
    return f"{partner}/{UPLOAD_FOLDER}/{upload_id}/{file_name}"


def parse_upload_name(name: str) -> tuple[str, str] | None:
    """(partner, upload id) when ``name`` has the shape of an upload's name, else None."""
    parts = name.split("/")
    if (
        len(parts) == 4
        and _PARTNER_ID.fullmatch(parts[0])
        and parts[1] == UPLOAD_FOLDER
        and _UPLOAD_ID.match(parts[2])
        and parts[3]
    ):
        return parts[0], parts[2]
    return None


def name_digest(name: str) -> str:
    """What the record keeps of a blob name: its SHA-256, hex."""
    return hashlib.sha256(name.encode()).hexdigest()


class UploadService:
    """Issues batch uploads and tells the drop stage which files are whose."""

    def __init__(
        self,
        signer: UploadSigner,
        uploads: UploadLog,
        partners: PartnerLookup,
        audit: AuditLog,
        *,
        lifetime: timedelta,
        direct_partners: Collection[str] = frozenset(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._signer = signer
        self._uploads = uploads
        self._partners = partners
        self._audit = audit
        self._lifetime = lifetime
        self._direct = frozenset(direct_partners)
        self._clock = clock

    def issue(self, partner: str, file_name: str | None = None) -> IssuedUpload:
        """A new upload for an authenticated partner: its record first (so every blob
        written under the name has one), then the URL, then the AuditEvent.

        Args:
            partner: the caller's partner id (the route checked the ingest role).
            file_name: the name the partner suggests; sanitized (``safe_file_name``).

        Raises:
            StorageUnavailableError: the record, the signing key or the audit trail could
                not be reached; nothing usable was handed out.
        """
        now = self._clock()
        upload_id = uuid.uuid4().hex
        name = upload_name(partner, upload_id, safe_file_name(file_name))
        upload = Upload(
            id=upload_id,
            partner=partner,
            name_sha256=name_digest(name),
            issued=now,
            expires=now + self._lifetime,
            name=name,
        )
        self._uploads.record(upload)
        url = self._signer.sign(name, upload.expires)
        self._audit.write(upload_audit_event(partner, upload_id, upload.expires, now))
        log.info(
            "upload: issued",
            extra={
                "stage": "upload",
                "partner": partner,
                "upload_id": upload_id,
                "outcome": "issued",
                "minutes": int(self._lifetime.total_seconds() // 60),
            },
        )
        return IssuedUpload(upload, url)

    def admit(
        self, name: str, drop_id: str, written: datetime, *, block_blob: bool = True
    ) -> Admission:
        """Whether the dropped blob ``name`` is its folder's partner's: the folder names a
        registered partner that holds the ingest role, the blob is a block blob, and it
        is an upload issued to that partner under exactly this name, written before the
        upload expired, or the deployment trusts that partner's folder. A refusal is
        audited (ids only) and final.

        Args:
            name: the blob's name in ``ingest-drop``.
            drop_id: the drop stage's id for this version of the blob.
            written: the blob's last-modified time (storage's clock, as the SAS expiry).
            block_blob: False for a page or append blob, which an upload URL can also
                create (a sparse page blob of terabytes costs its writer nothing).

        Raises:
            StorageUnavailableError: the partners, the record or the audit trail could not
                be reached (the queue retries the event).
        """
        folder, _, rest = name.partition("/")
        if "\\" in name or any(part in ("", ".", "..") for part in name.split("/")):
            # A URL normalizes p1/../p2/x to p2/x: the folder checked would not be the one read.
            return self._refuse(
                None, drop_id, None, "a drop's name must not hold '.', '..' or empty parts"
            )
        partner = self._partners.get(folder) if rest and _PARTNER_ID.fullmatch(folder) else None
        if partner is None:
            # The folder may be any text (a patient's name): it goes nowhere but the report.
            return self._refuse(
                None,
                drop_id,
                None,
                "a drop must be under ingest-drop/{partner}/ of a registered partner",
            )
        if Role.INGEST not in partner.roles:  # taken away since the upload was issued
            return self._refuse(folder, drop_id, None, "the partner may not submit data")
        parsed = parse_upload_name(name)
        upload_id = parsed[1] if parsed else None
        reason = "the file is not an issued upload (POST /api/ingest/uploads)"
        if not block_blob:
            return self._refuse(folder, drop_id, upload_id, "only block blobs are taken")
        if upload_id is not None:
            issued = self._uploads.get(folder, upload_id)
            if issued is None or not hmac.compare_digest(issued.name_sha256, name_digest(name)):
                reason = "no upload of this name was issued to this folder's partner"
            elif written > issued.expires + WRITE_GRACE:
                reason = "the file was written after its upload expired"
            else:
                return Admission(folder, AdmissionBasis.UPLOAD, upload_id)
        if folder in self._direct:
            return Admission(folder, AdmissionBasis.FOLDER, upload_id)
        return self._refuse(folder, drop_id, upload_id, reason)

    def _refuse(
        self, partner: str | None, drop_id: str, upload_id: str | None, reason: str
    ) -> Admission:
        self._audit.write(
            drop_refused_audit_event(partner, drop_id, upload_id, reason, self._clock())
        )
        return Admission(partner, AdmissionBasis.REFUSED, upload_id, reason)
