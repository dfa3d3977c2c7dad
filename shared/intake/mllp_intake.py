"""One MLLP message in, its ACK out: the same submission service as HTTP, as the partner
the listener is configured for, answered only once the payload is durably stored.

The socket server (``mllp_listener``) calls this from a worker thread per message, one
message at a time per connection; one frame is one message. Original mode: AA once
stored, AE with ERR when refused, AR when it cannot be stored now (storage down, or the
same message being stored by another connection: the sender resends it unchanged; a
resend of a stored message is a duplicate and gets the original's ACK). Enhanced mode
(MSH-15/16 valued, or a listener set to it): the commit ACK (CA/CR/CE) as MSH-15 asks,
then the application ACK (AA/AE) as MSH-16 asks once normalization and consent are done;
the server sends that one to the partner's return address, or on the connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.pipeline.journey import IngestionLog
from shared.platform.errors import StorageUnavailableError
from shared.platform.telemetry import server_span
from shared.security.models import Role
from shared.security.partners import PartnerLookup

from .acks import application_ack, application_outcome, commit_ack, commit_code
from .errors import ForbiddenError, PayloadTooLargeError, SubmissionError
from .hl7_ack import ACK_CONTENT_TYPE, encode_ack
from .hl7_header import AckCondition, MessageHeader, check_one_message, read_header
from .models import Receipt, Submission
from .submissions import Submitter

__all__ = ["MllpIntake", "PendingApplicationAck", "Received"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PendingApplicationAck:
    """An application ACK still to send, once the ingestion's journey says how it went."""

    partner: str
    ingestion_id: str
    head: bytes  # the message's MSH segment alone: all its ACK needs
    header: MessageHeader | None
    condition: AckCondition

    def __repr__(self) -> str:  # the message is PHI
        return f"PendingApplicationAck(ingestion_id={self.ingestion_id!r})"


@dataclass(frozen=True, slots=True)
class Received:
    """What to answer a frame with: the commit ACK (None when MSH-15 asks for none), the
    application ACK still to come (None in original mode, or when refused), and whether
    it was not stored for now (the server then closes the connection, so the sender's
    resend comes before the messages it pipelined after it)."""

    ack: bytes | None
    code: str
    ingestion_id: str | None
    pending: PendingApplicationAck | None
    transient: bool = False


class MllpIntake:
    """Submits MLLP frames for one partner and acknowledges them."""

    def __init__(
        self,
        submissions: Submitter,
        partners: PartnerLookup,
        journeys: IngestionLog,
        partner_id: str,
        *,
        enhanced: bool = False,
    ) -> None:
        self._submissions = submissions
        self._partners = partners
        self._journeys = journeys
        self._partner_id = partner_id
        self._enhanced = enhanced

    @property
    def partner_id(self) -> str:
        """The partner every frame is submitted as."""
        return self._partner_id

    def receive(self, data: bytes) -> Received:
        """Submit one message and say how to answer it. Never raises for what the message
        holds or for storage being down: both are ACKs."""
        header = read_header(data)
        enhanced = self._enhanced or (header is not None and header.enhanced)
        receipt: Receipt | None = None
        refused: SubmissionError | None = None
        with server_span("ingest", None) as hop:  # the ingestion's trace starts here
            hop.partner = self._partner_id
            try:
                check_one_message(data)
                partner = self._partners.get(self._partner_id)
                if partner is None or Role.INGEST not in partner.roles:
                    raise ForbiddenError(
                        "this listener's partner may not submit data (role ingest)"
                    )
                receipt = self._submissions.submit(
                    partner, Submission(body=data, content_type=ACK_CONTENT_TYPE, channel="mllp")
                )
                hop.correlation_id = receipt.ingestion_id
                hop.outcome = "duplicate" if receipt.duplicate else "stored"
            except SubmissionError as exc:
                refused = exc
                hop.outcome = "refused"
            except StorageUnavailableError:
                hop.outcome = "retry"
                log.warning(
                    "mllp: storage unavailable",
                    extra={"stage": "ingest", "partner": self._partner_id, "outcome": "retry"},
                )
        ack = commit_ack(data, header, receipt=receipt, refused=refused, enhanced=enhanced)
        permanent = refused is not None and not refused.retryable
        transient = receipt is None and not permanent
        code = commit_code(header, stored=receipt is not None, refused=refused, enhanced=enhanced)
        if not enhanced:
            return Received(encode_ack(ack, header), code, _id(receipt), None, transient)
        accept = (header.accept_ack if header else None) or AckCondition.ALWAYS
        application = (header.application_ack if header else None) or AckCondition.ALWAYS
        send = accept.wanted(success=receipt is not None)
        head = data.split(b"\r", 1)[0].split(b"\n", 1)[0]
        pending = (
            PendingApplicationAck(self._partner_id, receipt.ingestion_id, head, header, application)
            if receipt is not None and application is not AckCondition.NEVER
            else None
        )
        ack_bytes = encode_ack(ack, header) if send else None
        return Received(ack_bytes, code, _id(receipt), pending, transient)

    def refuse_oversized(self, head: bytes, size: int, limit: int) -> bytes | None:
        """The AE (CE in enhanced mode) for a frame over the size limit, from its head; None
        when MSH-15 asks for no ACK of a refusal."""
        header = read_header(head)
        enhanced = self._enhanced or (header is not None and header.enhanced)
        if enhanced:
            accept = (header.accept_ack if header else None) or AckCondition.ALWAYS
            if not accept.wanted(success=False):
                return None
        refused = PayloadTooLargeError(
            f"the message is {size} bytes, over this listener's limit of {limit}; send large "
            "files as batch uploads (POST /api/ingest/uploads)"
        )
        return encode_ack(commit_ack(head, header, refused=refused, enhanced=enhanced), header)

    def application_ack(self, pending: PendingApplicationAck) -> tuple[bool, bytes | None]:
        """(done, ACK to send or None): not done while normalization or consent is pending;
        done with no ACK when MSH-16 does not want this outcome acknowledged.

        Raises:
            StorageUnavailableError: the journey cannot be read now (ask again later).
        """
        row = self._journeys.get(pending.partner, pending.ingestion_id)
        outcome = application_outcome(row) if row is not None else None
        if outcome is None:
            return False, None
        if not pending.condition.wanted(success=outcome.code == "AA"):
            return True, None
        ack = application_ack(pending.head, pending.header, outcome)
        return True, encode_ack(ack, pending.header)


def _id(receipt: Receipt | None) -> str | None:
    return receipt.ingestion_id if receipt is not None else None
