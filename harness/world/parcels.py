"""Parcels on the road: the truck's line haul to the hub, the depot's vans, the freight audit.

The carrier's network works in batches, and so does this model:

1. **Pickup.** At cut-off the truck takes the day's parcels (``picked_up``).
2. **Line haul.** It drives to the hub; parcels come off it one by one (``in_transit``)
   over the next one to three hours. Now and then one is held (``exception``): it goes back
   into the network later and is delivered ``exception_delay_days`` late.
3. **Delivery.** On the due day the vans leave the depot at 08:00 with every parcel due
   (``out_for_delivery``) and deliver them through the day (``delivered``) around
   ``delivery_hour``.
4. **Freight audit.** ``settle_after_hours`` after each delivery the TMS settles its freight.

Each parcel's journey (hub time, whether it is held, delivery minute) is drawn up front from
draws keyed by its order, so a parcel picked up on the same day is delivered at the same
minute in every run with that seed. One process per truckload and per van round walks its
parcels in time order (ties broken by order, never by tracking number, which the carrier
hands out in the order the stack happened to buy labels): on a 100,000-order day SimPy's
event queue holds a few events, not one per parcel on the road.

A parcel whose order the script gives ``scans`` (docs/capsules.md) travels alone instead: it
is scanned with exactly those statuses at those times (one already past is scanned at once),
and its freight is audited after a ``delivered`` scan as any parcel's. One never scanned
``delivered`` stays on the road (the world stays busy with it until the horizon).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.scripted import moment_text
from harness.world.randomness import Draws
from simulators.common.errors import SimError

if TYPE_CHECKING:
    from harness.scripted import Scan
    from harness.world.world import World

DAY = 86_400.0
HOUR = 3_600.0
VANS_LEAVE = 8 * HOUR  # from the depot, every morning


@dataclass(slots=True, eq=False)
class Parcel:
    tracking: str
    key: str  # the order it carries: its draws and its place in ties
    hub_at: float
    due_day: float  # midnight of the day it is due for delivery
    held: bool  # an exception on the road
    held_at: float  # when in the window before the vans (share of it)
    back_at: float  # when in the window after the exception (share of it)
    late_by: float  # seconds off the usual delivery hour
    lost: bool = False

    def delivered_at(self, delivery_hour: float) -> float:
        """On the due day around the delivery hour, but never before the vans leave."""
        usual = self.due_day + delivery_hour * HOUR + self.late_by
        return max(self.due_day + VANS_LEAVE + 60.0, usual)


def _by_hub(parcel: Parcel) -> tuple[float, str]:
    return parcel.hub_at, parcel.key


class Road:
    def __init__(self, world: World) -> None:
        self.world = world
        self.env = world.env
        self.carrier = world.carrier
        self.road = world.scenario.carrier
        self.on_road = 0
        self._depot: dict[float, list[Parcel]] = {}  # due day -> parcels waiting for its vans

    # -- pickup and line haul ------------------------------------------------------------
    def take(self, loads: list[tuple[str, str, str]]) -> None:
        """The truck takes ``(tracking number, service level, key)`` parcels at cut-off."""
        world, env, road = self.world, self.env, self.road
        now = env.now
        pickup_day = (now // DAY) * DAY
        parcels = []
        scripted = world.script.scans
        for tracking, service_level, key in loads:
            journey = scripted.get(key)
            if journey is not None:
                self.on_road += 1
                env.process(self._scripted_journey(tracking, key, journey))
                continue
            draws = Draws(world.seed, key, "road")
            to_hub = draws.uniform(1, 3) * HOUR
            held = draws.chance(road.exception_rate)
            held_at, back_at = draws.random(), draws.uniform(0.25, 0.75)
            late_by = draws.uniform(-3, 3) * HOUR
            express = service_level == "express"
            days = road.express_transit_days if express else road.ground_transit_days
            parcel = Parcel(
                tracking,
                key,
                now + to_hub,
                pickup_day + days * DAY,
                held,
                held_at,
                back_at,
                late_by,
            )
            self.on_road += 1
            if self._scan(parcel, "picked_up"):
                parcels.append(parcel)
        if parcels:
            parcels.sort(key=_by_hub)
            env.process(self._line_haul(parcels))

    def _line_haul(self, parcels: list[Parcel]) -> Generator[Any, Any, None]:
        """The truck reaches the hub; parcels are scanned in as they come off it."""
        env = self.env
        for parcel in parcels:
            if parcel.hub_at > env.now:
                yield env.timeout(parcel.hub_at - env.now)
            if not self._scan(parcel, "in_transit"):
                continue
            if parcel.held:
                env.process(self._held(parcel))
            else:
                self._to_depot(parcel)

    def _held(self, parcel: Parcel) -> Generator[Any, Any, None]:
        """An exception before the vans would have left: held, then back in the network,
        and everything after moves by the exception's delay."""
        env = self.env
        window = max(60.0, parcel.due_day + VANS_LEAVE - env.now)
        yield env.timeout(parcel.held_at * window)
        if not self._scan(parcel, "exception"):
            return
        self.world.counts["exceptions"] += 1
        parcel.due_day += self.road.exception_delay_days * DAY
        yield env.timeout(parcel.back_at * (parcel.due_day + VANS_LEAVE - env.now))
        if self._scan(parcel, "in_transit"):
            self._to_depot(parcel)

    # -- delivery ------------------------------------------------------------------------
    def _to_depot(self, parcel: Parcel) -> None:
        if parcel.due_day + VANS_LEAVE <= self.env.now:  # its vans have gone: a van of its own
            self.env.process(self._round(parcel.due_day, [parcel]))
            return
        waiting = self._depot.get(parcel.due_day)
        if waiting is None:
            self._depot[parcel.due_day] = waiting = []
            self.env.process(self._vans(parcel.due_day))
        waiting.append(parcel)

    def _vans(self, day: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(day + VANS_LEAVE - self.env.now)
        yield from self._round(day, self._depot.pop(day))

    def _round(self, day: float, parcels: list[Parcel]) -> Generator[Any, Any, None]:
        """Out for delivery now; delivered one by one through the day."""
        env, hour = self.env, self.road.delivery_hour
        now = env.now
        parcels = [p for p in parcels if self._scan(p, "out_for_delivery")]
        rounds = sorted((max(now + 60.0, p.delivered_at(hour)), p.key, p) for p in parcels)
        env.process(self._freight_audit(rounds))
        for at, _, parcel in rounds:
            if at > env.now:
                yield env.timeout(at - env.now)
            if self._scan(parcel, "delivered"):
                self.world.counts["delivered"] += 1
                self.world.returns.delivered(parcel.key)

    def _freight_audit(self, rounds: list[tuple[float, str, Parcel]]) -> Generator[Any, Any, None]:
        """The TMS settles each delivered parcel's freight a fixed time after delivery."""
        env = self.env
        after = self.road.settle_after_hours * HOUR
        for at, _, parcel in rounds:
            if at + after > env.now:
                yield env.timeout(at + after - env.now)
            if parcel.lost:
                continue
            self.on_road -= 1
            self._settle(parcel.tracking)

    def _settle(self, tracking: str) -> None:
        """The freight audit of one delivered parcel: the TMS settles its shipment."""
        world, carrier = self.world, self.carrier
        label = carrier.labels[carrier.by_tracking[tracking]]
        shipment = world.tms.shipments.get(label.shipment_ref)
        if shipment is None or shipment.status != "planned":
            return
        try:
            world.tms.settle(shipment.id)
        except SimError as exc:
            world.incident(f"{shipment.id}: freight not settled: {exc.code}: {exc.message}")
            return
        world.counts["settled"] += 1

    # -- a scripted journey --------------------------------------------------------------
    def _scripted_journey(
        self, tracking: str, order: str, events: tuple[Scan, ...]
    ) -> Generator[Any, Any, None]:
        """The script's scans of one parcel, in its order, each at its time or at once when
        that has passed. A scan the carrier refuses is an incident and the journey goes on."""
        env, world = self.env, self.world
        delivered = False
        for event in events:
            if event.at > env.now:
                yield env.timeout(event.at - env.now)
            try:
                self.carrier.scan(tracking, event.status)
            except SimError as exc:
                world.incident(
                    f"{order}: the script could not be followed: scan {event.status} at "
                    f"{moment_text(event.at)} of {tracking}: {exc.code}: {exc.message}"
                )
                continue
            if event.status == "exception":
                world.counts["exceptions"] += 1
            elif event.status == "delivered" and not delivered:
                delivered = True
                world.counts["delivered"] += 1
                world.returns.delivered(order)
                env.process(self._audit_one(tracking))
        # Never delivered: it stays on the road (``on_road``), and the world busy with it.

    def _audit_one(self, tracking: str) -> Generator[Any, Any, None]:
        """The freight audit of a parcel delivered on the script's word."""
        yield self.env.timeout(self.road.settle_after_hours * HOUR)
        self.on_road -= 1
        self._settle(tracking)

    def _scan(self, parcel: Parcel, status: str) -> bool:
        try:
            self.carrier.scan(parcel.tracking, status)
        except SimError as exc:
            parcel.lost = True
            self.on_road -= 1
            self.world.incident(
                f"{parcel.tracking}: the parcel could not go on: {exc.code}: {exc.message}"
            )
            return False
        return True
