"""Timer: finish HTTP submissions that stopped between storing and enqueueing, remove
console sessions that have ended, and report how many messages wait in each queue and
poison queue (the queue-depth gauges, which the poison-depth alert reads, and a log line
per poison queue that holds messages)."""

from __future__ import annotations

import logging
from datetime import timedelta

import azure.functions as func

from shared import wiring
from shared.platform import Setting
from shared.platform.errors import StorageUnavailableError
from shared.platform.telemetry import record_queue_depths

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)
GRACE = timedelta(minutes=2)  # longer than any submission takes from claim to enqueue


@bp.timer_trigger(arg_name="timer", schedule=f"%{Setting.SWEEP_SCHEDULE.value}%")
def sweep_submissions(timer: func.TimerRequest) -> None:
    """Resume stalled submissions whose payload is stored; drop claims that stored nothing;
    record every queue's depth; log each poison queue that is not empty."""
    result = wiring.submissions().sweep(GRACE)
    if result.resumed or result.dropped:
        log.info(
            "sweep: done",
            extra={"stage": "sweep", "resumed": result.resumed, "dropped": result.dropped},
        )
    try:
        ended = wiring.console_sessions().sweep()
    except StorageUnavailableError:
        ended = 0  # the next sweep removes them
    if ended:
        log.info("sweep: console sessions ended", extra={"stage": "sweep", "sessions": ended})
    try:
        depths = wiring.poison_depths()
    except StorageUnavailableError:
        log.warning("sweep: poison queues unreadable", extra={"stage": "sweep"})
        return
    try:
        record_queue_depths(wiring.queue_depths(), depths)
    except StorageUnavailableError:  # the poison depths still count, and their lines
        record_queue_depths({}, depths)
    for queue, depth in depths.items():
        if depth:
            # The text carries the numbers: Azure's traces keep only the message.
            log.warning(
                "poison: %s holds %d", queue, depth, extra={"stage": "sweep", "depth": depth}
            )
