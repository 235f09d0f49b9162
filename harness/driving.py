"""What both ways of moving virtual time share: the world, the simulators, the stack's probe,
the record of how the run went (steps, stalls, whether the stack went away), and the request
watchdog: a request in flight at a simulator for longer than ``request_watchdog_s`` (wall) is
named in the verdict's notes and no longer waited for, so one stuck connection cannot hold the
day (it is still journalled if it ever ends)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import simpy

from harness.stack import StackProbe
from simulators.common.simulator import Simulator

REQUEST_WATCHDOG_S = 10.0  # wall seconds a request may be in flight before it is let go


def moment(t: float) -> str:
    """Virtual seconds as the notes say them: ``10:42:03 (day 0)``."""
    day, rest = divmod(int(t), 86_400)
    return f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d} (day {day})"


class Driver:
    def __init__(
        self,
        env: simpy.Environment,
        sims: Sequence[Simulator],
        probe: StackProbe,
        *,
        horizon_s: float,
        drain_timeout_s: float = 60.0,
        on_step: Callable[[], None] | None = None,
        request_watchdog_s: float = REQUEST_WATCHDOG_S,
    ) -> None:
        self.env = env
        self.sims = sims
        self.probe = probe
        self.horizon_s = horizon_s
        self.drain_timeout_s = drain_timeout_s
        self.on_step = on_step
        self.request_watchdog_s = request_watchdog_s
        self.steps = 0
        self.stalls: list[str] = []  # notes for the verdict: where the run did not settle
        self.stack_down = False
        # Things a person does at a moment of the day (the on-call replaying dead letters):
        # queued by the world when their time comes, run by the driver once the system is quiet.
        self.actions: list[Callable[[], Awaitable[None]]] = []

    async def run_actions(self) -> None:
        while self.actions:
            await self.actions.pop(0)()

    def horizon_reached(self) -> None:
        """The run stops at the horizon even if the world still has work: say so."""
        self.stalls.append(
            f"the horizon ({self.horizon_s / 86_400:g} days) ended the run with work still "
            "scheduled in the world: orders in flight then are judged as they stood"
        )

    def let_go_of_stuck_requests(self, now_virtual: float) -> bool:
        """Requests in flight longer than the request watchdog: each is named in the notes
        once and stops counting as in flight. True when one was let go."""
        started_before = time.monotonic() - self.request_watchdog_s
        let_go = False
        for sim in self.sims:
            if not sim.inflight:
                continue
            for request in sim.stuck(started_before):
                waited = time.monotonic() - request.since
                self.stalls.append(
                    f"{sim.system} {request.call()} in flight for {waited:.1f} s wall at "
                    f"{moment(now_virtual)}{request.body_state()}; advanced without it"
                )
                sim.excuse(request)
                let_go = True
        return let_go

    def stepped(self) -> None:
        self.steps += 1
        if self.on_step is not None:
            self.on_step()
