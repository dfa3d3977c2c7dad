"""Queue stage `normalize`: raw partner payload to a FHIR R4 Bundle."""

from __future__ import annotations

import azure.functions as func

from shared.platform import Envelope, Queue, Setting, wiring
from shared.platform.logs import bound_to

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(
    arg_name="msg", queue_name=Queue.NORMALIZE.value, connection=Setting.STORAGE.value
)
def normalize(msg: func.QueueMessage) -> None:
    """Convert one payload. A rejection is handled (quarantine, status) and the message
    is done; a storage failure or an unreadable envelope raises, so the queue retries and
    finally keeps the message in normalize-poison."""
    envelope = Envelope.from_bytes(msg.get_body())
    with bound_to(envelope):
        wiring.normalize_stage().handle(envelope)
