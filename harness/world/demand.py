"""Demand: customers order over the day, the ERP releases their orders, and now and then a
customer calls to cancel.

Arrivals follow the scenario's curve (hourly weights clipped to opening hours). Everything
about the ``n``-th order of the day (customer, address, lines, service level) is drawn from
draws keyed by ``n``; whether and when its customer calls to cancel, from draws keyed by the
sales order. Customer service accepts a cancellation only while the warehouse has not
started on the order, and asks the WMS (and the floor's plan) before it says yes.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from harness.world.curves import hourly_weights, segments
from harness.world.people import people
from harness.world.randomness import Draws
from harness.world.warehouse import seconds_of_day
from simulators.common.errors import SimError

if TYPE_CHECKING:
    from harness.scenario import Demand
    from harness.world.world import World

MINUTE = 60.0


def arrival_times(seed: int, demand: Demand) -> list[float]:
    """When each of the day's orders arrives (seconds after midnight, ascending)."""
    stretches = segments(
        hourly_weights(demand.curve), seconds_of_day(demand.open), seconds_of_day(demand.close)
    )
    cumulative, total = [], 0.0
    for _, _, mass in stretches:
        total += mass
        cumulative.append(total)
    draws = Draws(seed, "demand", "arrivals")
    times = []
    for _ in range(demand.orders):
        start, length, _ = stretches[draws.pick(cumulative)]
        times.append(start + length * draws.random())
    times.sort()
    return times


class Customers:
    """The shop's customers and its customer service desk."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.env = world.env
        self.erp = world.erp
        self.demand = demand = world.scenario.demand
        self.people = people(world.seed)
        self.released_at: dict[str, float] = {}  # sales order -> when it was released
        self.numbers: dict[str, int] = {}  # sales order -> its place in the day's arrivals
        self.arriving = demand.orders > 0
        self.env.process(self._day())

    def order(self, number: int) -> dict[str, Any]:
        """The ``number``-th order of the day: customer, address, lines, service level."""
        demand, world = self.demand, self.world
        draws = Draws(world.seed, "order", number, "content")
        customer, ship_to = self.people.customer(draws)
        express = draws.chance(demand.express_share)
        n_lines = draws.randint(demand.lines_per_order.min, demand.lines_per_order.max)
        low, high = demand.qty_per_line.min, demand.qty_per_line.max
        qtys = [draws.randint(low, high) for _ in range(n_lines)]
        skus = world.catalogue.draw_skus(draws, n_lines)
        return {
            "customer": customer,
            "ship_to": ship_to,
            "service_level": "express" if express else "standard",
            "lines": [{"sku": sku, "qty": qty} for sku, qty in zip(skus, qtys, strict=True)],
        }

    def _day(self) -> Generator[Any, Any, None]:
        env, erp, world = self.env, self.erp, self.world
        demand = self.demand
        cancel_rate, wait = demand.cancel_rate, demand.cancel_after
        for number, at in enumerate(arrival_times(world.seed, demand), start=1):
            if at > env.now:
                yield env.timeout(at - env.now)
            order = erp.create_order(**self.order(number))
            self.released_at[order.id] = env.now
            self.numbers[order.id] = number
            world.expected.add(order.id)
            erp.release(order.id)
            world.counts["released"] += 1
            if cancel_rate:
                draws = Draws(world.seed, order.id, "customer")
                if draws.chance(cancel_rate):
                    minutes = draws.exponential_cut(
                        wait.min_minutes, wait.mean_minutes, wait.max_minutes
                    )
                    env.process(self._changes_mind(order.id, minutes * MINUTE))
        self.arriving = False

    def _changes_mind(self, order_id: str, after: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(after)
        self.call_to_cancel(order_id)

    def call_to_cancel(self, order_id: str) -> bool:
        """Customer service takes a cancellation, if the warehouse has not started on it."""
        world = self.world
        order = self.erp.orders.get(order_id)
        if order is None or order.status not in ("open", "released"):
            world.counts["cancel_refused"] += 1
            return False
        if not world.floor.may_cancel(order_id):
            world.counts["cancel_refused"] += 1
            return False
        try:
            self.erp.cancel(order_id)
        except SimError as exc:
            world.incident(f"{order_id}: the ERP refused a cancellation: {exc.message}")
            return False
        world.expected.discard(order_id)
        world.counts["cancelled"] += 1
        return True
