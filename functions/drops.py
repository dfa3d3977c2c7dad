"""Queue stage `blob-created`: a partner's batch file in ingest-drop, split into chunks for
normalization."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.intake.drops import DropError, parse_blob_created
from shared.platform import Queue, Setting, wiring

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)


@bp.queue_trigger(
    arg_name="msg", queue_name=Queue.BLOB_CREATED.value, connection=Setting.STORAGE.value
)
def process_drop(msg: func.QueueMessage) -> None:
    """Process one BlobCreated event. An event that names no blob of ours is logged and
    dropped (nothing of a partner's is in it); storage failures raise and are retried,
    resuming from the file's checkpoint."""
    try:
        event = parse_blob_created(msg.get_body())
    except DropError as exc:
        # The reason may quote a blob name (a partner may name files after patients).
        log.error(
            "drop: unusable event (%s)",
            type(exc).__name__,
            extra={"stage": "drop", "outcome": "ignored", "reason": str(exc)},  # hashed
        )
        return
    wiring.drop_processor().process(event)
