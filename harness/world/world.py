"""The world: one SimPy environment holding demand, the warehouse floor and the road."""

from __future__ import annotations

from collections import Counter
from typing import Any

import simpy

from harness.scenario import Scenario
from harness.world.catalogue import Catalogue
from harness.world.demand import demand
from harness.world.warehouse import fulfil


class World:
    """Decides what happens and when; acts only through the simulators' models."""

    def __init__(self, scenario: Scenario, env: simpy.Environment, models: dict[str, Any]) -> None:
        self.scenario = scenario
        self.seed = scenario.seed
        self.env = env
        self.erp, self.wms = models["erp"], models["wms"]
        self.tms, self.carrier = models["tms"], models["carrier"]
        self.catalogue = catalogue_of(scenario)
        self.pickers = simpy.Resource(env, scenario.warehouse.pickers)
        self.packers = simpy.Resource(env, scenario.warehouse.packers)
        self.counts: Counter[str] = Counter()
        self.incidents: list[str] = []
        self._label_waits: dict[str, simpy.Event] = {}
        self.wms.observe(self._on_wms)
        env.process(demand(self))

    def entity_key(self, fo: Any) -> str:
        """The business identity random draws are keyed by: the ERP order, or, for a
        duplicate fulfilment order of it, the duplicate's own id."""
        first = self.wms.by_ref.get(fo.order_ref, [fo.id])[0]
        return fo.order_ref if first == fo.id else fo.id

    def label_event(self, fo_id: str) -> simpy.Event:
        event = self.env.event()
        self._label_waits[fo_id] = event
        return event

    def _on_wms(self, what: str, fo: Any) -> None:
        if what == "created":
            self.env.process(fulfil(self, fo.id))
        elif what in ("labelled", "cancelled"):
            event = self._label_waits.pop(fo.id, None)
            if event is not None and not event.triggered:
                event.succeed(what)


def catalogue_of(scenario: Scenario) -> Catalogue:
    return Catalogue.build(scenario.catalogue.skus, scenario.catalogue.initial_stock)
