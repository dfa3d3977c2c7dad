"""Queue stage `store`: what consent permitted becomes the unified record."""

from __future__ import annotations

import azure.functions as func

from shared.platform import Queue, Setting

from .queue_stages import run_stage

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(arg_name="msg", queue_name=Queue.STORE.value, connection=Setting.STORAGE.value)
def store(msg: func.QueueMessage) -> None:
    """Store a permitted Bundle; storage failures and lost write races raise, so the
    queue retries (every write is idempotent) and finally keeps it in store-poison."""
    run_stage(msg, Queue.STORE)
