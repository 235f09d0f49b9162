"""The one virtual clock every simulator and the world read.

Two modes (ARCHITECTURE principle 2):

- ``LockstepClock``: virtual time moves only when the driver advances it, which it does
  once the whole system is quiet; timers (webhook retries) are woken as time passes them.
  While the stack waits on retry timers of its own (wall clock), the driver advances at
  ``pace`` virtual seconds per wall second, and simulators advertise Retry-After at that pace.
- ``RealtimeClock``: virtual time runs at ``factor`` x wall time, for load tests and for
  stacks with wall-clock timers of their own.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import datetime

from simulators.common.clock import IsoFormatter


class LockstepClock:
    mode = "lockstep"

    def __init__(self, epoch: datetime, pace: float = 300.0) -> None:
        if pace <= 0:
            raise ValueError("the lockstep pace must be positive")
        self.epoch = epoch
        self.pace = pace  # virtual s per wall s while the stack waits on its own timers
        self._now = 0.0
        self._iso = IsoFormatter(epoch)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def iso(self, t: float | None = None) -> str:
        return self._iso(self._now if t is None else t)

    def call_at(self, t: float, callback: Callable[[], None]) -> None:
        if t <= self._now:
            callback()
            return
        heapq.heappush(self._timers, (t, next(self._order), callback))

    async def sleep_until(self, t: float) -> None:
        if t <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.call_at(t, lambda: future.done() or future.set_result(None))
        await future

    def wall_seconds(self, virtual_s: float) -> float:
        return virtual_s / self.pace

    def next_timer(self) -> float | None:
        """When the earliest timer is due, or None."""
        return self._timers[0][0] if self._timers else None

    def advance_to(self, t: float) -> None:
        if t < self._now:
            raise ValueError(f"the clock cannot go back from {self._now} to {t}")
        self._now = t
        while self._timers and self._timers[0][0] <= t:
            _, _, callback = heapq.heappop(self._timers)
            callback()


class RealtimeClock:
    mode = "realtime"

    def __init__(
        self,
        epoch: datetime,
        factor: float = 1.0,
        start: float = 0.0,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if factor <= 0:
            raise ValueError("the realtime factor must be positive")
        self.epoch = epoch
        self.factor = factor
        self._wall = wall
        self._start_virtual = start
        self._start_wall = wall()
        self._iso = IsoFormatter(epoch)

    def now(self) -> float:
        return self._start_virtual + (self._wall() - self._start_wall) * self.factor

    def iso(self, t: float | None = None) -> str:
        return self._iso(self.now() if t is None else t)

    async def sleep_until(self, t: float) -> None:
        delay = (t - self.now()) / self.factor
        if delay > 0:
            await asyncio.sleep(delay)

    def call_at(self, t: float, callback: Callable[[], None]) -> None:
        asyncio.get_running_loop().call_later(max((t - self.now()) / self.factor, 0.0), callback)

    def wall_seconds(self, virtual_s: float) -> float:
        return virtual_s / self.factor
