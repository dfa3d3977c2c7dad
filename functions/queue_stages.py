"""Every queue-triggered function is one call: its message through the one runner
(``shared.pipeline.runner``) with the stage the composition root wires for its queue."""

from __future__ import annotations

import azure.functions as func

from shared import wiring
from shared.pipeline.runner import run
from shared.platform import Queue


def run_stage(msg: func.QueueMessage, queue: Queue) -> None:
    """Run one message of ``queue``; re-raises what its stage raised (the queue retries)."""
    run(wiring.queue_stage(queue), msg.get_body(), msg.dequeue_count or 1, wiring.ingestion_log())
