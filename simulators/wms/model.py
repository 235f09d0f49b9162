"""The WMS's state machine: physical stock and the execution of fulfilment orders.

Plain Python with no HTTP: the API wraps the public operations, and the world model calls
``pick``, ``pack``, ``ship``, ``adjust`` and ``receive`` in process, as the warehouse floor would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from simulators.common.clock import Clock
from simulators.common.errors import SimError, conflict, not_found, unprocessable
from simulators.common.errors import invalid_field as _invalid
from simulators.common.model import Ids, SimModel, lookup
from simulators.common.sites import DEFAULT_SITE, Sites
from simulators.wms.transfers import Transfer, TransferDesk

STATUSES = ("accepted", "picked", "packed", "labelled", "shipped", "short_closed", "cancelled")
CANCELLABLE = frozenset({"accepted", "picked", "packed", "labelled"})
ADDRESS_CHANGEABLE = frozenset({"accepted", "picked", "packed"})  # no label printed yet
HOLDS_PICKED_STOCK = frozenset({"picked", "packed", "labelled"})
ADJUSTMENT_REASONS = ("cycle_count", "damage", "shrink", "found")
RETURN_CONDITIONS = ("restock", "damaged", "scrap")  # restock: sellable again
KG_PER_UNIT = 0.4
KG_PER_BOX = 0.2
UNITS_PER_BOX = 60  # a packer fills a carton to 24.2 kg: under the carriers' 30 kg a parcel


@dataclass(slots=True)
class FulfilmentLine:
    line: int
    sku: str
    qty: int
    picked_qty: int = 0
    short_qty: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "sku": self.sku,
            "qty": self.qty,
            "picked_qty": self.picked_qty,
            "short_qty": self.short_qty,
        }


@dataclass(slots=True)
class Package:
    package_id: str
    weight_kg: float
    contents: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "package_id": self.package_id,
            "weight_kg": self.weight_kg,
            "contents": [dict(c) for c in self.contents],
        }


@dataclass(slots=True)
class Label:
    tracking_number: str
    carrier: str
    label_id: str

    def to_dict(self) -> dict[str, str]:
        return {
            "tracking_number": self.tracking_number,
            "carrier": self.carrier,
            "label_id": self.label_id,
        }


@dataclass(slots=True)
class FulfilmentOrder:
    id: str
    order_ref: str
    ship_to: dict[str, Any]
    service_level: str
    lines: list[FulfilmentLine]
    created_at: str
    status: str = "accepted"
    packages: list[Package] = field(default_factory=list)
    label: Label | None = None
    status_history: list[dict[str, str]] = field(default_factory=list)
    site: str = DEFAULT_SITE  # the facility that fulfils it

    def move_to(self, status: str, at: str) -> None:
        self.status = status
        self.status_history.append({"status": status, "at": at})

    @property
    def changed_at(self) -> str:
        """The last change the WMS made: its last status move (``status_history[-1].at``).
        A ship-to change is the integration's own news and moves no status (docs/feeds.md)."""
        return self.status_history[-1]["at"] if self.status_history else self.created_at

    def picked_by_sku(self) -> Counter[str]:
        picked: Counter[str] = Counter()
        for line in self.lines:
            picked[line.sku] += line.picked_qty
        return +picked  # drops SKUs with nothing picked

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_ref": self.order_ref,
            "ship_to": dict(self.ship_to),
            "service_level": self.service_level,
            "lines": [line.to_dict() for line in self.lines],
            "status": self.status,
            "packages": [p.to_dict() for p in self.packages],
            "label": self.label.to_dict() if self.label else None,
            "created_at": self.created_at,
            "status_history": [dict(h) for h in self.status_history],
            "site": self.site,
        }


def refused(fo: FulfilmentOrder, code: str, message: str, **details: Any) -> SimError:
    """409 whose ``details.status`` is the order's current status, as the contract says."""
    return conflict(code, message, id=fo.id, status=fo.status, **details)


def illegal(fo: FulfilmentOrder, action: str) -> SimError:
    """409 for a transition the order's current status does not allow."""
    return refused(
        fo, "invalid_transition", f"fulfilment order {fo.id} is {fo.status}; cannot {action}"
    )


