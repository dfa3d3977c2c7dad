"""Timer triggers: six-field NCRONTAB schedules (seconds first) or fixed TimeSpan intervals.

Schedules are read in UTC (``WEBSITE_TIME_ZONE`` is not applied locally). A timer whose
function is still running when the next occurrence comes skips it, as the runtime's
singleton timer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest
from croniter import croniter

from .catalog import FunctionSpec
from .config import HostConfigError, parse_timespan
from .invoker import Invoker, resolve_settings

__all__ = ["TimerRunner", "TimerSchedule"]

log = logging.getLogger("devhost")
_PAST_DUE = timedelta(seconds=1)


class TimerSchedule:
    """Next occurrences of a timer's schedule."""

    def __init__(self, expression: str) -> None:
        self.expression = expression.strip()
        self._interval: timedelta | None = None
        if ":" in self.expression:
            self._interval = timedelta(seconds=parse_timespan(self.expression, setting="schedule"))
            if self._interval <= timedelta(0):
                raise HostConfigError("schedule: the interval must be positive")
        elif len(self.expression.split()) != 6 or not croniter.is_valid(
            self.expression, second_at_beginning=True
        ):
            raise HostConfigError(
                f"schedule: expected six NCRONTAB fields (second first) or hh:mm:ss, "
                f"got {self.expression!r}"
            )

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (UTC)."""
        if self._interval is not None:
            return moment + self._interval
        nxt: datetime = croniter(self.expression, moment, second_at_beginning=True).get_next(
            datetime
        )
        return nxt


class TimerRunner:
    """Runs one timer-triggered function on its schedule."""

    def __init__(self, spec: FunctionSpec, invoker: Invoker, environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.schedule = TimerSchedule(
            resolve_settings(str(spec.trigger.config["schedule"]), environ)
        )
        self._invoker = invoker
        self._stopping = asyncio.Event()
        self._running: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Fire at each occurrence (and once at start with runOnStartup) until stopped."""
        if self.spec.trigger.config.get("runOnStartup"):
            await self._fire(past_due=False)
        due = self.schedule.next_after(datetime.now(UTC))
        while not self._stopping.is_set():
            delay = (due - datetime.now(UTC)).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(delay, 0))
                break
            late = datetime.now(UTC) - due > _PAST_DUE
            if self._running is None or self._running.done():
                self._running = asyncio.create_task(self._fire(past_due=late))
            else:
                log.warning(
                    "Timer 'Functions.%s' is still running; skipping an occurrence", self.spec.name
                )
            due = self.schedule.next_after(max(due, datetime.now(UTC) - _PAST_DUE))

    async def stop(self) -> None:
        """Stop scheduling and wait for a running occurrence."""
        self._stopping.set()
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)

    async def _fire(self, *, past_due: bool) -> None:
        try:
            await self._invoker.invoke(
                self.spec, TimerRequest(past_due=past_due), {}, reason="Timer fired"
            )
        except Exception as exc:
            log.error(
                "Timer 'Functions.%s' failed: %s", self.spec.name, type(exc).__name__, exc_info=exc
            )
