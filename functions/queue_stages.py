"""What every pipeline queue function does alike: read the envelope, bind the log context,
run the stage, and when the stage raises, note the failed attempt on the ingestion's
journey before the queue retries it (and finally keeps it in the poison queue), so the
partner's status says where its data waits and why."""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from shared.intake.status import failed_attempt
from shared.platform import Envelope, Queue, wiring
from shared.platform.errors import IntakeError
from shared.platform.logs import bound_to

log = logging.getLogger(__name__)


def run_stage(
    msg: func.QueueMessage, stage: str, queue: Queue, handle: Callable[[Envelope], object]
) -> None:
    """Handle one message with ``handle``; re-raises whatever it raised."""
    envelope = Envelope.from_bytes(msg.get_body())
    with bound_to(envelope):
        try:
            handle(envelope)
        except Exception as exc:
            report = failed_attempt(stage, queue, type(exc).__name__, msg.dequeue_count or 1)
            try:
                wiring.ingestion_log().record(envelope.partner, envelope.correlation_id, report)
            except IntakeError as note_failed:  # storage is down: the retry will tell
                log.warning(
                    "%s: failed attempt not recorded (%s)", stage, type(note_failed).__name__
                )
            raise
