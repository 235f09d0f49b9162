"""More than one warehouse: sites beyond ``DC1``, the orders the ERP assigns them, and the
stock transfers that refill them from ``DC1``.

Off unless the scenario has ``sites.others``: then nothing here draws, schedules or calls a
model, and the day is the day it always was. With another site:

- the ERP assigns each order a site (a keyed draw per order number, ``sites.others[].share``);
  the stack must create the WMS order there, and the site's own floor (staff, cut-off) and
  shelves (its opening stock) work it; its shelves break, shrink and are counted as DC1's
  are (``stock:``), so its adjustments reach the stack with their ``site``;
- a site's shelf below ``transfers.reorder_at`` of its opening stock makes the ERP release a
  transfer order from ``DC1`` (``transfer.released``); once the stack has created it in the
  WMS, ``DC1`` ships what its shelf holds ``ship_after_minutes`` later (``transfer.shipped``),
  the truck takes ``transit_hours`` and loses ``loss_rate`` of the units (keyed by the
  transfer), and the site counts in what arrived (``transfer.received``).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from harness.world.randomness import Draws
from harness.world.stock import Shelves
from harness.world.warehouse import Floor
from simulators.common.errors import SimError
from simulators.common.sites import DEFAULT_SITE

if TYPE_CHECKING:
    from harness.world.world import World

HOUR = 3_600.0
MINUTE = 60.0


class SiteNetwork:
    def __init__(self, world: World) -> None:
        self.world = world
        self.env = world.env
        self.settings = world.scenario.sites
        self.floors: dict[str, Floor] = {DEFAULT_SITE: world.floor}
        self.opening: dict[str, dict[str, int]] = {}
        self.open: dict[tuple[str, str], str] = {}  # (site, SKU) -> its transfer order in flight
        self.awaited: set[str] = set()  # transfer orders the WMS has not heard of yet
        self.moving = 0  # WMS transfers accepted, shipped or on the road
        self.shelves: dict[str, Shelves] = {}  # the other sites' shelves
        catalogue = world.catalogue.stock()
        for site in self.settings.others:
            stock = {sku: round(qty * site.initial_stock) for sku, qty in catalogue.items()}
            self.opening[site.name] = stock
            world.erp.add_site(site.name, stock)
            world.wms.add_site(site.name, stock)
            shelves = Shelves(world, site.name)
            self.shelves[site.name] = shelves
            self.floors[site.name] = Floor(world, site, shelves)

    # -- orders --------------------------------------------------------------------------
    def assign(self, number: int, content: dict[str, Any]) -> dict[str, Any]:
        """The ERP's site for the ``number``-th order (content unchanged with one site)."""
        if not self.settings.others:
            return content
        draw = Draws(self.world.seed, "order", number, "site").random()
        for site in self.settings.others:
            if draw < site.share:
                return {**content, "site": site.name}
            draw -= site.share
        return content

    def floor(self, site: str) -> Floor:
        return self.floors.get(site, self.world.floor)

    def on_floor(self) -> bool:
        return any(f.on_floor > 0 for name, f in self.floors.items() if name != DEFAULT_SITE)

    def busy(self) -> bool:
        others = (f for name, f in self.floors.items() if name != DEFAULT_SITE)
        buying = any(s.on_order for s in self.shelves.values())  # purchases on the way
        return bool(self.awaited) or self.moving > 0 or any(f.dock for f in others) or buying

    # -- transfers -----------------------------------------------------------------------
    def check(self, shelves: Shelves, sku: str) -> None:
        """A site's shelf ran low: ask the ERP for a transfer from DC1, one per SKU at a time."""
        site, transfers = shelves.site or DEFAULT_SITE, self.settings.transfers
        opening = self.opening[site].get(sku, 0)
        point = math.ceil(transfers.reorder_at * opening)
        if point <= 0 or shelves.good[sku] >= point or (site, sku) in self.open:
            return
        qty = max(1, round(transfers.order_up_to * opening) - shelves.good[sku])
        world = self.world
        try:
            order = world.erp.transfers.release(DEFAULT_SITE, site, [{"sku": sku, "qty": qty}])
        except SimError as exc:
            world.incident(f"{site}/{sku}: the ERP refused a transfer: {exc.message}")
            return
        self.open[(site, sku)] = order.id
        self.awaited.add(order.id)
        world.counts["transfers_released"] += 1

    def heard(self, what: str, transfer: Any) -> None:
        """The WMS created a transfer (the stack did): DC1 will ship it."""
        if what == "transfer_created":
            self.awaited.discard(transfer.transfer_ref)
            self.moving += 1
            self.env.process(self._move(transfer))

    def _move(self, transfer: Any) -> Generator[Any, Any, None]:
        world, wms, settings = self.world, self.world.wms, self.settings.transfers
        yield self.env.timeout(settings.ship_after_minutes * MINUTE)
        source = self.floor(transfer.from_site).shelves
        book = wms.stock_at(transfer.from_site)
        shipped: dict[int, int] = {}
        for line in transfer.lines:
            sku = line["sku"]
            qty = max(0, min(line["qty"], source.good.get(sku, 0), book.get(sku, 0)))
            shipped[line["line"]] = qty
            source.good[sku] = source.good.get(sku, 0) - qty
        try:
            wms.ship_transfer(transfer.id, shipped)
        except SimError as exc:
            for line in transfer.lines:
                source.good[line["sku"]] += shipped[line["line"]]
            world.incident(f"{transfer.id}: the WMS refused to ship: {exc.message}")
            self._done(transfer)
            return
        for line in transfer.lines:
            source._check(line["sku"])  # DC1 may need a purchase now
        if transfer.status != "shipped":
            self._done(transfer)  # nothing at DC1 to send
            return
        world.counts["transfers_shipped"] += 1
        yield self.env.timeout(settings.transit_hours * HOUR)
        draws = Draws(world.seed, transfer.transfer_ref, transfer.id, "transit")
        received = {
            line["line"]: line["shipped_qty"] - lost(draws, line["shipped_qty"], settings.loss_rate)
            for line in transfer.lines
        }
        try:
            wms.receive_transfer(transfer.id, received)
        except SimError as exc:
            world.incident(f"{transfer.id}: the WMS refused the receipt: {exc.message}")
            self._done(transfer)
            return
        target = self.floor(transfer.to_site).shelves
        for line in transfer.lines:
            target.good[line["sku"]] = target.good.get(line["sku"], 0) + line["received_qty"]
        world.counts["transfers_received"] += 1
        self._done(transfer)
        for line in transfer.lines:
            target._check(line["sku"])

    def _done(self, transfer: Any) -> None:
        self.moving -= 1
        for line in transfer.lines:
            if self.open.get((transfer.to_site, line["sku"])) == transfer.transfer_ref:
                del self.open[(transfer.to_site, line["sku"])]


def lost(draws: Draws, units: int, rate: float) -> int:
    """Units gone missing on the truck: one keyed draw per unit, none when nothing is lost."""
    return sum(draws.chance(rate) for _ in range(units)) if rate > 0 else 0
