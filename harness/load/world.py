"""The world of a load run: its demand comes from Locust, and its clock waits for Locust.

Everything but demand is the ordinary world (``harness.world``): the floor picks and packs
what the stack puts in the WMS, the truck leaves at cut-off, parcels travel, freight settles.
Orders are created and released by Locust's users through the ERP simulator's public API;
``ExternalDemand`` takes the place of the world's customers so the floor plans those orders as
it plans its own (by their release time) and the day stays open while they may arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from datetime import datetime
from typing import Any

import simpy

from harness.clock import RealtimeClock
from harness.scenario import Scenario
from harness.world.demand import Customers
from harness.world.world import World

HEARTBEAT_S = 60.0  # virtual seconds between looks at whether arrivals are over


class LoadClock(RealtimeClock):
    """Realtime at ``factor``, held at ``start`` until ``go()``: the load window's first minute
    starts when Locust's first user can send, not when the simulators came up (the stack and
    Locust take seconds to start, which at factor 300 is most of an hour)."""

    def __init__(self, epoch: datetime, factor: float, start: float) -> None:
        super().__init__(epoch, factor, start)
        self.held = True
        self._pending: list[tuple[float, Callable[[], None]]] = []

    def now(self) -> float:
        return self._start_virtual if self.held else super().now()

    def go(self) -> None:
        """Let virtual time run from ``start``; timers asked for while held start now."""
        if not self.held:
            return
        self._start_wall = self._wall()
        self.held = False
        pending, self._pending = self._pending, []
        for t, callback in pending:
            super().call_at(t, callback)

    def call_at(self, t: float, callback: Callable[[], None]) -> None:
        if self.held and t > self._start_virtual:
            self._pending.append((t, callback))
        else:
            super().call_at(t, callback)

    async def sleep_until(self, t: float) -> None:
        while self.held and t > self._start_virtual:
            await asyncio.sleep(0.02)
        await super().sleep_until(t)


class ExternalDemand(Customers):
    """The world's customers when Locust places the orders: every order the ERP releases is
    planned for the floor by its release time, and the day stays open for arrivals until
    ``close()`` (Locust's shape says its window is over, or the Locust process ended)."""

    def __init__(self, world: World) -> None:
        super().__init__(world)  # with no orders of its own: schedules ``_day`` below
        self.arriving = True
        self.released = 0
        world.erp.observe(self._on_erp)

    def _day(self) -> Generator[Any, Any, None]:
        while self.arriving:  # keeps the world's clock busy while orders may still arrive
            yield self.env.timeout(HEARTBEAT_S)

    def close(self) -> None:
        """No more orders will arrive."""
        self.arriving = False

    def _on_erp(self, what: str, order: Any) -> None:
        if what != "released" or order.id in self.released_at:
            return
        self.released += 1
        self.released_at[order.id] = max(self.env.now, self.world.erp.clock.now())
        self.numbers[order.id] = self.released
        self.world.expected.add(order.id)
        self.world.counts["released"] += 1


def load_world(scenario: Scenario, env: simpy.Environment, models: dict[str, Any]) -> World:
    """The scenario's world with ``ExternalDemand`` for customers (its own orders: none)."""
    quiet = scenario.model_copy(update={"demand": scenario.demand.model_copy(update={"orders": 0})})
    world = World(quiet, env, models)
    world.customers = ExternalDemand(world)  # before the first step: nobody has looked yet
    return world
