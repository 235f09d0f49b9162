"""The shelves: what is physically there, which the WMS only knows from what it is told.

The WMS's ``stock`` is the system (book) quantity. The world keeps the truth per SKU:

- ``good``: sellable units on the shelf; pickers take from here and come up short when it
  holds less than the WMS thinks.
- ``damaged``: units broken on the shelf (``stock.damage_rate``); the next picker at that
  shelf, or a counter, reports them to the WMS (``inventory.adjusted``, reason ``damage``).
- Shrink (``stock.shrink_rate``) simply vanishes from ``good``: only a cycle count finds it
  (reason ``cycle_count``).
- Found units (``stock.found_rate``) appear in ``good`` unbooked: the next cycle count books
  them (reason ``found``, a positive delta).

Every site's shelves break, shrink and are counted, each reporting at its own site; only the
default site buys from suppliers and plays the script (transfers refill the others).

Cycle counts compare the shelf with the WMS and report the difference; purchasing reorders a
SKU when its shelf falls below the reorder point, and the goods arrive at the dock after a
lead time (``receipt.confirmed``; the shelf fills too). Every change to the books goes
through the WMS model, so the stack carries it to the ERP and the books stay reconcilable.

A scenario's script (docs/capsules.md) adds receipts and adjustments at given times, and may
say how a pick comes out; the shelves play them as physical changes the WMS is told about,
and never take more than a shelf holds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from harness.scripted import moment_text
from harness.world.randomness import Draws, first_draws, key_material, poisson_from
from harness.world.warehouse import DAY, seconds_of_day
from simulators.common.errors import SimError

if TYPE_CHECKING:
    from harness.scripted import TimelineEntry
    from harness.world.world import World

HOUR = 3_600.0
_HALF = 1.0 / (1 << 32)  # scales 32 random bits into [0, 1)


class Shelves:
    def __init__(self, world: World, site: str | None = None) -> None:
        self.world = world
        self.env = world.env
        self.wms = world.wms
        self.site = site  # None: the default site
        # DC1 buys from suppliers; another site is refilled by transfers, or buys too
        self.buys = site is None or any(
            s.name == site and s.refilled_by == "suppliers" for s in world.scenario.sites.others
        )
        settings = world.scenario.stock
        self.skus = world.catalogue.skus  # most popular first
        stock = world.wms.stock_at(site)
        self.good: dict[str, int] = {sku: stock.get(sku, 0) for sku in self.skus}
        self.damaged: dict[str, int] = dict.fromkeys(self.skus, 0)
        self.short_pick_rate = world.scenario.warehouse.short_pick_rate
        self.on_order: dict[str, str] = {}  # SKU -> receipt reference of the open purchase
        self.due: dict[str, tuple[float, int]] = {}  # SKU -> (at the dock, qty) of that purchase
        self.deliveries_due = 0
        # Every site's shelves break, shrink and are counted (each reports at its own site);
        # only DC1 buys from suppliers and plays the script: transfers refill the others.
        if settings.damage_rate or settings.shrink_rate or settings.found_rate:
            self.env.process(
                self._wear_and_tear(settings.damage_rate, settings.shrink_rate, settings.found_rate)
            )
        if settings.cycle_count.share_per_day > 0:
            self.env.process(self._cycle_counts())
        if not self.buys:  # refilled by transfers (harness/world/sites.py), no script there
            return
        refill = settings.replenishment
        self.reorder_point: dict[str, int] = {}
        self.order_up_to: dict[str, int] = {}
        if refill.reorder_at > 0:
            for sku, units in self.good.items():
                point = math.ceil(refill.reorder_at * units)
                if point > 0:
                    self.reorder_point[sku] = point
                    self.order_up_to[sku] = max(point + 1, round(refill.order_up_to * units))
        self.lead_time_s = refill.lead_time_hours * HOUR
        self.combine_s = refill.combine_hours * HOUR
        self.purchases: Counter[str] = Counter()
        if site is not None:  # the script's receipts and adjustments play at DC1
            return
        self.deliveries_due = len(world.script.stock)  # scripted receipts and adjustments
        if world.script.stock:
            self.env.process(self._scripted())

    # -- picking -------------------------------------------------------------------------
    def take(self, fo: Any, draws: Draws) -> dict[int, int]:
        """What the picker finds and takes per line: the whole qty unless they mis-pick or
        the shelf holds less. One 64-bit draw per line, always, in line order: its high half
        says whether the picker slips, its low half how much they then take."""
        world = self.world
        counts = world.counts
        picked: dict[int, int] = {}
        taken: dict[str, int] = {}  # by this order, for an order that names a SKU twice
        for line in fo.lines:
            bits = draws.bits()
            want = line.qty
            if (bits >> 32) * _HALF < self.short_pick_rate:
                want = int((bits & 0xFFFFFFFF) * _HALF * line.qty)  # 0 .. qty-1
                counts["mis_picks"] += 1
            picked[line.line], _ = self._take_line(line, want, taken)
        counts["lines_picked"] += len(fo.lines)
        return picked

    def _take_line(self, line: Any, want: int, taken: dict[str, int]) -> tuple[int, int]:
        """Take ``want`` of a line's SKU, or what the shelf holds (less what this order took
        already); returns (taken, on the shelf before)."""
        counts, sku = self.world.counts, line.sku
        if self.damaged.get(sku):
            self._report_damage(sku)
        book = self.wms.stock_at(self.site).get(sku, 0)
        on_shelf = min(self.good.get(sku, 0), book - taken.get(sku, 0))
        qty = max(0, min(want, on_shelf))
        if qty < want:
            counts["shelf_short_lines"] += 1
        if qty < line.qty:
            counts["short_lines"] += 1
        if qty:
            self.good[sku] -= qty
            taken[sku] = taken.get(sku, 0) + qty
        self._check(sku)  # a picker at a low (or empty) shelf: time to reorder?
        return qty, on_shelf

    def take_as_scripted(self, fo: Any, shorts: dict[int, int], order: str) -> dict[int, int]:
        """What the picker takes when the script says how the pick comes out: each line's qty
        less its scripted short (a line the script leaves out is picked whole), never more
        than the shelf holds (then what is there, and an incident: the script could not be
        followed). No draws: a scripted pick has no mis-picks."""
        world = self.world
        counts = world.counts
        picked: dict[int, int] = {}
        taken: dict[str, int] = {}
        lines = {line.line for line in fo.lines}
        for number in sorted(set(shorts) - lines):
            world.incident(
                f"{order}: the script could not be followed: it picks line {number}, but "
                f"{fo.id} has {len(fo.lines)} line(s)"
            )
        for line in fo.lines:
            want = max(0, line.qty - shorts.get(line.line, 0))
            qty, on_shelf = self._take_line(line, want, taken)
            if qty < want:
                world.incident(
                    f"{order}: the script could not be followed: it picks {want} of {line.sku} "
                    f"(line {line.line}), the shelf held {max(0, on_shelf)}"
                )
            picked[line.line] = qty
        counts["lines_picked"] += len(fo.lines)
        counts["scripted_picks"] += 1
        return picked

    def put_back(self, fo: Any, picked: dict[int, int] | None = None) -> None:
        """Goods go back on the shelf (a refused pick, or an order cancelled after picking)."""
        for line in fo.lines:
            qty = line.picked_qty if picked is None else picked.get(line.line, 0)
            if qty and line.sku in self.good:
                self.good[line.sku] += qty

    # -- losses --------------------------------------------------------------------------
    def _wear_and_tear(
        self, damage_rate: float, shrink_rate: float, found_rate: float
    ) -> Generator[Any, Any, None]:
        """Every day, some units break, some vanish and some turn up, at keyed times, shelf by
        shelf."""
        env, world, seed = self.env, self.world, self.world.seed
        # DC1's draws are keyed as they were before there were other sites: (seed, sku, day,
        # purpose); another site's (seed, site, sku, day, purpose). Each shelf's first draws
        # are taken straight from its key's hash (``first_draws``): the same draws a Draws
        # would give, at a third of the cost, for every SKU of every site every day.
        site_key = () if self.site is None else (self.site,)
        prefixes: dict[str, bytes] = {}  # the key's bytes up to the day, per SKU
        good = self.good
        day = 0
        while day < world.days and world.busy():
            start = day * DAY
            if start > env.now:
                yield env.timeout(start - env.now)
            incidents = []
            losses, found = f"{day}:losses".encode(), f"{day}:found".encode()
            for index, sku in enumerate(self.skus):
                units = good[sku]
                if units <= 0:
                    continue
                shelf = prefixes.get(sku)
                if shelf is None:
                    shelf = prefixes[sku] = key_material(seed, *site_key, sku, "")
                u = first_draws(shelf + losses)
                broken = poisson_from(u[0], u[1], units * damage_rate)
                lost = poisson_from(u[2], u[3], units * shrink_rate)
                if broken:
                    incidents.append((start + u[4] * DAY, index, 0, broken))
                if lost:
                    incidents.append((start + u[5] * DAY, index, 1, lost))
                if found_rate:  # keyed apart, so the losses' draws keep their keys
                    t = first_draws(shelf + found)
                    if turned_up := poisson_from(t[0], t[1], units * found_rate):
                        incidents.append((start + t[2] * DAY, index, 2, turned_up))
            incidents.sort()
            for at, index, cause, units in incidents:
                if at > env.now:
                    yield env.timeout(at - env.now)
                sku = self.skus[index]
                if cause == 2:
                    self.good[sku] += units
                    world.counts["units_found"] += units
                    continue
                units = min(units, self.good[sku])
                self.good[sku] -= units
                if cause == 0:
                    self.damaged[sku] += units
                    world.counts["units_damaged"] += units
                else:
                    world.counts["units_shrunk"] += units
                self._check(sku)
            day += 1

    def _report_damage(self, sku: str) -> None:
        units, self.damaged[sku] = self.damaged[sku], 0
        self._adjust(sku, -units, "damage")

    # -- cycle counts --------------------------------------------------------------------
    def _cycle_counts(self) -> Generator[Any, Any, None]:
        """Counters count the next block of SKUs every day: the most popular first, then on
        down the list, and round again."""
        env, world, skus = self.env, self.world, self.skus
        settings = world.scenario.stock.cycle_count
        block = max(1, min(len(skus), round(settings.share_per_day * len(skus))))
        at = seconds_of_day(settings.at)
        day = 0
        while day < world.days and world.busy():
            when = day * DAY + at
            if when >= env.now:
                yield env.timeout(when - env.now)
                first = day * block
                for offset in range(block):
                    self.count(skus[(first + offset) % len(skus)])
            day += 1

    def count(self, sku: str) -> None:
        """Count one shelf and tell the WMS what it got wrong."""
        self.world.counts["skus_counted"] += 1
        if self.damaged[sku]:
            self._report_damage(sku)
        difference = self.good[sku] - self.wms.stock_at(self.site).get(sku, 0)
        if difference:
            self._adjust(sku, difference, "cycle_count" if difference < 0 else "found")

    def _adjust(self, sku: str, delta: int, reason: str) -> bool:
        try:
            self.wms.adjust(sku, delta, reason, self.site)
        except SimError as exc:
            self.world.incident(f"{sku}: the WMS refused an adjustment: {exc.code}: {exc.message}")
            return False
        self.world.counts[f"adjusted_{reason}"] += 1
        return True

    # -- replenishment -------------------------------------------------------------------
    def _check(self, sku: str) -> None:
        if not self.buys:
            self.world.sites.check(self, sku)  # another site asks DC1 for a transfer
            return
        point = self.reorder_point.get(sku)
        if point is not None and self.good[sku] < point and sku not in self.on_order:
            self.purchases[sku] += 1
            at = "" if self.site is None else f"{self.site}-"
            reference = f"RC-{at}{sku}-{self.purchases[sku]:03d}"
            self.on_order[sku] = reference
            self.env.process(self._purchase(sku, reference))

    def _purchase(self, sku: str, reference: str) -> Generator[Any, Any, None]:
        """A purchase for one SKU: ordered now, at the dock after the lead time, on its own
        truck or (``combine_hours``) on an earlier purchase's."""
        world = self.world
        qty = max(1, self.order_up_to[sku] - self.good[sku])
        world.counts["purchases"] += 1
        draws = Draws(world.seed, reference, "lead_time")
        lead = self.lead_time_s * draws.uniform(0.75, 1.25)
        self.due[sku] = (self.env.now + lead, qty)
        yield self.env.timeout(lead)
        if self.on_order.get(sku) != reference:
            return  # it came early, on another purchase's truck
        lines = {sku: qty}
        for other, (at, units) in sorted(self.due.items()) if self.combine_s else ():
            if other != sku and at <= self.env.now + self.combine_s:
                lines[other] = units
        for arrived in lines:
            del self.on_order[arrived], self.due[arrived]
        try:
            self.wms.receive(reference, [{"sku": s, "qty": q} for s, q in lines.items()], self.site)
        except SimError as exc:
            world.incident(f"{reference}: the WMS refused the receipt: {exc.code}: {exc.message}")
            return
        for arrived, units in lines.items():
            self.good[arrived] += units
            self._check(arrived)
        world.counts["receipts"] += 1

    # -- the script's receipts and adjustments -----------------------------------------------
    def _scripted(self) -> Generator[Any, Any, None]:
        """The script's receipts and adjustments, each at its time, in timeline order."""
        env, receipts = self.env, Counter[str]()
        for at, _, entry in self.world.script.stock:
            if at > env.now:
                yield env.timeout(at - env.now)
            self.deliveries_due -= 1
            self.scripted(entry, receipts)

    def scripted(self, entry: TimelineEntry, receipts: Counter[str]) -> bool:
        """One scripted receipt (numbered per SKU: ``RC-<sku>-S001``) or adjustment."""
        if entry.receipt is not None:
            sku = entry.receipt.sku
            receipts[sku] += 1
            return self.receive(f"RC-{sku}-S{receipts[sku]:03d}", sku, entry.receipt.qty)
        assert entry.adjustment is not None  # script.STOCK holds only these two kinds
        change = entry.adjustment
        return self.adjust(change.sku, change.delta, change.reason)

    def receive(self, reference: str, sku: str, qty: int) -> bool:
        """Goods at the dock: the WMS receives them, then they go on the shelf (as a
        purchase's do)."""
        try:
            self.wms.receive(reference, [{"sku": sku, "qty": qty}])
        except SimError as exc:
            self.world.incident(
                f"{reference}: the WMS refused the receipt: {exc.code}: {exc.message}"
            )
            return False
        self.good[sku] = self.good.get(sku, 0) + qty
        self.world.counts["receipts"] += 1
        self._check(sku)
        return True

    def adjust(self, sku: str, delta: int, reason: str) -> bool:
        """Stock changes on the shelf (broken, lost, found) and the WMS is told at once, as
        ``_adjust`` tells it of what a picker or a counter found. The shelf never goes below
        zero: a loss larger than what it holds empties it (an incident says so)."""
        if not self._adjust(sku, delta, reason):
            return False
        held = self.good.get(sku, 0)
        if held + delta < 0:
            self.world.incident(
                f"{sku}: the script could not be followed: adjusting by {delta} at "
                f"{moment_text(self.env.now)}, the shelf held {held}"
            )
        self.good[sku] = max(0, held + delta)
        self._check(sku)
        return True
