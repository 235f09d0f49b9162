"""Demand: sales orders arrive in the ERP over the business day and are released."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from faker import Faker

from harness.world.randomness import keyed

if TYPE_CHECKING:
    from harness.world.world import World

_FAKE = Faker("de_DE")


def _seconds(t: Any) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second


def arrival_times(world: World) -> list[float]:
    demand = world.scenario.demand
    rng = keyed(world.seed, "demand", "arrivals")
    start, end = _seconds(demand.open), _seconds(demand.close)
    return sorted(rng.uniform(start, end) for _ in range(demand.orders))


def order_for(world: World, number: int) -> dict[str, Any]:
    """The order that arrives ``number``-th: customer, address, lines, all keyed by number."""
    demand = world.scenario.demand
    rng = keyed(world.seed, "order", number, "content")
    _FAKE.seed_instance(rng.getrandbits(32))
    name = _FAKE.name()
    n_lines = rng.randint(demand.lines_per_order.min, demand.lines_per_order.max)
    skus = world.catalogue.pick_skus(rng, n_lines)
    return {
        "customer": {"name": name, "email": _FAKE.email()},
        "ship_to": {
            "name": name,
            "street": _FAKE.street_address(),
            "city": _FAKE.city(),
            "postal_code": _FAKE.postcode(),
            "country": "DE",
        },
        "service_level": "express" if rng.random() < demand.express_share else "standard",
        "lines": [
            {"sku": sku, "qty": rng.randint(demand.qty_per_line.min, demand.qty_per_line.max)}
            for sku in skus
        ],
    }


def demand(world: World) -> Generator[Any, Any, None]:
    env, erp = world.env, world.erp
    for number, at in enumerate(arrival_times(world), start=1):
        if at > env.now:
            yield env.timeout(at - env.now)
        order = erp.create_order(**order_for(world, number))
        erp.release(order.id)
        world.counts["released"] += 1
