"""Lockstep: advance virtual time to the next thing due, but only once the system is quiet.

Quiet means no request in flight at any simulator, no webhook delivery queued or on the
wire, and the stack idle by its probe (or, without a probe, silent for a settle window).
Stretches with nothing scheduled cost no wall time: the clock jumps straight over them.

Except one: a stack waiting on retry timers of its own (its probe reports ``scheduled``
work) lives on the wall clock, and jumping would let the world run past an outage, a cut-off
or the end of the day before the stack tried again. While it waits, virtual time moves at the
clock's ``pace`` (virtual seconds per wall second), the same rate the simulators use to turn a
virtual wait into the wall-second Retry-After they send; so a stack that honours Retry-After
comes back just as the window it was told about has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence

import simpy

from harness.clock import LockstepClock
from harness.driving import Driver
from harness.stack import Idle, StackProbe
from simulators.common.simulator import Simulator

PACE_TICK_S = 0.02  # wall seconds between paced steps while the stack waits on its timers


class Lockstep(Driver):
    def __init__(
        self,
        env: simpy.Environment,
        clock: LockstepClock,
        sims: Sequence[Simulator],
        probe: StackProbe,
        *,
        horizon_s: float,
        resolution_s: float = 0.0,
        settle_s: float = 0.05,
        stall_timeout_s: float = 60.0,
        drain_timeout_s: float = 60.0,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            env, sims, probe, horizon_s=horizon_s, drain_timeout_s=drain_timeout_s, on_step=on_step
        )
        self.clock = clock
        self.resolution_s = resolution_s
        self.settle_s = settle_s
        self.stall_timeout_s = stall_timeout_s
        self._settled = asyncio.Event()
        self._paced_from: float | None = None  # wall time of the last paced step
        self._draining_since: float | None = None  # wall time the world ended, retries held
        for sim in sims:
            sim.on_settle = self._settled.set

    async def run(self) -> None:
        env, clock = self.env, self.clock
        self._paced_from = None
        self._draining_since = None
        while True:
            await self.wait_quiet()
            if self.actions:
                await self.run_actions()
                continue
            timer = clock.next_timer()
            t = min(env.peek(), math.inf if timer is None else timer)
            if self.probe.scheduled and not self.stack_down:
                paced = await self._pace(t)
                if paced is None:
                    return  # the world has ended and the stack's retries never drained
                if paced:
                    continue
            else:
                self._paced_from = None
            if t == math.inf:
                # Nothing left in the world; the stack may still hold work for a retry timer
                # of its own (wall clock). Wait for it, or its outcome would be judged early.
                if self.probe.scheduled == 0 or self.stack_down or self._drain_expired():
                    return
                await asyncio.sleep(0.05)
                continue
            if t > self.horizon_s:
                self.horizon_reached()
                return
            self._draining_since = None
            # With a resolution, everything due within the window is played before the system
            # is asked to be quiet again: fewer, larger steps, and the stack sees the world
            # at most resolution_s late. Zero: one step per distinct moment.
            window_end = min(t + self.resolution_s, self.horizon_s)
            while t <= window_end:
                self._play_until(t)
                timer = clock.next_timer()
                t = min(env.peek(), math.inf if timer is None else timer)
            self.stepped()

    async def _pace(self, t: float) -> bool | None:
        """The stack waits on wall-clock timers: let virtual time flow at the clock's pace
        towards ``t`` (the next thing due). True: paced, look again; False: ``t`` is due (or
        the horizon reached), step as usual; None: stop, the drain timed out."""
        clock, wall = self.clock, time.monotonic()
        if self._paced_from is None:
            self._paced_from = wall
            await asyncio.sleep(PACE_TICK_S)
            return True
        target = min(clock.now() + (wall - self._paced_from) * clock.pace, self.horizon_s)
        self._paced_from = wall
        if clock.now() < target < t:
            self._play_until(target)
        if target >= t or target >= self.horizon_s:
            return False
        if t == math.inf and self._drain_expired():
            return None
        await asyncio.sleep(PACE_TICK_S)
        return True

    def _drain_expired(self) -> bool:
        """The world has ended and the stack still holds retries: give it drain_timeout_s."""
        now = time.monotonic()
        if self._draining_since is None:
            self._draining_since = now
        if now - self._draining_since <= self.drain_timeout_s:
            return False
        self.stalls.append(
            f"the stack still held {self.probe.scheduled} retries "
            f"{self.drain_timeout_s:.0f} s after the world ended"
        )
        return True

    def _play_until(self, t: float) -> None:
        """Move the clock and the world to ``t`` and play everything due at ``t``."""
        env = self.env
        if t > env.now:
            env.run(until=t)
        self.clock.advance_to(t)
        while env.peek() <= t:
            env.step()

    def _sims_quiet(self) -> bool:
        return all(sim.quiet() for sim in self.sims)

    def _mark(self) -> int:
        return sum(sim.activity + len(sim.journal.entries) for sim in self.sims)

    async def wait_quiet(self) -> None:
        started = time.monotonic()
        pause = 0.0005
        while True:
            await asyncio.sleep(0)
            if time.monotonic() - started > self.stall_timeout_s:
                self.stalls.append(
                    f"not quiet after {self.stall_timeout_s:.0f} s wall at {self.clock.iso()}; "
                    "advanced anyway"
                )
                return
            if not self._sims_quiet():
                self._settled.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), 0.05)
                continue
            mark = self._mark()
            state = await self.probe.idle()
            if state is Idle.NO:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.005)
                continue
            if state is Idle.DOWN:
                self.stack_down = True
            elif state is Idle.UNKNOWN:
                await asyncio.sleep(self.settle_s)
            if self._sims_quiet() and self._mark() == mark:
                return
