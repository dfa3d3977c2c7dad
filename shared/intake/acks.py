"""Which HL7 ACK a message gets, the same for every channel (HTTP, MLLP).

Codes as HL7 v2 chapter 2 (2.9.2.2) gives them: AE is an error in the message (correct it
before resending), AR a failure unrelated to its content or format (system down: the same
message is likely accepted later, so the sender may resend it unchanged). Commit
(storing): AA, or CA when the message asked for enhanced mode, once the payload is
durably stored; AE/CR with an ERR segment when we refuse it; AR/CE when storage is down
or the same message is being stored right now. Application (after normalization and
consent), from the ingestion's journey: AE when normalization rejected the message or kept
only part of it, AA once consent decided (a consent that withholds data is the patient's
choice, not the sender's error); nothing yet while a stage is pending or being retried.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.pipeline.runner import MAX_DEQUEUE_COUNT

from .errors import SubmissionError
from .hl7_ack import build_ack
from .hl7_header import MessageHeader
from .models import Receipt

__all__ = ["AppOutcome", "application_ack", "application_outcome", "commit_ack", "commit_code"]

_FINAL_CONSENT = {"permitted", "partial", "denied"}
# HL7 table 0357 codes of a header we cannot take (MSH-9 type or event, MSH-11, MSH-12):
# what enhanced mode's CR is for; every other refusal is a CE.
_REJECT_CODES = frozenset({"200", "201", "202", "203"})


def commit_code(
    header: MessageHeader | None,
    *,
    stored: bool,
    refused: SubmissionError | None = None,
    enhanced: bool = False,
) -> str:
    """MSA-1 for storing a message. Original mode: AA stored, AE refused (an error in the
    message: a type we do not convert too, on purpose, since an AR would have engines
    resend it forever), AR not stored for now. Enhanced mode (the message asked for it, or
    the channel is set to it): CA stored, CR for a message type, event, processing id or
    version we do not take, CE for any other refusal and for not stored for now."""
    permanent = refused is not None and not refused.retryable
    if enhanced or (header is not None and header.enhanced):
        if stored:
            return "CA"
        rejected = permanent and refused is not None and refused.hl7_code in _REJECT_CODES
        return "CR" if rejected else "CE"
    return "AA" if stored else "AE" if permanent else "AR"


def commit_ack(
    body: bytes,
    header: MessageHeader | None,
    *,
    receipt: Receipt | None = None,
    refused: SubmissionError | None = None,
    content_encoding: str | None = None,
    enhanced: bool = False,
) -> str:
    """The ACK for storing ``body``: stored (``receipt``), refused, or, with neither,
    storage unavailable. A stored message's ACK is made of its ingestion id and receipt
    time, so a duplicate gets the original's ACK byte for byte."""
    code = commit_code(header, stored=receipt is not None, refused=refused, enhanced=enhanced)
    if receipt is not None:
        text = f"ingestion {receipt.ingestion_id}" + (f"; {receipt.note}" if receipt.note else "")
        return build_ack(
            body,
            code,
            text,
            header=header,
            content_encoding=content_encoding,
            reference=receipt.ingestion_id,
            at=receipt.received,
        )
    if refused is not None:
        return build_ack(
            body,
            code,
            refused.diagnostics,
            refused.hl7_code,
            content_encoding,
            location=refused.location,
            header=header,
        )
    return build_ack(
        body,
        code,
        "storage unavailable; resend later",
        content_encoding=content_encoding,
        header=header,
    )


@dataclass(frozen=True, slots=True)
class AppOutcome:
    """What normalization and consent made of a message, as an application ACK says it."""

    code: str  # AA or AE
    text: str
    location: str | None = None
    error_code: str = "207"


def _first_error(issues_json: Any, default: str = "rejected") -> tuple[str, str | None]:
    try:
        issues = json.loads(issues_json) if isinstance(issues_json, str) and issues_json else []
    except ValueError:
        issues = []
    for issue in issues:
        if isinstance(issue, dict) and issue.get("severity") in ("error", "fatal"):
            location = (issue.get("location") or [None])[0]
            return str(issue.get("diagnostics") or issue.get("code") or "rejected"), location
    return default, None


def _parked(row: Mapping[str, Any]) -> str | None:
    """The stage whose message failed its last attempt (it waits in a poison queue)."""
    for stage in ("normalize", "consent", "store"):
        attempt = row.get(f"{stage}_attempt")
        failed = row.get(f"{stage}_status") == "failed"
        if failed and isinstance(attempt, int) and attempt >= MAX_DEQUEUE_COUNT:
            return stage
    return None


def application_outcome(row: Mapping[str, Any]) -> AppOutcome | None:
    """The application ACK's outcome from an ingestion's journey row; None while pending
    (a stage not run yet, or being retried).

    AE when normalization rejected the message or kept part of it, when consent could not
    place some of it (no patient to tell) or refused a Consent its sender may not give,
    or when the store refused some of it (another partner's resource); AR when a stage
    gave up on it after its last attempt (an internal error: it waits in a poison queue
    and is replayed once fixed); AA once everything permitted is in the record."""
    parked = _parked(row)
    if parked is not None:
        return AppOutcome(
            "AR", f"internal error at {parked}; the message is kept and will be replayed"
        )
    normalized = row.get("normalize_status")
    if normalized == "rejected":
        text, location = _first_error(row.get("normalize_issues"))
        unsupported = text.startswith("unsupported message type")
        return AppOutcome("AE", text, location, "200" if unsupported else "207")
    if normalized not in ("normalized", "partial"):
        return None
    consent = row.get("consent_status")
    if consent not in _FINAL_CONSENT:
        return None
    permitted, denied = row.get("consent_permitted", 0), row.get("consent_denied", 0)
    if permitted and row.get("store_status") != "stored":
        return None  # consent let it through; the record does not hold it yet
    if normalized == "partial":
        text, location = _first_error(row.get("normalize_issues"))
        return AppOutcome("AE", f"converted in part: {text}", location)
    if (
        row.get("consent_unplaced")
        or row.get("consents_refused")
        or row.get("consent_consents_refused")
    ):
        text, location = _first_error(row.get("consent_issues"))
        return AppOutcome("AE", f"not all of it was stored: {text}", location)
    store_error, location = _first_error(row.get("store_issues"), default="")
    if store_error:
        return AppOutcome("AE", f"not all of it was stored: {store_error}", location)
    return AppOutcome("AA", f"converted; {permitted} resources permitted, {denied} withheld")


def application_ack(body: bytes, header: MessageHeader | None, outcome: AppOutcome) -> str:
    """The application ACK (MSA-1 AA or AE) for a message and its outcome."""
    return build_ack(
        body,
        outcome.code,
        outcome.text,
        outcome.error_code,
        location=outcome.location,
        header=header,
    )
