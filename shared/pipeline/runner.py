"""One runner for every queue-triggered stage.

Each queue function hands its message body and dequeue count to ``run`` with the
``QueueStage`` that says how that queue's messages are read and handled. The runner
decodes once, binds the log context (correlation and trace ids), runs the stage, and on
a failure applies one policy: the failed attempt is noted on the ingestion's journey
(exception type only) and the exception re-raised, so the queue retries the message and
finally keeps it in the poison queue; a stage that can settle a message for good
instead (an export job marked failed) says so with ``give_up``, which the runner calls
for a permanent error or on the last attempt.

Each message runs in its own span (``telemetry.stage_span``, named after the queue), the
child of the span that sent its envelope; a message that is not an envelope (a
BlobCreated event) starts a trace of its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.platform.envelope import Envelope
from shared.platform.errors import IntakeError
from shared.platform.logs import bound_to
from shared.platform.names import Queue
from shared.platform.telemetry import note_outcome, stage_span

from .journey import IngestionLog, failed_attempt

__all__ = ["MAX_DEQUEUE_COUNT", "QueueStage", "run"]

log = logging.getLogger(__name__)
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount: the last attempt
M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class QueueStage(Generic[M]):
    """How one queue's messages are run.

    ``decode`` turns a body into the stage's message, None for one that is not ours
    (it logs why), and raises for a body nobody can read (kept in the poison queue);
    ``journey`` says whether the message is an ingestion's (a failed attempt is noted
    on its row) or not (an export job's).
    """

    name: str
    queue: Queue
    decode: Callable[[bytes], M | None]
    handle: Callable[[M], object]
    give_up: Callable[[M, IntakeError], None] | None = None
    journey: bool = True


def run(stage: QueueStage[M], body: bytes, attempt: int, journey: IngestionLog) -> None:
    """Run one message through its stage; re-raises what the stage raised unless the
    stage gave the message up."""
    message = stage.decode(body)
    if message is None:
        return
    envelope = message if isinstance(message, Envelope) else None
    bound = bound_to(envelope) if envelope is not None else contextlib.nullcontext()
    span = stage_span(
        stage.name,
        stage.queue,
        attempt,
        partner=envelope.partner if envelope else None,
        correlation_id=envelope.correlation_id if envelope else None,
        traceparent=envelope.traceparent if envelope else None,
    )
    with bound, span:
        try:
            stage.handle(message)
        except IntakeError as exc:
            if stage.give_up is not None and (not exc.retryable or attempt >= MAX_DEQUEUE_COUNT):
                stage.give_up(message, exc)
                note_outcome("given-up")
                return
            _note(stage, message, exc, attempt, journey)
            raise
        except Exception as exc:  # the boundary: whatever it was, the queue retries it
            _note(stage, message, exc, attempt, journey)
            raise


def _note(
    stage: QueueStage[M], message: M, error: Exception, attempt: int, journey: IngestionLog
) -> None:
    """The failed attempt on the ingestion's journey, best effort."""
    if not stage.journey or not isinstance(message, Envelope):
        return
    report = failed_attempt(stage.name, stage.queue, type(error).__name__, attempt)
    try:
        journey.record(message.partner, message.correlation_id, report)
    except IntakeError as note_failed:  # storage is down: the retry will tell
        log.warning("%s: failed attempt not recorded (%s)", stage.name, type(note_failed).__name__)
