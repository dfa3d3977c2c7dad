"""When to try a webhook delivery again: a fixed schedule with jitter, and Retry-After.

Like Svix and Event Grid, attempts spread over about a day and a half by default
(5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; ``INTAKE_WEBHOOK_RETRY_SCHEDULE``), so an
endpoint that is down overnight still gets its events. Each wait is stretched or
shortened by up to a tenth at random, so a recovered endpoint is not hit by every
retry at once; a ``Retry-After`` longer than the wait is honoured, up to the queue's
seven-day visibility limit.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["MAX_DELAY", "RetrySchedule"]

MAX_DELAY = 7 * 24 * 3600 - 60  # a storage queue message's visibility limit, with margin
_JITTER = 0.1


@dataclass(frozen=True)
class RetrySchedule:
    """The waits before each retry; after the last one a delivery is dead-lettered."""

    delays: Sequence[int]
    rng: random.Random = field(default_factory=random.Random)

    @property
    def attempts(self) -> int:
        """How many attempts a delivery gets in all (the first one and the retries)."""
        return len(self.delays) + 1

    def next_delay(self, attempt: int, retry_after: float | None = None) -> int | None:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), or None when
        that was the last attempt."""
        if attempt < 1 or attempt > len(self.delays):
            return None
        base = self.delays[attempt - 1]
        wait = base * (1 + self.rng.uniform(-_JITTER, _JITTER))
        if retry_after is not None:
            wait = max(wait, retry_after)
        return max(0, min(round(wait), MAX_DELAY))
