"""Retry scheduling: the configured waits, jitter within a tenth, Retry-After honoured."""

from __future__ import annotations

import random

from shared.notify.schedule import MAX_DELAY, RetrySchedule

DEFAULT = (5, 300, 1800, 7200, 18000, 36000, 36000)


def test_each_retry_waits_its_step_within_ten_percent() -> None:
    schedule = RetrySchedule(DEFAULT, random.Random(7))
    assert schedule.attempts == 8
    for attempt, base in enumerate(DEFAULT, start=1):
        waits = [schedule.next_delay(attempt) for _ in range(50)]
        assert all(w is not None and 0.9 * base - 1 <= w <= 1.1 * base + 1 for w in waits)
        assert len(set(waits)) > 1 or base < 10  # jitter spreads the retries


def test_after_the_last_attempt_there_is_no_retry() -> None:
    schedule = RetrySchedule(DEFAULT)
    assert schedule.next_delay(7) is not None
    assert schedule.next_delay(8) is None
    assert schedule.next_delay(0) is None


def test_retry_after_longer_than_the_step_is_honoured() -> None:
    schedule = RetrySchedule(DEFAULT, random.Random(1))
    assert schedule.next_delay(1, retry_after=120) == 120
    assert 270 <= (schedule.next_delay(2, retry_after=10) or 0) <= 330  # shorter: the step
    assert schedule.next_delay(1, retry_after=30 * 24 * 3600) == MAX_DELAY  # queue limit
