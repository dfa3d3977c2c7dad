"""Queue stages ``notify`` (match stored changes against subscriptions) and ``deliver``
(one signed webhook attempt; retries are scheduled messages, not queue retries)."""

from __future__ import annotations

import azure.functions as func

from shared.platform import Queue, Setting

from .queue_stages import run_stage

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(arg_name="msg", queue_name=Queue.NOTIFY.value, connection=Setting.STORAGE.value)
def notify(msg: func.QueueMessage) -> None:
    """Queue one delivery per matching subscription; storage failures raise (queue retry:
    each delivery row is created once, so a retry sends nothing twice)."""
    run_stage(msg, Queue.NOTIFY)


@bp.queue_trigger(arg_name="msg", queue_name=Queue.DELIVER.value, connection=Setting.STORAGE.value)
def deliver(msg: func.QueueMessage) -> None:
    """Attempt one delivery; what the endpoint does is recorded and scheduled, only our own
    storage, Key Vault or consent-index failures raise (queue retry, then deliver-poison)."""
    run_stage(msg, Queue.DELIVER)
