"""An in-process integrator: a stand-in for an integration stack, used ONLY for measuring
(``benchmarks/world_speed.py``) and for tests of the world. Real runs judge a real stack
over HTTP (ARCHITECTURE principle 4); nothing here is ever a stack under test.

It binds every model's ``emit`` and reacts to the events by calling the other models
directly, doing what the reference stack does:

| event | reaction |
| --- | --- |
| ``order.released`` | WMS create fulfilment order (unless cancelled or already created) |
| ``order.cancelled`` | WMS cancel, if the fulfilment order exists; else the create is skipped |
| ``order.updated`` | WMS ship-to change; a label the carrier refused is bought again |
| ``order.picked`` with nothing picked | ERP goods issue of zeros (the order is backordered) |
| ``order.packed`` | TMS plan (ground if express is full), carrier label, WMS attach label |
| ``order.shipped`` | ERP goods issue with the picked qty, tracking number and shipment |
| ``tracking.updated`` | ERP tracking (stale sequences dropped) |
| ``freight.settled`` | ERP freight accrual |
| ``inventory.adjusted`` | ERP inventory adjustment |
| ``receipt.confirmed`` | ERP goods receipt |
| ``return.received`` | ERP return disposition: credit what came back, restock the good units |
| ``transfer.released`` | WMS transfer at the shipping site |
| ``transfer.shipped`` / ``transfer.received`` | ERP transfer goods issue / goods receipt |

By default reactions run after the world's current step, at the same virtual time, as a
lockstep stack's would. ``immediate=True`` reacts inside the emitting call instead (the
fastest possible stack: no queue, no extra SimPy event; the benchmark uses it). For tests of
keyed randomness it can be perturbed: ``shuffle`` processes each batch of pending reactions
in a random order, ``max_delay_s`` defers each reaction by a random amount of virtual time
(both from the integrator's own generator, never the world's).

``SimClock`` is the clock the models read in such runs: virtual time is SimPy's ``env.now``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import simpy

from simulators.common.errors import SimError

Step = tuple[str, dict[str, Any]]


class SimClock:
    """The models' clock when no HTTP runs: virtual seconds are the SimPy environment's."""

    mode = "simpy"

    def __init__(self, env: simpy.Environment, epoch: datetime) -> None:
        self.env = env
        self.epoch = epoch
        midnight = epoch.replace(hour=0, minute=0, second=0, microsecond=0)
        self._midnight = midnight
        self._offset = int((epoch - midnight).total_seconds())
        self._dates: dict[int, str] = {}
        self._from, self._until, self._text = 0.0, -1.0, ""  # the cached second (none yet)

    def now(self) -> float:
        return self.env.now

    def iso(self, t: float | None = None) -> str:
        if t is None:
            t = self.env.now
        if self._from <= t < self._until:  # models ask many times per virtual second
            return self._text
        second = int(t)
        day, rest = divmod(second + self._offset, 86_400)
        date = self._dates.get(day)
        if date is None:
            date = (self._midnight + timedelta(days=day)).strftime("%Y-%m-%dT")
            self._dates[day] = date
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        text = f"{date}{hours:02d}:{minutes:02d}:{seconds:02d}Z"
        self._from, self._until, self._text = second, second + 1, text
        return text

    async def sleep_until(self, t: float) -> None:  # pragma: no cover - no event loop here
        raise RuntimeError("a SimClock has no event loop; run the SimPy environment instead")


@dataclass(slots=True)
class _Order:
    """What the integrator remembers of one sales order (the stack's ``orders`` table)."""

    fulfilment_order_id: str | None = None
    cancelled: bool = False
    shipment_id: str | None = None
    tracking_number: str | None = None
    last_sequence: int = 0
    goods_issued: bool = False
    ship_to: dict[str, Any] | None = None  # the latest address the ERP announced
    refused_label: dict[str, Any] | None = None  # the buy_label step the carrier refused


@dataclass
class Integrator:
    env: simpy.Environment
    models: dict[str, Any]
    immediate: bool = False
    shuffle: bool = False
    max_delay_s: float = 0.0
    seed: int = 0
    errors: list[str] = field(default_factory=list)
    reactions: int = 0

    def __post_init__(self) -> None:
        self.erp, self.wms = self.models["erp"], self.models["wms"]
        self.tms, self.carrier = self.models["tms"], self.models["carrier"]
        self.orders: dict[str, _Order] = {}
        self.by_tracking: dict[str, str] = {}
        self.item_versions: dict[str, int] = {}
        self._pending: deque[Step] = deque()
        self._draining = False
        self._rng = random.Random(self.seed)
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "order.released": self._released,
            "order.cancelled": self._cancelled,
            "order.updated": self._updated,
            "order.picked": self._picked,
            "order.packed": self._packed,
            "order.shipped": self._shipped,
            "tracking.updated": self._tracking,
            "freight.settled": self._settled,
            "inventory.adjusted": self._adjusted,
            "receipt.confirmed": self._received,
            "return.received": self._returned,
            "item.created": self._item,
            "item.changed": self._item,
            "transfer.released": self._transfer_released,
            "transfer.shipped": self._transfer_shipped,
            "transfer.received": self._transfer_received,
            # the stack's own follow-up steps, queued like events so perturbation reaches them
            "buy_label": self._buy_label,
            "attach_label": self._attach_label,
        }
        emit = self._react if self.immediate else self._emitted
        for model in self.models.values():
            model.bind(emit)

    # -- scheduling ----------------------------------------------------------------------
    def _react(self, kind: str, data: dict[str, Any], ref: str | None = None) -> None:
        """Immediate mode: react inside the emitting call (the benchmark's hot path)."""
        handler = self._handlers.get(kind)
        if handler is not None:
            self.reactions += 1
            try:
                handler(data)
            except SimError as exc:
                self.errors.append(f"{kind}: {exc.status} {exc.code}: {exc.message}")

    def _emitted(self, kind: str, data: dict[str, Any], ref: str | None = None) -> None:
        if kind in self._handlers:
            self._later((kind, data))

    def _later(self, step: Step) -> None:
        if self.immediate:
            self._run(step)
        elif self.max_delay_s:
            delay = self._rng.uniform(0, self.max_delay_s)
            self.env.timeout(delay).callbacks.append(lambda _: self._enqueue(step))
        else:
            self._enqueue(step)

    def _enqueue(self, step: Step) -> None:
        """Run after the current step, with whatever else is pending at this moment."""
        self._pending.append(step)
        if not self._draining:
            self._draining = True
            event = self.env.event()
            event.callbacks.append(self._drain)
            event.succeed()

    def _drain(self, _: Any) -> None:
        pending = self._pending
        while pending:
            if self.shuffle:
                batch = list(pending)
                pending.clear()
                self._rng.shuffle(batch)
                for step in batch:
                    self._run(step)
            else:
                self._run(pending.popleft())
        self._draining = False

    def _run(self, step: Step) -> None:
        kind, data = step
        self.reactions += 1
        try:
            self._handlers[kind](data)
        except SimError as exc:
            self.errors.append(f"{kind}: {exc.status} {exc.code}: {exc.message}")

    def _order(self, ref: str) -> _Order:
        order = self.orders.get(ref)
        if order is None:
            self.orders[ref] = order = _Order()
        return order

    # -- ERP -----------------------------------------------------------------------------
    def _released(self, data: dict[str, Any]) -> None:
        ref = data["id"]
        order = self._order(ref)
        if order.cancelled or order.fulfilment_order_id:
            return
        lines = [
            {"line": x["line"], "sku": x["sku"], "qty": self._eaches(x)} for x in data["lines"]
        ]
        fo = self.wms.create_order(
            ref, data["ship_to"], data["service_level"], lines, site=data.get("site")
        )
        order.fulfilment_order_id = fo.id

    def _eaches(self, line: dict[str, Any]) -> int:
        """The WMS picks eaches: a case line converts with the ERP's item master."""
        if line.get("uom") == "CS":
            return int(line["qty"]) * self.erp.item(line["sku"]).each_per_case
        return int(line["qty"])

    def _item(self, data: dict[str, Any]) -> None:
        """Carry the ERP's item to the WMS registry, never an older version over a newer."""
        if self.item_versions.get(data["sku"], 0) >= data["version"]:
            return
        self.item_versions[data["sku"]] = data["version"]
        self.wms.put_item(
            data["sku"],
            data["description"],
            data["weight_kg"],
            data["active"],
            data["each_per_case"],
        )

    def _cancelled(self, data: dict[str, Any]) -> None:
        order = self._order(data["order_id"])
        order.cancelled = True
        if order.fulfilment_order_id:
            self.wms.cancel(order.fulfilment_order_id)

    def _updated(self, data: dict[str, Any]) -> None:
        order = self._order(data["order_id"])
        order.ship_to = data["ship_to"]
        if order.cancelled or order.fulfilment_order_id is None:
            return
        self.wms.change_ship_to(order.fulfilment_order_id, data["ship_to"])
        if order.refused_label is not None:
            step, order.refused_label = order.refused_label, None
            self._later(("buy_label", step))

    # -- WMS -----------------------------------------------------------------------------
    def _picked(self, data: dict[str, Any]) -> None:
        lines = data["lines"]
        if any(x["picked_qty"] > 0 for x in lines):
            return  # the goods issue follows order.shipped
        ref = data["order_ref"]
        self.erp.goods_issue(ref, [{"line": x["line"], "qty": 0} for x in lines], None, None, None)
        self._order(ref).goods_issued = True

    def _packed(self, data: dict[str, Any]) -> None:
        ref = data["order_ref"]
        order = self._order(ref)
        if order.cancelled or order.shipment_id:
            return
        weights = [{"weight_kg": p["weight_kg"]} for p in data["packages"]]
        fo_id, ship_to, service_level = (
            data["fulfilment_order_id"],
            data["ship_to"],
            data["service_level"],
        )
        try:
            shipment = self.tms.plan(ref, fo_id, ship_to, service_level, weights)
        except SimError as exc:
            if exc.details.get("reason") != "capacity_exhausted":
                raise
            shipment = self.tms.plan(ref, fo_id, ship_to, "standard", weights)  # ground instead
        order.shipment_id = shipment.id
        self._later(("buy_label", {"ref": ref, "shipment": shipment, "packed": data}))

    def _buy_label(self, data: dict[str, Any]) -> None:
        order, shipment, packed = self._order(data["ref"]), data["shipment"], data["packed"]
        if order.cancelled or order.tracking_number:
            return
        ship_to = order.ship_to or packed["ship_to"]
        try:
            label = self.carrier.create_label(
                shipment.id, shipment.service, ship_to, packed["packages"]
            )
        except SimError as exc:
            if exc.code == "address_invalid":
                order.refused_label = data  # bought again once the ERP corrects the address
            raise
        order.tracking_number = label.tracking_number
        self.by_tracking[label.tracking_number] = data["ref"]
        step = {
            "fo_id": packed["fulfilment_order_id"],
            "ref": data["ref"],
            "label": label,
            "carrier": shipment.carrier,
        }
        self._later(("attach_label", step))

    def _attach_label(self, data: dict[str, Any]) -> None:
        if self._order(data["ref"]).cancelled:
            return
        label = data["label"]
        self.wms.attach_label(data["fo_id"], label.tracking_number, data["carrier"], label.id)

    def _shipped(self, data: dict[str, Any]) -> None:
        ref = data["order_ref"]
        order = self._order(ref)
        if order.goods_issued:
            return
        lines = [{"line": x["line"], "qty": x["qty"]} for x in data["lines"]]
        self.erp.goods_issue(
            ref, lines, data["tracking_number"], data["carrier"], order.shipment_id
        )
        order.goods_issued = True

    def _adjusted(self, data: dict[str, Any]) -> None:
        self.erp.adjust_inventory(
            data["sku"], data["delta"], data["reason"], data["adjustment_id"], data.get("site")
        )

    def _received(self, data: dict[str, Any]) -> None:
        self.erp.receive_goods(data["receipt_id"], data["lines"], data.get("site"))

    def _transfer_released(self, data: dict[str, Any]) -> None:
        self.wms.create_transfer(data["id"], data["from_site"], data["to_site"], data["lines"])

    def _transfer_shipped(self, data: dict[str, Any]) -> None:
        lines = [{"line": x["line"], "qty": x["qty"]} for x in data["lines"]]
        self.erp.transfers.issue(data["transfer_ref"], data["transfer_id"], lines)

    def _transfer_received(self, data: dict[str, Any]) -> None:
        lines = [{"line": x["line"], "qty": x["qty"]} for x in data["lines"]]
        self.erp.transfers.receive(data["transfer_ref"], data["transfer_id"], lines)

    def _returned(self, data: dict[str, Any]) -> None:
        self.erp.dispose_return(data["rma_id"], data["receipt_id"], disposition_lines(data))

    # -- TMS and carrier -----------------------------------------------------------------
    def _settled(self, data: dict[str, Any]) -> None:
        self.erp.accrue_freight(data["order_ref"], data["shipment_id"], data["amount"])

    def _tracking(self, data: dict[str, Any]) -> None:
        ref = self.by_tracking.get(data["tracking_number"])
        if ref is None:
            return  # a parcel this integrator did not label
        order = self._order(ref)
        if data["sequence"] <= order.last_sequence:
            return  # stale: never move the ERP's status backwards
        order.last_sequence = data["sequence"]
        self.erp.post_tracking(ref, data["tracking_number"], data["status"], data["occurred_at"])


