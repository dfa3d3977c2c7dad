"""Queue stage `blob-created`: a partner's batch file in ingest-drop, split into chunks for
normalization."""

from __future__ import annotations

import azure.functions as func

from shared.platform import Queue, Setting

from .queue_stages import run_stage

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(
    arg_name="msg", queue_name=Queue.BLOB_CREATED.value, connection=Setting.STORAGE.value
)
def process_drop(msg: func.QueueMessage) -> None:
    """Process one BlobCreated event. An event that names no blob of ours is logged and
    dropped (nothing of a partner's is in it); storage failures raise and are retried,
    resuming from the file's checkpoint."""
    run_stage(msg, Queue.BLOB_CREATED)
