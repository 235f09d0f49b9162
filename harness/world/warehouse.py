"""The warehouse floor: pick, pack, wait for the label, load the truck at carrier cut-off.

A fulfilment order exists only once the stack has created it in the WMS; this process
starts then, and acts only through the WMS model, as the floor acts through the WMS.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from harness.world.parcels import parcel
from harness.world.randomness import keyed
from simulators.common.errors import SimError

if TYPE_CHECKING:
    from harness.world.world import World

DAY = 86_400.0


def seconds_to_cutoff(world: World, now: float) -> float:
    cutoff = world.scenario.warehouse.cutoff
    at = cutoff.hour * 3600 + cutoff.minute * 60
    day_start = (now // DAY) * DAY
    next_cutoff = day_start + at if now <= day_start + at else day_start + DAY + at
    return next_cutoff - now


def decide_picks(world: World, fo: Any, key: str) -> dict[int, int]:
    """Picked qty per line: some lines come up short, and never more than the bin holds."""
    rate = world.scenario.warehouse.short_pick_rate
    available = dict(world.wms.stock)
    picked: dict[int, int] = {}
    for line in fo.lines:
        rng = keyed(world.seed, key, "pick", line.line)
        qty = rng.randint(0, line.qty - 1) if rng.random() < rate else line.qty
        qty = min(qty, available.get(line.sku, 0))
        available[line.sku] = available.get(line.sku, 0) - qty
        picked[line.line] = qty
    return picked


def fulfil(world: World, fo_id: str) -> Generator[Any, Any, None]:
    env, wms, wh = world.env, world.wms, world.scenario.warehouse
    fo = wms.orders[fo_id]
    key = world.entity_key(fo)
    try:
        with world.pickers.request() as turn:
            yield turn
            jitter = keyed(world.seed, key, "pick_time").uniform(0.7, 1.3)
            yield env.timeout(wh.pick_minutes_per_line * 60 * len(fo.lines) * jitter)
        if fo.status != "accepted":
            return  # cancelled while it waited for a picker
        wms.pick(fo_id, decide_picks(world, fo, key))
        if fo.status != "picked":
            return  # nothing could be picked: short-closed
        with world.packers.request() as turn:
            yield turn
            yield env.timeout(wh.pack_minutes * 60)
        if fo.status != "picked":
            return
        wms.pack(fo_id)
        if fo.status != "labelled":
            outcome = yield world.label_event(fo_id)
            if outcome != "labelled":
                return
        yield env.timeout(seconds_to_cutoff(world, env.now))
        if fo.status != "labelled":
            return  # cancelled before the truck left
        wms.ship(fo_id)
        world.counts["shipped"] += 1
        env.process(parcel(world, fo.label.tracking_number, fo.service_level, key))
    except SimError as exc:
        world.incidents.append(f"{fo_id}: the floor could not go on: {exc.code}: {exc.message}")
