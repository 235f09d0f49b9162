"""The product team: the item master as it moves during a day.

What happens, in the order a business sees it:

1. **Cutover.** Before the day, the catalogue is in the ERP and in the WMS (a real go-live
   loads master data first). A share of it (``master_data.case_share``) is sold in cases of
   ``each_per_case`` eaches; the cutover loads that too, so nothing crosses the wire.
2. **Launches.** ``new_items_per_day`` times on the business day, between ``demand.open`` and
   ``demand.close``, the product team creates a new SKU in the ERP (``item.created``). Its
   first delivery (``new_item_stock`` eaches) is in both books at launch: the stack's job
   here is the item master, not the stock. ``orders_per_new_item`` customers order it, each
   ``first_order_after`` the launch: soon, so the order races the item to the WMS.
3. **Edits.** ``changes_per_day`` times on the business day an item gets a new description or is
   re-weighed (``item.changed``, the version grows). A case size never changes: a new case
   pack is a new SKU. A share of the new descriptions (``refused_edit_share``) is a pasted
   text longer than the WMS takes: the ERP keeps it, the WMS refuses that version, and the
   product team shortens it ``CORRECTION_AFTER_S`` later (a new version, which the WMS takes).

Every draw is keyed (ARCHITECTURE principle 3): by SKU for how it is sold, by the launch's
number for its time, item and orders, by the edit's number for its time and content. With
the section at its defaults nothing is drawn and nothing scheduled, and every line an order
carries is the same as before the section existed.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from harness.world.catalogue import sku_name
from harness.world.randomness import Draws
from harness.world.warehouse import seconds_of_day
from simulators.common.errors import SimError

if TYPE_CHECKING:
    from harness.world.world import World

MINUTE = 60.0
NEW_ITEM_RANK = 500_000  # floor rank of orders for new items: after the day's own arrivals
CORRECTION_AFTER_S = 30 * MINUTE  # a refused description is shortened this long after
LONG_DESCRIPTION = 240  # characters of a pasted text: over the WMS's 200, within the ERP's


class ProductTeam:
    def __init__(self, world: World) -> None:
        self.world = world
        self.env = world.env
        self.section = section = world.scenario.master_data
        self.each_per_case: dict[str, int] = {}  # case items -> eaches per case
        self.pending = 0  # orders for new items not yet placed
        self.skus: list[str] = list(world.catalogue.skus)  # catalogue, then launches
        if section.case_share > 0:
            for sku in world.catalogue.skus:
                if (per_case := self._case_size(sku)) is not None:
                    world.erp.cutover_item(sku, "CS", per_case)
                    world.wms.cutover_item(sku, per_case)
        demand = world.scenario.demand
        self.window = (seconds_of_day(demand.open), seconds_of_day(demand.close))
        if section.new_items_per_day:
            self.pending = section.new_items_per_day * section.orders_per_new_item
            for n in range(section.new_items_per_day):
                self.env.process(self._launch(n + 1))
        for n in range(section.changes_per_day):
            self.env.process(self._edit(n + 1))

    def line(self, sku: str, qty: int) -> dict[str, Any]:
        """An order line as the shop sells the item: ``qty`` cases of a case item."""
        if sku in self.each_per_case:
            return {"sku": sku, "qty": qty, "uom": "CS"}
        return {"sku": sku, "qty": qty}

    def _case_size(self, sku: str) -> int | None:
        draws = Draws(self.world.seed, sku, "uom")
        if not draws.chance(self.section.case_share):
            return None
        sizes = self.section.each_per_case
        self.each_per_case[sku] = per_case = sizes[draws.randint(0, len(sizes) - 1)]
        return per_case

    def _when(self, draws: Draws) -> float:
        """A moment of the business day (the day the orders arrive, as ``demand``'s)."""
        start, end = self.window
        return draws.uniform(start, end)

    def _launch(self, n: int) -> Generator[Any, Any, None]:
        world, section = self.world, self.section
        draws = Draws(world.seed, "new-item", n)
        at = self._when(draws)
        yield self.env.timeout(max(0.0, at - self.env.now))
        sku = sku_name(n, world.scenario.catalogue.sku_style, "NEW")
        per_case = self._case_size(sku)
        weight = round(draws.uniform(0.1, 3.0), 2)
        world.erp.create_item(
            sku,
            f"New article {n}",
            "CS" if per_case else "EA",
            per_case or 1,
            weight,
            opening_stock=section.new_item_stock,
        )
        world.wms.stock[sku] = world.wms.stock.get(sku, 0) + section.new_item_stock
        world.shelves.good[sku] = world.shelves.good.get(sku, 0) + section.new_item_stock
        world.shelves.damaged.setdefault(sku, 0)
        self.skus.append(sku)
        world.counts["items_launched"] += 1
        for k in range(section.orders_per_new_item):
            self.env.process(self._order_for(sku, n, k))

    def _order_for(self, sku: str, n: int, k: int) -> Generator[Any, Any, None]:
        world, wait = self.world, self.section.first_order_after
        draws = Draws(world.seed, "new-item", n, "order", k)
        minutes = draws.exponential_cut(wait.min_minutes, wait.mean_minutes, wait.max_minutes)
        yield self.env.timeout(minutes * MINUTE)
        qty = draws.randint(
            world.scenario.demand.qty_per_line.min, world.scenario.demand.qty_per_line.max
        )
        self.pending -= 1
        world.customers.place_for_new_item(
            self.line(sku, qty), NEW_ITEM_RANK + n * 1_000 + k, draws
        )

    def _edit(self, n: int) -> Generator[Any, Any, None]:
        world = self.world
        draws = Draws(world.seed, "item-edit", n)
        at = self._when(draws)
        yield self.env.timeout(max(0.0, at - self.env.now))
        sku = self.skus[draws.randint(0, len(self.skus) - 1)]
        pasted = False
        try:
            if draws.chance(0.5):
                pasted = self._pasted(n)
                description = f"{sku}, revised {n}"
                if pasted:
                    description = description.ljust(LONG_DESCRIPTION, ".")
                world.erp.change_item(sku, description=description)
            else:
                weight = world.erp.item(sku).weight_kg
                world.erp.change_item(
                    sku, weight_kg=round(weight * draws.uniform(0.8, 1.2), 2) or 0.01
                )
        except SimError as exc:
            world.incident(f"{sku}: the ERP refused an item edit: {exc.message}")
            return
        world.counts["items_changed"] += 1
        if pasted:
            world.counts["item_descriptions_too_long"] += 1
            self.env.process(self._shorten(sku, n))

    def _pasted(self, n: int) -> bool:
        """Whether edit ``n``'s description is too long for the WMS (its own draw, so a
        scenario without refused edits draws exactly what it drew before)."""
        share = self.section.refused_edit_share
        return share > 0 and Draws(self.world.seed, "item-edit", n, "pasted").chance(share)

    def _shorten(self, sku: str, n: int) -> Generator[Any, Any, None]:
        """The product team sees the WMS refused the text and shortens it: a new version."""
        yield self.env.timeout(CORRECTION_AFTER_S)
        try:
            self.world.erp.change_item(sku, description=f"{sku}, revised {n} (shortened)")
        except SimError as exc:
            self.world.incident(f"{sku}: the ERP refused an item edit: {exc.message}")
            return
        self.world.counts["items_changed"] += 1
