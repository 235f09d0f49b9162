"""The clock interface simulators read time from.

Simulators never call ``time.time()``: every timestamp they write comes from a ``Clock``.
The harness supplies its virtual clock (``harness.clock``); a standalone simulator uses
``WallClock``; unit tests use ``ManualClock``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

DEFAULT_EPOCH = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


class Clock(Protocol):
    mode: str

    def now(self) -> float:
        """Virtual seconds since the clock's epoch."""

    def iso(self, t: float | None = None) -> str:
        """ISO-8601 UTC timestamp of virtual time ``t`` (default: now)."""

    async def sleep_until(self, t: float) -> None:
        """Return once virtual time has reached ``t``."""

    def call_at(self, t: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` once virtual time reaches ``t``; registered before this returns,
        so whoever asks next what is scheduled already sees it."""

    def wall_seconds(self, virtual_s: float) -> float:
        """How long a client waiting on its own wall-clock timer must wait for ``virtual_s``
        to pass: what a simulator writes in Retry-After (the stack's timers are wall time)."""


class IsoFormatter:
    """Formats virtual seconds as ISO timestamps (hot path): ``epoch`` plus the whole seconds,
    as ``(epoch + timedelta(seconds=int(t))).strftime("%Y-%m-%dT%H:%M:%SZ")`` gives it, with
    the last second and each day's date kept (strftime and datetime arithmetic on every new
    second were 0.7% of the harness's CPU on a peak day, whose events hop between seconds)."""

    def __init__(self, epoch: datetime) -> None:
        self.epoch = epoch
        self._last_second: int | None = None  # not -1: a time a second before the epoch is -1
        self._last_text = ""
        # the wall fields' arithmetic of ``epoch + timedelta``: microseconds never carry
        self._midnight = epoch.replace(hour=0, minute=0, second=0, microsecond=0)
        self._since_midnight = epoch.hour * 3600 + epoch.minute * 60 + epoch.second
        self._dates: dict[int, str] = {}

    def __call__(self, t: float) -> str:
        second = int(t)
        if second != self._last_second:
            day, rest = divmod(self._since_midnight + second, 86400)
            date = self._dates.get(day)
            if date is None:
                date = (self._midnight + timedelta(days=day)).strftime("%Y-%m-%d")
                if len(self._dates) < 100_000:  # a horizon of centuries; never unbounded
                    self._dates[day] = date
            hour, rest = divmod(rest, 3600)
            minute, sec = divmod(rest, 60)
            self._last_text = f"{date}T{hour:02d}:{minute:02d}:{sec:02d}Z"
            self._last_second = second
        return self._last_text


class ManualClock:
    """A clock a test moves by hand."""

    mode = "manual"

    def __init__(self, epoch: datetime = DEFAULT_EPOCH, start: float = 0.0) -> None:
        self._now = start
        self._iso = IsoFormatter(epoch)
        self.epoch = epoch

    def now(self) -> float:
        return self._now

    def set(self, t: float) -> None:
        self._now = t

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def iso(self, t: float | None = None) -> str:
        return self._iso(self._now if t is None else t)

    async def sleep_until(self, t: float) -> None:
        while self._now < t:
            await asyncio.sleep(0.01)

    def call_at(self, t: float, callback: Callable[[], None]) -> None:
        async def later() -> None:
            await self.sleep_until(t)
            callback()

        _keep(asyncio.get_running_loop().create_task(later()))

    def wall_seconds(self, virtual_s: float) -> float:
        return virtual_s


_PENDING: set[asyncio.Task[None]] = set()


def _keep(task: asyncio.Task[None]) -> None:
    """Hold a reference until the task is done (the loop keeps only weak ones)."""
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


class WallClock:
    """Virtual time = wall time since start, offset to the epoch; for ``twinyard sims``."""

    mode = "wall"

    def __init__(self, epoch: datetime | None = None) -> None:
        self.epoch = epoch or datetime.now(UTC).replace(microsecond=0)
        self._start = time.monotonic()
        self._iso = IsoFormatter(self.epoch)

    def now(self) -> float:
        return time.monotonic() - self._start

    def iso(self, t: float | None = None) -> str:
        return self._iso(self.now() if t is None else t)

    async def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    def call_at(self, t: float, callback: Callable[[], None]) -> None:
        asyncio.get_running_loop().call_later(max(t - self.now(), 0.0), callback)

    def wall_seconds(self, virtual_s: float) -> float:
        return virtual_s
