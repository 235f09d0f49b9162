"""What both ways of moving virtual time share: the world, the simulators, the stack's probe,
and the record of how the run went (steps, stalls, whether the stack went away)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import simpy

from harness.stack import StackProbe
from simulators.common.simulator import Simulator


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
    ) -> None:
        self.env = env
        self.sims = sims
        self.probe = probe
        self.horizon_s = horizon_s
        self.drain_timeout_s = drain_timeout_s
        self.on_step = on_step
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

    def stepped(self) -> None:
        self.steps += 1
        if self.on_step is not None:
            self.on_step()
