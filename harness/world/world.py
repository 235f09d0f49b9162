"""The world: one SimPy environment holding the customers, the floor, the shelves and the road.

It decides what happens and when, and acts only through the simulators' models: an order
reaches the floor only once the stack has created it in the WMS (the world hears of it from
``wms.observe``), and every change to stock the books should know about goes through the WMS.

What is keyed, and what that buys (ARCHITECTURE principle 3), is written up in
``harness/world/README.md``; in short, with the same seed every order gets the same customer, lines,
picks, shorts, ship day and delivery minute whatever order a stack makes its calls in, as
long as it creates each WMS order within ``waves.lead_minutes`` of release and labels each
parcel by cut-off.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import simpy

from harness.scenario import Scenario
from harness.world.catalogue import Catalogue
from harness.world.demand import Customers
from harness.world.masterdata import ProductTeam
from harness.world.parcels import Road
from harness.world.returns import Returns
from harness.world.script import Script
from harness.world.sites import SiteNetwork
from harness.world.stock import Shelves
from harness.world.warehouse import Floor

MAX_INCIDENTS = 1_000  # kept verbatim; the rest are counted


class World:
    """Decides what happens and when; acts only through the simulators' models."""

    def __init__(self, scenario: Scenario, env: simpy.Environment, models: dict[str, Any]) -> None:
        self.scenario = scenario
        self.seed = scenario.seed
        self.env = env
        self.days = math.ceil(scenario.horizon_days)
        self.erp, self.wms = models["erp"], models["wms"]
        self.tms, self.carrier = models["tms"], models["carrier"]
        self.tms.express_capacity_per_day = scenario.carrier.express_capacity_per_day
        self.catalogue = catalogue_of(scenario)
        self.counts: Counter[str] = Counter()
        self.incidents: list[str] = []
        self.expected: set[str] = set()  # released sales orders the WMS has not heard of yet
        self.script = Script(scenario)  # the scenario's orders and timeline (docs/capsules.md)
        self.shelves = Shelves(self)
        self.road = Road(self)
        self.returns = Returns(self)
        self.product_team = ProductTeam(self)
        self.floor = Floor(self)
        self.sites = SiteNetwork(self)  # more sites and transfers: none unless ``sites:``
        self.customers = Customers(self)
        self.wms.observe(self._on_wms)

    def entity_key(self, fo: Any) -> str:
        """The business identity random draws are keyed by: the ERP order, or, for a
        duplicate fulfilment order of it, the duplicate's own id."""
        first = self.wms.by_ref.get(fo.order_ref, [fo.id])[0]
        return fo.order_ref if first == fo.id else fo.id

    def floor_needed(self) -> bool:
        """Is there, or will there be, work for pickers and packers?"""
        return (
            self.customers.arriving
            or self.product_team.pending > 0
            or bool(self.expected)
            or self.floor.on_floor > 0
            or self.sites.on_floor()
        )

    def busy(self) -> bool:
        """Is any business still open: orders, parcels on the road (customer returns
        included), purchases (or scripted receipts and adjustments) on the way?"""
        return (
            self.floor_needed()
            or bool(self.floor.dock)
            or self.road.on_road > 0
            or bool(self.shelves.on_order)
            or self.shelves.deliveries_due > 0
            or self.returns.open > 0
            or self.sites.busy()
        )

    def incident(self, text: str) -> None:
        self.counts["incidents"] += 1
        if len(self.incidents) < MAX_INCIDENTS:
            self.incidents.append(text)

    def _on_wms(self, what: str, fo: Any) -> None:
        if what.startswith("transfer_"):
            self.sites.heard(what, fo)
        elif what == "created":
            self.expected.discard(fo.order_ref)
            self.sites.floor(fo.site).arrived(fo)
        elif what == "cancelled":
            before = fo.status_history[-2]["status"] if len(fo.status_history) > 1 else None
            if before in ("picked", "packed", "labelled"):
                self.sites.floor(fo.site).shelves.put_back(fo)  # the WMS put them back; so do we
            self.sites.floor(fo.site).cancelled(fo)
            self.counts["wms_cancelled"] += 1


def catalogue_of(scenario: Scenario) -> Catalogue:
    c = scenario.catalogue
    return Catalogue.build(
        c.skus, c.initial_stock, c.popularity, c.stock_by_popularity, c.sku_style
    )
