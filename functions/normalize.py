"""Queue stage `normalize`: raw partner payload to a FHIR R4 Bundle."""

from __future__ import annotations

import azure.functions as func

from shared.platform import Queue, Setting

from .queue_stages import run_stage

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(
    arg_name="msg", queue_name=Queue.NORMALIZE.value, connection=Setting.STORAGE.value
)
def normalize(msg: func.QueueMessage) -> None:
    """Convert one payload. A rejection is handled (quarantine, status) and the message
    is done; a storage failure or an unreadable envelope raises, so the queue retries and
    finally keeps the message in normalize-poison."""
    run_stage(msg, Queue.NORMALIZE)
