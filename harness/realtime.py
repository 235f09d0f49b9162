"""Realtime: virtual time runs at ``factor`` x wall time, whatever the stack is doing.

For load tests and for stacks with wall-clock timers of their own. The world is played every
tick up to the clock's present; the stack is never waited for, so a slow stack falls behind
the world exactly as it would on a real peak day. Only at the end, when the world has nothing
left, does it wait for the system to settle; a request stuck in flight longer than the request
watchdog is named and not waited for there either.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence

import simpy

from harness.clock import RealtimeClock
from harness.driving import REQUEST_WATCHDOG_S, Driver
from harness.stack import Idle, StackProbe
from simulators.common.simulator import Simulator

TICK_S = 0.01  # wall seconds between looks at the world: the world lags at most this x factor


class Realtime(Driver):
    def __init__(
        self,
        env: simpy.Environment,
        clock: RealtimeClock,
        sims: Sequence[Simulator],
        probe: StackProbe,
        *,
        horizon_s: float,
        drain_timeout_s: float = 60.0,
        on_step: Callable[[], None] | None = None,
        request_watchdog_s: float = REQUEST_WATCHDOG_S,
    ) -> None:
        super().__init__(
            env,
            sims,
            probe,
            horizon_s=horizon_s,
            drain_timeout_s=drain_timeout_s,
            on_step=on_step,
            request_watchdog_s=request_watchdog_s,
        )
        self.clock = clock

    async def run(self) -> None:
        env, clock = self.env, self.clock
        while True:
            now = min(clock.now(), self.horizon_s)
            if env.peek() <= now:
                if now > env.now:
                    env.run(until=now)
                while env.peek() <= now:
                    env.step()
                self.stepped()
                if self.actions:
                    await self.run_actions()
            elif now > env.now:
                env.run(until=now)  # keep the world's present with the clock's
            if now >= self.horizon_s:
                if env.peek() != math.inf:
                    self.horizon_reached()
                return
            upcoming = env.peek()
            if upcoming == math.inf and await self._finished():
                return
            wait = TICK_S if upcoming == math.inf else (upcoming - clock.now()) / clock.factor
            await asyncio.sleep(min(max(wait, 0.0), TICK_S))

    async def _finished(self) -> bool:
        """The world has nothing scheduled: done once the stack and simulators are too."""
        deadline = time.monotonic() + self.drain_timeout_s
        while time.monotonic() < deadline:
            if self.env.peek() != math.inf:
                return False  # the stack's work made the world move again
            self.let_go_of_stuck_requests(self.clock.now())
            if all(sim.quiet() and not sim.webhooks.scheduled for sim in self.sims):
                state = await self.probe.idle()
                if state is Idle.DOWN:
                    self.stack_down = True
                    return True
                if state is not Idle.NO and self.probe.scheduled == 0:
                    return True
            await asyncio.sleep(TICK_S)
        self.stalls.append(
            f"the run did not settle {self.drain_timeout_s:.0f} s after the world ended"
        )
        return True
