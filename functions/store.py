"""Queue stage `store`: what consent permitted becomes the unified record."""

from __future__ import annotations

import azure.functions as func

from shared.platform import Envelope, Queue, Setting, wiring
from shared.platform.logs import bound_to

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(arg_name="msg", queue_name=Queue.STORE.value, connection=Setting.STORAGE.value)
def store(msg: func.QueueMessage) -> None:
    """Store a permitted Bundle; storage failures and lost write races raise, so the
    queue retries (every write is idempotent) and finally keeps it in store-poison."""
    envelope = Envelope.from_bytes(msg.get_body())
    with bound_to(envelope):
        wiring.store_stage().handle(envelope)