def cartons(picked: Mapping[str, int]) -> list[dict[str, Any]]:
    """The picked goods in cartons of at most ``UNITS_PER_BOX`` units, filled in pick order
    (one carton for any order of up to 60 units, as before)."""
    boxes: list[list[dict[str, Any]]] = [[]]
    room = UNITS_PER_BOX
    for sku, qty in picked.items():
        while qty > 0:
            if room == 0:
                boxes.append([])
                room = UNITS_PER_BOX
            take = min(qty, room)
            boxes[-1].append({"sku": sku, "qty": take})
            qty, room = qty - take, room - take
    return [{"contents": contents} for contents in boxes]


def package_weight(units: int) -> float:
    return round(units * KG_PER_UNIT + KG_PER_BOX, 2)


class WmsModel(SimModel):
    system: ClassVar[str] = "wms"
    event_types: ClassVar[tuple[str, ...]] = (
        "order.picked",
        "order.packed",
        "order.shipped",
        "inventory.adjusted",
        "receipt.confirmed",
        "return.received",
        "transfer.shipped",
        "transfer.received",
    )

    def __init__(self, clock: Clock, stock: dict[str, int] | None = None) -> None:
        super().__init__(clock)
        self.initial_stock = dict(stock or {})
        self.initial_sites: dict[str, dict[str, int]] = {}  # sites beyond the default
        self.reset()

    def reset(self) -> None:
        """Back to the stock the WMS was built with; no orders, no history, ids from 1."""
        self.stock: dict[str, int] = dict(self.initial_stock)
        self.orders: dict[str, FulfilmentOrder] = {}
        self.by_ref: dict[str, list[str]] = {}
        self.adjustments: list[dict[str, Any]] = []
        self.receipts: list[dict[str, Any]] = []
        self.return_receipts: dict[str, dict[str, Any]] = {}
        self.sites = Sites(self.stock, {n: dict(s) for n, s in self.initial_sites.items()})
        self.transfers = TransferDesk(self)
        self.emitted.clear()
        self._order_ids = Ids("FO")
        self._package_ids = Ids("PK")
        self._adjustment_ids = Ids("ADJ")
        self._return_ids = Ids("RR")
        # The item registry, loaded with the catalogue at cutover; the ERP owns the master.
        self.items: dict[str, dict[str, Any]] = {sku: self._stub(sku) for sku in self.stock}

    # -- sites ---------------------------------------------------------------------------
    def add_site(self, name: str, stock: dict[str, int]) -> None:
        """Open another facility with its own stock (kept by ``reset``, as the catalogue is)."""
        self.initial_sites[name] = dict(stock)
        others = {n: s for n, s in self.sites.by_site.items() if n != DEFAULT_SITE}
        self.sites = Sites(self.stock, {**others, name: dict(stock)})

    def stock_at(self, site: str | None) -> dict[str, int]:
        """Physical stock of one facility (None: the default site)."""
        return self.sites.stock(site)

    # -- reads ---------------------------------------------------------------------------
    def get(self, fo_id: str) -> FulfilmentOrder:
        return lookup(self.orders, "fulfilment order", fo_id)

    def find(self, order_ref: str | None = None) -> list[FulfilmentOrder]:
        if order_ref is None:
            return list(self.orders.values())
        return [self.orders[fo_id] for fo_id in self.by_ref.get(order_ref, [])]

    def on_hand(self, sku: str) -> int:
        if sku not in self.stock:
            raise not_found("sku", sku)
        return self.stock[sku]

    def snapshot(self) -> dict[str, Any]:
        return {
            "orders": {fo_id: fo.to_dict() for fo_id, fo in self.orders.items()},
            "by_ref": {ref: list(ids) for ref, ids in self.by_ref.items()},
            "stock": dict(self.stock),
            "adjustments": [dict(a) for a in self.adjustments],
            "receipts": [{**r, "lines": [dict(x) for x in r["lines"]]} for r in self.receipts],
            "return_receipts": [_copy_receipt(r) for r in self.return_receipts.values()],
            "items": {sku: dict(item) for sku, item in self.items.items()},
            "sites": self.sites.snapshot(),
            "transfers": [t.to_dict() for t in self.transfers.all()],
        }

    # -- orders --------------------------------------------------------------------------
    def create_order(
        self,
        order_ref: str,
        ship_to: dict[str, Any],
        service_level: str,
        lines: list[dict],
        *,
        fo_id: str | None = None,
        site: str | None = None,
    ) -> FulfilmentOrder:
        """Accept an order; the same order_ref twice makes two orders, as most WMSs do.
        ``fo_id`` names it (a provider state does), else the next FO id. No ``site``: the
        default site, as a facility-scoped WMS files an order that names no facility."""
        self._check_lines(lines)
        self.sites.stock(site)
        if fo_id in self.orders:
            raise conflict("already_exists", f"fulfilment order {fo_id} already exists", id=fo_id)
        now = self.now()
        fo = FulfilmentOrder(
            id=fo_id or self._order_ids.next(),
            order_ref=order_ref,
            ship_to=dict(ship_to),
            service_level=service_level,
            lines=[FulfilmentLine(x["line"], x["sku"], x["qty"]) for x in lines],
            created_at=now,
            site=site or DEFAULT_SITE,
        )
        fo.move_to("accepted", now)
        self.orders[fo.id] = fo
        self.by_ref.setdefault(order_ref, []).append(fo.id)
        self.notify("created", fo)
        return fo

    def _check_lines(self, lines: list[dict]) -> None:
        if not lines:
            raise _invalid("lines", "at least one line is required")
        numbers = [x["line"] for x in lines]
        if len(set(numbers)) != len(numbers):
            raise _invalid("lines", "line numbers must be unique")
        for i, x in enumerate(lines):
            if x["qty"] < 1:
                raise _invalid(f"lines.{i}.qty", "qty must be at least 1")
        for i, x in enumerate(lines):
            item = self.items.get(x["sku"])
            if item is None or not item["active"]:
                code, what = (
                    ("unknown_item", "unknown") if item is None else ("inactive_item", "inactive")
                )
                raise unprocessable(
                    code,
                    f"line {x['line']}: item {x['sku']} is {what}",
                    sku=x["sku"],
                    line=x["line"],
                    field=f"lines.{i}.sku",
                )

    # -- item registry -------------------------------------------------------------------
    def item(self, sku: str) -> dict[str, Any]:
        return dict(lookup(self.items, "item", sku))

    def put_item(
        self, sku: str, description: str, weight_kg: float, active: bool, each_per_case: int
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace an item (the integration carries the ERP's master here); the
        same body twice is the same item. Returns the item and whether it was new. The WMS
        picks eaches only: ``each_per_case`` is kept for reference, never converts a qty."""
        if weight_kg <= 0:
            raise _invalid("weight_kg", "weight_kg must be above 0")
        if each_per_case < 1:
            raise _invalid("each_per_case", "each_per_case must be at least 1")
        created = sku not in self.items
        item = {
            "sku": sku,
            "description": description,
            "weight_kg": weight_kg,
            "active": active,
            "each_per_case": each_per_case,
            "updated_at": self.now(),
        }
        self.items[sku] = item
        self.stock.setdefault(sku, 0)
        self.notify("item_put", dict(item))
        return dict(item), created

    def cutover_item(self, sku: str, each_per_case: int) -> None:
        """The cutover's load of a catalogue item's case size (no call, no event)."""
        self.items[sku]["each_per_case"] = each_per_case

    def ensure_item(self, sku: str) -> dict[str, Any]:
        """The registry's item of a SKU, loaded as the cutover would if it lacks it."""
        return self.items.setdefault(sku, self._stub(sku))

    def _stub(self, sku: str) -> dict[str, Any]:
        """An item as the cutover loaded it (the ERP's defaults: docs/choreography.md)."""
        return {
            "sku": sku,
            "description": f"Article {sku}",
            "weight_kg": KG_PER_UNIT,
            "active": True,
            "each_per_case": 1,
            "updated_at": self.now(),
        }

    def cancel(self, fo_id: str) -> FulfilmentOrder:
        """Cancel before shipping; anything already picked goes back on the shelf."""
        fo = self.get(fo_id)
        if fo.status not in CANCELLABLE:
            raise illegal(fo, "cancel")
        if fo.status in HOLDS_PICKED_STOCK:
            stock = self.stock_at(fo.site)
            for sku, qty in fo.picked_by_sku().items():
                stock[sku] += qty
        fo.move_to("cancelled", self.now())
        self.notify("cancelled", fo)
        return fo

    def change_ship_to(self, fo_id: str, ship_to: dict[str, Any]) -> FulfilmentOrder:
        """Take a new delivery address before the parcel is labelled; announces nothing.

        The address is told to the WMS (by the integration, from the ERP), so no event goes
        back. It is not a status change, so ``status_history`` stays as it is.
        """
        fo = self.get(fo_id)
        if fo.status not in ADDRESS_CHANGEABLE:
            raise illegal(fo, "change the ship-to address")
        fo.ship_to = dict(ship_to)
        self.notify("updated", fo)
        return fo

    def attach_label(
        self, fo_id: str, tracking_number: str, carrier: str, label_id: str
    ) -> FulfilmentOrder:
        """Stick the carrier's label on a packed order; the same label again is a no-op."""
        fo = self.get(fo_id)
        if fo.status == "labelled" and fo.label is not None:
            if fo.label.tracking_number == tracking_number:
                return fo
            raise refused(
                fo,
                "label_mismatch",
                f"fulfilment order {fo.id} already carries label {fo.label.tracking_number}",
                tracking_number=fo.label.tracking_number,
            )
        if fo.status != "packed":
            raise illegal(fo, "attach a label")
        fo.label = Label(tracking_number, carrier, label_id)
        fo.move_to("labelled", self.now())
        self.notify("labelled", fo)
        return fo

    # -- the warehouse floor (the world calls these) -------------------------------------
    def pick(self, fo_id: str, picked: dict[int, int]) -> FulfilmentOrder:
        """Take what the floor found off the shelf; nothing found closes the order short."""
        fo = self.get(fo_id)
        if fo.status != "accepted":
            raise illegal(fo, "pick")
        self._check_pick(fo, picked)
        stock = self.stock_at(fo.site)
        for line in fo.lines:
            line.picked_qty = picked.get(line.line, 0)
            line.short_qty = line.qty - line.picked_qty
            stock[line.sku] -= line.picked_qty
        fo.move_to("picked" if fo.picked_by_sku() else "short_closed", self.now())
        data = {
            "fulfilment_order_id": fo.id,
            "order_ref": fo.order_ref,
            "lines": [line.to_dict() for line in fo.lines],
            "site": fo.site,
        }
        self.emit("order.picked", data, ref=fo.order_ref)
        self.notify("picked", fo)
        return fo

    def _check_pick(self, fo: FulfilmentOrder, picked: dict[int, int]) -> None:
        lines = {line.line: line for line in fo.lines}
        wanted: Counter[str] = Counter()
        for number, qty in picked.items():
            line = lines.get(number)
            if line is None:
                raise _invalid(f"picked.{number}", f"order {fo.id} has no line {number}")
            if not 0 <= qty <= line.qty:
                raise _invalid(f"picked.{number}", f"picked qty must be 0..{line.qty}")
            wanted[line.sku] += qty
        stock = self.stock_at(fo.site)
        for sku, qty in wanted.items():
            if qty > stock[sku]:
                raise refused(
                    fo,
                    "insufficient_stock",
                    f"{qty} x {sku} picked but only {stock[sku]} on hand at {fo.site}",
                    sku=sku,
                    on_hand=stock[sku],
                )

    def pack(self, fo_id: str, packages: list[dict] | None = None) -> FulfilmentOrder:
        """Box the picked goods: as few cartons as hold them under a parcel's weight limit,
        unless the floor says otherwise."""
        fo = self.get(fo_id)
        if fo.status != "picked":
            raise illegal(fo, "pack")
        picked = fo.picked_by_sku()
        if packages is None:
            packages = cartons(picked)
        _check_packages(packages, picked)
        boxes = [self._package(p) for p in packages]
        fo.packages = boxes
        fo.move_to("packed", self.now())
        data = {
            "fulfilment_order_id": fo.id,
            "order_ref": fo.order_ref,
            "ship_to": dict(fo.ship_to),
            "service_level": fo.service_level,
            "packages": [box.to_dict() for box in boxes],
            "site": fo.site,
        }
        self.emit("order.packed", data, ref=fo.order_ref)
        self.notify("packed", fo)
        return fo

    def _package(self, spec: dict[str, Any]) -> Package:
        contents = [{"sku": c["sku"], "qty": c["qty"]} for c in spec["contents"]]
        weight = spec.get("weight_kg")
        if weight is None:
            weight = package_weight(sum(c["qty"] for c in contents))
        return Package(spec.get("package_id") or self._package_ids.next(), weight, contents)

    def ship(self, fo_id: str) -> FulfilmentOrder:
        """Hand the labelled parcel to the carrier; what was picked is what leaves."""
        fo = self.get(fo_id)
        if fo.status != "labelled" or fo.label is None:
            raise illegal(fo, "ship")
        shipped_at = self.now()
        fo.move_to("shipped", shipped_at)
        data = {
            "fulfilment_order_id": fo.id,
            "order_ref": fo.order_ref,
            "tracking_number": fo.label.tracking_number,
            "carrier": fo.label.carrier,
            "shipped_at": shipped_at,
            "lines": [
                {"line": line.line, "sku": line.sku, "qty": line.picked_qty}
                for line in fo.lines
                if line.picked_qty > 0
            ],
            "site": fo.site,
        }
        self.emit("order.shipped", data, ref=fo.order_ref)
        self.notify("shipped", fo)
        return fo

    # -- stock ---------------------------------------------------------------------------
    def adjust(self, sku: str, delta: int, reason: str, site: str | None = None) -> dict[str, Any]:
        """A physical count disagreed with the books (or something broke, or turned up)."""
        if reason not in ADJUSTMENT_REASONS:
            raise _invalid("reason", f"reason must be one of {', '.join(ADJUSTMENT_REASONS)}")
        stock = self.stock_at(site)
        if sku not in stock:
            raise unprocessable("unknown_sku", f"unknown SKU: {sku}", skus=[sku])
        if stock[sku] + delta < 0:
            raise unprocessable(
                "negative_stock",
                f"adjusting {sku} by {delta} would leave {stock[sku] + delta} on hand",
                sku=sku,
                on_hand=stock[sku],
            )
        stock[sku] += delta
        data = {
            "adjustment_id": self._adjustment_ids.next(),
            "sku": sku,
            "delta": delta,
            "reason": reason,
            "site": site or DEFAULT_SITE,
        }
        self.adjustments.append({**data, "at": self.now()})
        self.emit("inventory.adjusted", data, ref=sku)
        return data

    def receive(self, reference: str, lines: list[dict], site: str | None = None) -> dict[str, Any]:
        """Goods in at the dock; a SKU never seen before joins the catalogue."""
        stock = self.stock_at(site)
        if not lines:
            raise _invalid("lines", "at least one line is required")
        for i, x in enumerate(lines):
            if x["qty"] < 1:
                raise _invalid(f"lines.{i}.qty", "qty must be at least 1")
        received = [{"sku": x["sku"], "qty": x["qty"]} for x in lines]
        for x in received:
            self.sites.add_sku(x["sku"])
            stock[x["sku"]] += x["qty"]
            if x["sku"] not in self.items:
                self.items[x["sku"]] = self._stub(x["sku"])
        data = {"receipt_id": reference, "lines": received, "site": site or DEFAULT_SITE}
        self.receipts.append({**data, "at": self.now()})
        self.emit("receipt.confirmed", data, ref=reference)
        return data

    def return_receipt(self, receipt_id: str) -> dict[str, Any]:
        return _copy_receipt(lookup(self.return_receipts, "return receipt", receipt_id))

    def receive_return(
        self, rma_id: str, order_ref: str, lines: list[dict], *, receipt_id: str | None = None
    ) -> dict[str, Any]:
        """A customer's parcel opened at the returns bench: each unit graded ``restock``
        (back on the shelf), ``damaged`` or ``scrap`` (quarantined, not stock). The WMS owns
        physical stock, so it puts the restockable units back itself; the ERP hears of the
        receipt only through the stack (``return.received``)."""
        if not lines:
            raise _invalid("lines", "at least one line is required")
        for i, x in enumerate(lines):
            if x["qty"] < 1:
                raise _invalid(f"lines.{i}.qty", "qty must be at least 1")
            if x["condition"] not in RETURN_CONDITIONS:
                raise _invalid(
                    f"lines.{i}.condition",
                    f"condition must be one of {', '.join(RETURN_CONDITIONS)}",
                )
        received = [
            {"line": x["line"], "sku": x["sku"], "qty": x["qty"], "condition": x["condition"]}
            for x in lines
        ]
        for x in received:
            if x["condition"] == "restock":
                self.sites.add_sku(x["sku"])
                self.stock[x["sku"]] += x["qty"]  # the returns bench is at the default site
        receipt_id = receipt_id or self._return_ids.next()
        data = {
            "receipt_id": receipt_id,
            "rma_id": rma_id,
            "order_ref": order_ref,
            "lines": received,
            "received_at": self.now(),
            "site": DEFAULT_SITE,
        }
        self.return_receipts[receipt_id] = data
        self.emit("return.received", _copy_receipt(data), ref=order_ref)
        self.notify("return_received", data)
        return _copy_receipt(data)

    # -- transfers between sites (the desk holds them; these are the model's face) -----------
    def create_transfer(
        self,
        transfer_ref: str,
        from_site: str,
        to_site: str,
        lines: list[dict],
        *,
        transfer_id: str | None = None,
    ) -> Transfer:
        """Accept an outbound transfer at ``from_site``; the same ref twice makes two, as
        fulfilment orders do (the WMS dedupes only on Idempotency-Key, when configured)."""
        self._check_lines(lines)
        return self.transfers.create(transfer_ref, from_site, to_site, lines, transfer_id)

    def ship_transfer(self, transfer_id: str, shipped: dict[int, int]) -> Transfer:
        return self.transfers.ship(transfer_id, shipped)

    def receive_transfer(self, transfer_id: str, received: dict[int, int]) -> Transfer:
        return self.transfers.receive(transfer_id, received)

    # -- fixtures ------------------------------------------------------------------------
    def seed_examples(self) -> None:
        """Make the entities the OpenAPI examples name exist (FO-000001 accepted, FO-000002
        packed, WT-000001 accepted at DC1 for DC2), so a conformance run reaches the happy paths
        and not only 404s."""
        self.stock.setdefault("A-100", 100)
        self.stock.setdefault("B-200", 50)
        for sku in ("A-100", "B-200"):
            self.items.setdefault(sku, self._stub(sku))
        ship_to = {
            "name": "Ada Lovelace",
            "street": "1 Analytical Way",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        }
        lines = [{"line": 1, "sku": "A-100", "qty": 3}, {"line": 2, "sku": "B-200", "qty": 1}]
        self.create_order("SO-000001", ship_to, "standard", lines)
        packed = self.create_order("SO-000002", ship_to, "express", lines)
        self.pick(packed.id, {1: 3, 2: 1})
        self.pack(packed.id)
        self.receive_return(  # RR-000001
            "RMA-000001",
            "SO-000004",
            [{"line": 1, "sku": "A-100", "qty": 1, "condition": "restock"}],
        )
        if "DC2" not in self.sites.by_site:
            self.add_site("DC2", {})
        self.create_transfer(  # WT-000001, accepted
            "TO-000001", DEFAULT_SITE, "DC2", [{"line": 1, "sku": "A-100", "qty": 5}]
        )


def _copy_receipt(receipt: dict[str, Any]) -> dict[str, Any]:
    return {**receipt, "lines": [dict(x) for x in receipt["lines"]]}


def _check_packages(packages: list[dict], picked: Counter[str]) -> None:
    """Boxes hold exactly what was picked: nothing lost between the tote and the parcel."""
    packed: Counter[str] = Counter()
    for spec in packages:
        if not spec["contents"] or any(c["qty"] < 1 for c in spec["contents"]):
            raise _invalid("packages", "every package holds at least one unit of something")
        for item in spec["contents"]:
            packed[item["sku"]] += item["qty"]
    if packed != picked:
        raise _invalid("packages", "packages must hold exactly the picked goods")
