"""The normalize stage: raw payload in, FHIR R4 Bundle out to consent checking.

Reads the raw blob an envelope names, converts it with the partner's time zone and
the mapping the blob's metadata names, writes the Bundle to ``normalized`` and
enqueues ``consent-check``. Rejected records (or the whole payload) go to
``quarantine`` with their OperationOutcome, and the ingestion's status says why; a
rejection is final, never retried. Storage failures raise, so the queue retries.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from shared.pipeline.journey import IngestionLog, StageReport
from shared.platform.envelope import Envelope, EnvelopeKind
from shared.platform.names import Container, Queue
from shared.platform.ports import EnvelopeSender, PayloadStore
from shared.security.partners import PartnerLookup

from . import json_codec
from .context import ConversionContext
from .errors import IssueCode, NormalizationError
from .models import Conversion, PayloadFormat
from .service import convert_payload

__all__ = ["RAW_METADATA", "NormalizeOutcome", "NormalizeStage"]

log = logging.getLogger(__name__)
RAW_METADATA = ("format", "mapping")  # raw blob metadata the stage reads
SOURCE_ID_CHARS = 200  # of the sender's payload id and type kept on the journey


@dataclass(frozen=True, slots=True)
class NormalizeOutcome:
    """What happened, for the function's log line (ids and counts only)."""

    outcome: str
    records: int
    rejected: int
    resources: int


class NormalizeStage:
    """Runs the stage for one envelope."""

    def __init__(
        self,
        payloads: PayloadStore,
        sender: EnvelopeSender,
        status: IngestionLog,
        partners: PartnerLookup,
    ) -> None:
        self._payloads = payloads
        self._sender = sender
        self._status = status
        self._partners = partners

    def handle(self, envelope: Envelope) -> NormalizeOutcome:
        """Normalize the payload an envelope points at.

        Raises:
            StorageUnavailableError: storage failed; the queue retries the message.
        """
        started = time.perf_counter()
        if envelope.kind is not EnvelopeKind.RAW_RECEIVED or envelope.blob is None:
            error = NormalizationError.at(
                "envelope",
                f"the normalize stage takes raw.received "
                f"envelopes with a blob, got {envelope.kind}",
                IssueCode.NOT_SUPPORTED,
            )
            return self._reject(envelope, error, records=0)
        partner = self._partners.get(envelope.partner)
        if partner is None:
            error = NormalizationError.at(
                "partner", f"partner {envelope.partner!r} is not registered", IssueCode.REQUIRED
            )
            return self._reject(envelope, error, records=0)
        data, metadata, content_type = self._payloads.read(envelope.blob)
        ctx = ConversionContext(
            partner=partner.id,
            zone=ZoneInfo(partner.time_zone) if partner.time_zone else None,
            source=f"{envelope.blob.container}/{envelope.blob.name}",
            received=envelope.created,
            code_systems=partner.code_systems,
            ccda_strict=partner.ccda_strict,
        )
        named = metadata.get("format", "")
        fmt = PayloadFormat(named) if named in PayloadFormat._value2member_map_ else None
        try:
            conversion = convert_payload(
                data, ctx, fmt, content_type=content_type, mapping=metadata.get("mapping")
            )
        except NormalizationError as error:
            return self._reject(envelope, error, records=1)
        outcome = self._accept(envelope, conversion)
        log.info(
            "normalize: %s",
            outcome.outcome,
            extra={
                "stage": "normalize",
                "correlation_id": envelope.correlation_id,
                "partner": envelope.partner,
                "outcome": outcome.outcome,
                "records": outcome.records,
                "rejected": outcome.rejected,
                "resources": outcome.resources,
                "duration_ms": round((time.perf_counter() - started) * 1000),
            },
        )
        return outcome

    def _prefix(self, envelope: Envelope) -> str:
        return f"{envelope.partner}/{envelope.created:%Y/%m/%d}/{envelope.correlation_id}"

    def _accept(self, envelope: Envelope, conversion: Conversion) -> NormalizeOutcome:
        prefix = self._prefix(envelope)
        for number, rejection in enumerate(conversion.rejected, start=1):
            self._payloads.write(
                Container.QUARANTINE,
                f"{prefix}/record-{number:05d}.json",
                json.dumps(
                    {
                        "location": rejection.location,
                        "outcome": rejection.to_operation_outcome(),
                        "raw": envelope.blob.model_dump() if envelope.blob else None,
                    }
                ).encode(),
                "application/json",
            )
        ref = self._payloads.write(
            Container.NORMALIZED,
            f"{prefix}.json",
            json_codec.dumps(conversion.bundle).encode(),
            "application/fhir+json",
            metadata={"message_type": conversion.message_type[:200]},
        )
        self._sender.send(Queue.CONSENT_CHECK, envelope.next(EnvelopeKind.BUNDLE_NORMALIZED, ref))
        outcome = "partial" if conversion.rejected else "normalized"
        summary = conversion.summary()
        # Rejections first: the journey keeps the first issues when they are too many.
        issues = [
            {**i.to_fhir(), "severity": "error"} for r in conversion.rejected for i in r.issues
        ]
        issues += [i.to_fhir() for i in conversion.issues]
        self._status.record(
            envelope.partner,
            envelope.correlation_id,
            StageReport(
                stage="normalize",
                outcome=outcome,
                issues=issues,
                counts={
                    "records": summary["records"],
                    "rejected": summary["rejected"],
                    "resources": summary["resources"],
                },
                # The sender's own id and type of the payload, which the console searches
                # by on every channel (MSH-10, a Bundle's id, a document's id): ids only.
                labels={
                    "source_id": (conversion.control_id or "")[:SOURCE_ID_CHARS],
                    "message_type": conversion.message_type[:SOURCE_ID_CHARS],
                },
            ),
        )
        return NormalizeOutcome(
            outcome, summary["records"], summary["rejected"], summary["resources"]
        )

    def _reject(
        self, envelope: Envelope, error: NormalizationError, records: int
    ) -> NormalizeOutcome:
        outcome = error.to_operation_outcome()
        self._payloads.write(
            Container.QUARANTINE,
            f"{self._prefix(envelope)}/payload.json",
            json.dumps(
                {
                    "location": "payload",
                    "outcome": outcome,
                    "raw": envelope.blob.model_dump() if envelope.blob else None,
                }
            ).encode(),
            "application/json",
        )
        self._status.record(
            envelope.partner,
            envelope.correlation_id,
            StageReport(
                stage="normalize",
                outcome="rejected",
                issues=outcome["issue"],
                counts={"records": records, "rejected": records, "resources": 0},
            ),
        )
        log.warning(
            "normalize: rejected",
            extra={
                "stage": "normalize",
                "correlation_id": envelope.correlation_id,
                "partner": envelope.partner,
                "outcome": "rejected",
                "issues": len(error.issues),
                "first_issue_code": error.issues[0].code.value,
            },
        )
        return NormalizeOutcome("rejected", records, records, 0)