def disposition_lines(received: dict[str, Any]) -> list[dict[str, int]]:
    """A return receipt's lines per order line: all of it credited, the good units restocked."""
    qty: dict[int, int] = {}
    restock: dict[int, int] = {}
    for line in received["lines"]:
        number = line["line"]
        qty[number] = qty.get(number, 0) + line["qty"]
        good = line["qty"] if line["condition"] == "restock" else 0
        restock[number] = restock.get(number, 0) + good
    return [{"line": n, "qty": qty[n], "restock_qty": restock[n]} for n in sorted(qty)]


@dataclass
class Played:
    """A day played against the models with an integrator (tests and benchmarks only)."""

    env: simpy.Environment
    world: Any
    models: dict[str, Any]
    integrator: Integrator

    def view(self) -> Any:
        from harness import oracles

        return oracles.SystemsView({s: m.snapshot() for s, m in self.models.items()})

    def failed_oracles(self) -> dict[str, list[Any]]:
        """The oracles that failed, with their first findings (empty: a clean day)."""
        from harness import oracles

        return {r.name: r.findings[:3] for r in oracles.judge(self.view()) if not r.passed}


def in_process_models(env: simpy.Environment, scenario: Any) -> dict[str, Any]:
    """The four simulator models on SimPy's clock, stocked from the scenario's catalogue."""
    from harness.world.world import catalogue_of
    from simulators.carrier.model import CarrierModel
    from simulators.erp.model import ErpModel
    from simulators.tms.model import TmsModel
    from simulators.wms.model import WmsModel

    clock = SimClock(env, scenario.epoch)
    stock = catalogue_of(scenario).stock()
    return {
        "erp": ErpModel(clock, stock, scenario.demand.line_step),
        "wms": WmsModel(clock, stock),
        "tms": TmsModel(clock),
        "carrier": CarrierModel(clock),
    }


def play(scenario: Any, *, until: float | None = None, **options: Any) -> Played:
    """Build the four models, bind an ``Integrator(**options)``, and play the world until it
    ends by itself (or until virtual second ``until``)."""
    from harness.world.world import World

    env = simpy.Environment()
    models = in_process_models(env, scenario)
    integrator = Integrator(env, models, **options)
    world = World(scenario, env, models)
    env.run(until=until)
    return Played(env, world, models, integrator)
