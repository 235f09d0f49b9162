"""Parcels on the road: pickup, line haul, last mile, delivery, then freight settlement."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from harness.world.randomness import keyed
from simulators.common.errors import SimError

if TYPE_CHECKING:
    from harness.world.world import World

DAY = 86_400.0
HOUR = 3_600.0


def parcel(world: World, tracking: str, service_level: str, key: str) -> Generator[Any, Any, None]:
    env, carrier, road = world.env, world.carrier, world.scenario.carrier
    rng = keyed(world.seed, key, "transit")
    try:
        carrier.scan(tracking, "picked_up")
        yield env.timeout(rng.uniform(1, 3) * HOUR)
        carrier.scan(tracking, "in_transit")
        days = road.express_transit_days if service_level == "express" else road.ground_transit_days
        pickup_day = (env.now // DAY) * DAY
        out_at = pickup_day + days * DAY + 8 * HOUR
        delivered_at = (
            pickup_day + days * DAY + road.delivery_hour * HOUR + rng.uniform(-3, 3) * HOUR
        )
        yield env.timeout(max(0.0, out_at - env.now))
        carrier.scan(tracking, "out_for_delivery")
        yield env.timeout(max(60.0, delivered_at - env.now))
        carrier.scan(tracking, "delivered")
        world.counts["delivered"] += 1
        yield env.timeout(road.settle_after_hours * HOUR)
        label = carrier.labels[carrier.by_tracking[tracking]]
        shipment = world.tms.shipments.get(label.shipment_ref)
        if shipment is not None and shipment.status == "planned":
            world.tms.settle(shipment.id)
    except SimError as exc:
        world.incidents.append(f"{tracking}: the parcel could not go on: {exc.code}: {exc.message}")
