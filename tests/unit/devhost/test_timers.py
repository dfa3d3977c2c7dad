"""Timer schedules: NCRONTAB with seconds first, and TimeSpan intervals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devhost.config import HostConfigError
from devhost.timers import TimerSchedule

T0 = datetime(2026, 3, 1, 10, 4, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 */5 * * * *", datetime(2026, 3, 1, 10, 5, 0, tzinfo=UTC)),
        ("30 0 * * * *", datetime(2026, 3, 1, 11, 0, 30, tzinfo=UTC)),
        ("0 0 2 * * MON", datetime(2026, 3, 2, 2, 0, 0, tzinfo=UTC)),  # 2026-03-02 is a Monday
        ("00:00:10", datetime(2026, 3, 1, 10, 5, 9, tzinfo=UTC)),
    ],
)
def test_next_occurrence(expression: str, expected: datetime) -> None:
    assert TimerSchedule(expression).next_after(T0) == expected


@pytest.mark.parametrize("expression", ["*/5 * * * *", "61 * * * * *", "soon", "00:00:00"])
def test_invalid_schedules(expression: str) -> None:
    with pytest.raises(HostConfigError):
        TimerSchedule(expression)
