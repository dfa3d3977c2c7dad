"""Queue stages ``notify`` (match stored changes against subscriptions) and ``deliver``
(one signed webhook attempt; retries are scheduled messages, not queue retries)."""

from __future__ import annotations

import azure.functions as func

from shared.platform import Envelope, Queue, Setting, wiring
from shared.platform.logs import bound_to

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(arg_name="msg", queue_name=Queue.NOTIFY.value, connection=Setting.STORAGE.value)
def notify(msg: func.QueueMessage) -> None:
    """Queue one delivery per matching subscription; storage failures raise (queue retry:
    each delivery row is created once, so a retry sends nothing twice)."""
    envelope = Envelope.from_bytes(msg.get_body())
    with bound_to(envelope):
        wiring.notify_stage().handle(envelope)


@bp.queue_trigger(arg_name="msg", queue_name=Queue.DELIVER.value, connection=Setting.STORAGE.value)
def deliver(msg: func.QueueMessage) -> None:
    """Attempt one delivery; what the endpoint does is recorded and scheduled, only our own
    storage, Key Vault or consent-index failures raise (queue retry, then deliver-poison)."""
    envelope = Envelope.from_bytes(msg.get_body())
    with bound_to(envelope):
        wiring.delivery_stage().handle(envelope)
