"""The ERP's state machine: sales orders, book stock and the postings made against them.

Plain Python, no HTTP: the API layer and the world model both drive it. Every refusal is a
``SimError`` shaped like a vendor's error, so either caller can pass it on unchanged.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from simulators.common.clock import Clock
from simulators.common.errors import SimError, conflict, not_found, unprocessable
from simulators.common.errors import invalid_field as _invalid
from simulators.common.model import Ids, SimModel, lookup
from simulators.common.schemas import money
from simulators.common.sites import DEFAULT_SITE, Sites
from simulators.erp.postings import qty_per_line
from simulators.erp.transfers import TransferBook

ORDER_STATUSES = ("open", "released", "shipped", "delivered", "backordered", "cancelled")
TRACKING_STATUSES = ("picked_up", "in_transit", "out_for_delivery", "delivered", "exception")
ADJUSTMENT_REASONS = ("cycle_count", "damage", "shrink", "found")
CANCELLABLE = ("open", "released")
CHANGEABLE = ("open", "released")  # the ship-to can change until goods are issued
RETURNABLE = ("shipped", "delivered")  # a customer returns what was issued to them
RETURN_REASONS = ("changed_mind", "wrong_size", "defective", "damaged_in_transit")
RESOLUTIONS = ("refund", "credit")  # money back, or store credit
RMA_STATUSES = ("authorised", "partially_credited", "credited")
UOMS = ("EA", "CS")  # each, case: the units an order line may be sold in
DEFAULT_WEIGHT_KG = 0.4  # an item loaded at cutover without its own weight (the WMS's unit)


def list_price(sku: str) -> Decimal:
    """The SKU's unit price (EUR) on the ERP's price list: fixed per SKU, so a credit memo's
    amounts are the same in every run (orders carry no prices of their own)."""
    cents = 500 + zlib.crc32(sku.encode()) % 9_500
    return Decimal(cents) / 100


@dataclass(slots=True)
class SalesOrder:
    id: str
    customer: dict[str, str]
    ship_to: dict[str, str]
    service_level: str
    lines: list[dict[str, Any]]
    status: str
    created_at: str
    released_at: str | None = None
    goods_issues: list[str] = field(default_factory=list)
    backorders: list[str] = field(default_factory=list)
    tracking_number: str | None = None
    tracking_status: str | None = None
    tracking_history: list[dict[str, Any]] = field(default_factory=list)
    status_history: list[dict[str, str]] = field(default_factory=list)
    # The order's last change of any kind, creation included (whole seconds): what the order
    # list's updated_since filters and sorts on (docs/feeds.md). Set on creation.
    updated_at: str | None = None
    site: str = DEFAULT_SITE  # the site the ERP assigned to fulfil it

    def to_dict(self) -> dict[str, Any]:
        """A deep copy: event data must not change when the order does later."""
        return {
            "id": self.id,
            "customer": dict(self.customer),
            "ship_to": dict(self.ship_to),
            "service_level": self.service_level,
            "lines": [dict(line) for line in self.lines],
            "status": self.status,
            "created_at": self.created_at,
            "released_at": self.released_at,
            "goods_issues": list(self.goods_issues),
            "backorders": list(self.backorders),
            "tracking_number": self.tracking_number,
            "tracking_status": self.tracking_status,
            "tracking_history": [dict(entry) for entry in self.tracking_history],
            "status_history": [dict(entry) for entry in self.status_history],
            "updated_at": self.updated_at,
            "site": self.site,
        }


@dataclass(slots=True)
class GoodsIssue:
    id: str
    order_id: str
    lines: list[dict[str, Any]]  # one per order line, qty = issued (0 when nothing was picked)
    tracking_number: str | None
    carrier: str | None
    shipment_id: str | None
    backorder_id: str | None
    posted_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "lines": [dict(line) for line in self.lines],
            "tracking_number": self.tracking_number,
            "carrier": self.carrier,
            "shipment_id": self.shipment_id,
            "backorder_id": self.backorder_id,
            "posted_at": self.posted_at,
        }


@dataclass(slots=True)
class Backorder:
    id: str
    order_id: str
    lines: list[dict[str, Any]]  # only the lines with a remainder, qty = ordered - issued
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "lines": [dict(line) for line in self.lines],
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class FreightAccrual:
    id: str
    order_id: str
    shipment_id: str
    amount: dict[str, str]
    posted_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "shipment_id": self.shipment_id,
            "amount": dict(self.amount),
            "posted_at": self.posted_at,
        }


@dataclass(slots=True)
class InventoryAdjustment:
    id: str
    sku: str
    delta: int
    reason: str
    reference: str | None
    on_hand: int  # book stock after the adjustment
    posted_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sku": self.sku,
            "delta": self.delta,
            "reason": self.reason,
            "reference": self.reference,
            "on_hand": self.on_hand,
            "posted_at": self.posted_at,
        }


@dataclass(slots=True)
class GoodsReceipt:
    id: str
    reference: str
    lines: list[dict[str, Any]]
    posted_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "lines": [dict(line) for line in self.lines],
            "posted_at": self.posted_at,
        }


@dataclass(slots=True)
class ReturnAuthorisation:
    """An RMA: which issued lines the customer may send back, and how they are made good."""

    id: str
    order_id: str
    lines: list[dict[str, Any]]  # {"line", "sku", "qty"}: qty authorised
    reason: str
    resolution: str  # refund | credit, for every credit memo of this RMA
    status: str
    authorised_at: str
    credit_memos: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "lines": [dict(line) for line in self.lines],
            "reason": self.reason,
            "resolution": self.resolution,
            "status": self.status,
            "authorised_at": self.authorised_at,
            "credit_memos": list(self.credit_memos),
        }


@dataclass(slots=True)
class CreditMemo:
    """The financial disposition of one return receipt: what is credited, what is restocked."""

    id: str
    rma_id: str
    order_id: str
    receipt_id: str
    resolution: str
    lines: list[dict[str, Any]]  # {"line", "sku", "qty", "restock_qty", "unit_price", "amount"}
    total: dict[str, str]
    posted_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rma_id": self.rma_id,
            "order_id": self.order_id,
            "receipt_id": self.receipt_id,
            "resolution": self.resolution,
            "lines": [
                {**line, "unit_price": dict(line["unit_price"]), "amount": dict(line["amount"])}
                for line in self.lines
            ],
            "total": dict(self.total),
            "posted_at": self.posted_at,
        }


@dataclass(slots=True)
class Item:
    """One article of the item master. ``uom`` is the unit it is sold in; a case holds
    ``each_per_case`` eaches, fixed for the item's life (a new case pack is a new SKU, as GS1
    numbering has it), so a quantity converts the same way all day."""

    sku: str
    description: str
    uom: str
    each_per_case: int
    weight_kg: float  # of one each
    active: bool
    version: int
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "description": self.description,
            "uom": self.uom,
            "each_per_case": self.each_per_case,
            "weight_kg": self.weight_kg,
            "active": self.active,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def eaches(self, qty: int, uom: str) -> int:
        return qty * self.each_per_case if uom == "CS" else qty


class ErpModel(SimModel):
    """The system of record: what was ordered, released, shipped, backordered and accrued."""

    system: ClassVar[str] = "erp"
    event_types: ClassVar[tuple[str, ...]] = (
        "order.released",
        "order.cancelled",
        "order.updated",
        "return.authorised",
        "item.created",
        "item.changed",
        "transfer.released",
    )

    def __init__(
        self, clock: Clock, stock: dict[str, int] | None = None, line_step: int = 1
    ) -> None:
        super().__init__(clock)
        self.line_step = line_step  # 1: lines 1, 2, 3; 10: 10, 20, 30, as SAP numbers them
        self._initial_stock = dict(stock or {})
        self._initial_sites: dict[str, dict[str, int]] = {}  # sites beyond the default
        self.reset()

    def reset(self) -> None:
        """Back to the initial catalogue and stock, with no documents and fresh id counters."""
        self.stock: dict[str, int] = dict(self._initial_stock)
        self.orders: dict[str, SalesOrder] = {}
        self.goods_issues: dict[str, GoodsIssue] = {}
        self.backorders: dict[str, Backorder] = {}
        self.accruals: dict[str, FreightAccrual] = {}
        self.adjustments: dict[str, InventoryAdjustment] = {}
        self.receipts: dict[str, GoodsReceipt] = {}
        self.returns: dict[str, ReturnAuthorisation] = {}
        self.returns_of: dict[str, list[str]] = {}  # order -> its RMAs (not a scan per return)
        self.credit_memos: dict[str, CreditMemo] = {}
        self.memo_by_receipt: dict[str, str] = {}  # WMS return receipt -> its credit memo
        prefixes = ("SO", "GI", "BO", "FA", "IA", "GR", "RMA", "CM")
        self._ids = {prefix: Ids(prefix) for prefix in prefixes}
        # The catalogue was loaded before the day began (the cutover), each as an EA item.
        self.items: dict[str, Item] = {sku: self._loaded(sku) for sku in self.stock}
        self.sites = Sites(self.stock, {n: dict(s) for n, s in self._initial_sites.items()})
        self.transfers = TransferBook(self)

    def add_site(self, name: str, stock: dict[str, int]) -> None:
        """Book another site (plant) with its stock; ``reset`` keeps it, as the catalogue."""
        self._initial_sites[name] = dict(stock)
        others = {n: s for n, s in self.sites.by_site.items() if n != DEFAULT_SITE}
        self.sites = Sites(self.stock, {**others, name: dict(stock)})

    # -- reading -------------------------------------------------------------------------
    def order(self, order_id: str) -> SalesOrder:
        return lookup(self.orders, "sales order", order_id)

    def return_authorisation(self, rma_id: str) -> ReturnAuthorisation:
        return lookup(self.returns, "return authorisation", rma_id)

    def item(self, sku: str) -> Item:
        return lookup(self.items, "item", sku)

    def backorder(self, backorder_id: str) -> Backorder:
        return lookup(self.backorders, "backorder", backorder_id)

    def on_hand(self, sku: str) -> int:
        if sku not in self.stock:
            raise not_found("SKU", sku)
        return self.stock[sku]

    def snapshot(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "stock": dict(self.stock),
            "orders": [o.to_dict() for o in self.orders.values()],
            "goods_issues": [g.to_dict() for g in self.goods_issues.values()],
            "backorders": [b.to_dict() for b in self.backorders.values()],
            "accruals": [a.to_dict() for a in self.accruals.values()],
            "adjustments": [a.to_dict() for a in self.adjustments.values()],
            "receipts": [r.to_dict() for r in self.receipts.values()],
            "returns": [r.to_dict() for r in self.returns.values()],
            "credit_memos": [m.to_dict() for m in self.credit_memos.values()],
            "items": [i.to_dict() for i in self.items.values()],
            "sites": self.sites.snapshot(),
            **self.transfers.snapshot(),
        }

    # -- sales orders --------------------------------------------------------------------
    def create_order(
        self,
        customer: dict,
        ship_to: dict,
        service_level: str,
        lines: list[dict],
        *,
        order_id: str | None = None,
        site: str | None = None,
    ) -> SalesOrder:
        """An open order; ``order_id`` names it (a provider state does), else the next SO id.
        ``site`` is the site assigned to fulfil it (none: the default site)."""
        self.sites.stock(site)
        if not lines:
            raise _invalid("lines", "an order needs at least one line")
        for index, line in enumerate(lines):
            self._require_sku(line["sku"], f"lines.{index}.sku")
            self._require_sellable(line["sku"], line.get("uom", "EA"), f"lines.{index}")
            if line["qty"] < 1:
                raise _invalid(f"lines.{index}.qty", "qty must be at least 1")
        if order_id in self.orders:
            raise conflict("already_exists", f"order {order_id} already exists", id=order_id)
        numbered = [
            {
                "line": n * self.line_step,
                "sku": line["sku"],
                "qty": line["qty"],
                "uom": line.get("uom", "EA"),
            }
            for n, line in enumerate(lines, 1)
        ]
        order = SalesOrder(
            order_id or self._ids["SO"].next(),
            dict(customer),
            dict(ship_to),
            service_level,
            numbered,
            "open",
            self.now(),
            site=site or DEFAULT_SITE,
        )
        self._record_status(order)
        self.orders[order.id] = order
        return order

    def release(self, order_id: str) -> SalesOrder:
        order = self.order(order_id)
        _require_status(order, ("open",), "only an open order can be released")
        order.released_at = self.now()
        self._set_status(order, "released")
        self.emit("order.released", order.to_dict(), order.id)
        self.notify("released", order)
        return order

    def cancel(self, order_id: str) -> SalesOrder:
        order = self.order(order_id)
        _require_status(order, CANCELLABLE, "only an open or released order can be cancelled")
        self._set_status(order, "cancelled")
        self.emit("order.cancelled", {"order_id": order.id, "cancelled_at": self.now()}, order.id)
        self.notify("cancelled", order)
        return order

    def change_ship_to(self, order_id: str, ship_to: dict) -> SalesOrder:
        """Replace the delivery address of an open or released order; emits ``order.updated``.

        The ERP is the system of record, so it announces the change for the integration to
        carry to the WMS. An address identical to the current one is still a change: it is
        recorded and announced all the same (no comparison, as a simple ERP would do).
        """
        order = self.order(order_id)
        _require_status(order, CHANGEABLE, "only an open or released order can change its ship-to")
        order.ship_to = dict(ship_to)
        order.updated_at = self.now()
        data = {
            "order_id": order.id,
            "ship_to": dict(order.ship_to),
            "changed": ["ship_to"],
            "updated_at": order.updated_at,
        }
        self.emit("order.updated", data, order.id)
        self.notify("updated", order)
        return order

    # -- postings ------------------------------------------------------------------------
    def goods_issue(
        self,
        order_id: str,
        lines: list[dict],
        tracking_number: str | None,
        carrier: str | None,
        shipment_id: str | None,
    ) -> GoodsIssue:
        """Post what left the warehouse; whatever was ordered but not issued is backordered."""
        order = self.order(order_id)
        if order.goods_issues:
            raise _status_conflict(
                order,
                f"sales order {order.id} already has goods issue {order.goods_issues[0]}",
                "already_issued",
                goods_issue_id=order.goods_issues[0],
            )
        _require_status(order, ("released",), "goods can only be issued for a released order")
        eaches = self._in_eaches(order, lines)
        issued = qty_per_line(
            eaches,
            self._ordered_eaches(order),
            document=f"order {order.id}",
            verb="issues",
            limit="only {} were ordered",
            detail="issued",
        )
        self._require_stock(order, issued)
        gi_lines = [
            {"line": line["line"], "sku": line["sku"], "qty": issued[line["line"]]}
            for line in order.lines
        ]
        stock = self.sites.stock(order.site)  # issued from the site the order was assigned
        for line in gi_lines:
            stock[line["sku"]] -= line["qty"]
        backorder = self._backorder(order, issued)
        gi = GoodsIssue(
            self._ids["GI"].next(),
            order.id,
            gi_lines,
            tracking_number,
            carrier,
            shipment_id,
            backorder.id if backorder else None,
            self.now(),
        )
        self.goods_issues[gi.id] = gi
        order.goods_issues.append(gi.id)
        if tracking_number and order.tracking_number is None:
            order.tracking_number = tracking_number
        self._set_status(order, "shipped" if any(issued.values()) else "backordered")
        self.notify("goods_issued", gi)
        return gi

    def post_tracking(
        self, order_id: str, tracking_number: str, status: str, occurred_at: str
    ) -> SalesOrder:
        """Store a carrier milestone; out-of-order moves are kept for the oracles to judge."""
        order = self.order(order_id)
        if status not in TRACKING_STATUSES:
            raise _invalid("status", f"unknown tracking status {status!r}")
        if order.status == "cancelled":
            raise _status_conflict(order, "a cancelled order takes no tracking")
        if order.tracking_number is None:
            order.tracking_number = tracking_number
        order.tracking_status = status
        order.updated_at = self.now()
        order.tracking_history.append(
            {
                "status": status,
                "occurred_at": occurred_at,
                "tracking_number": tracking_number,
                "posted_at": self.now(),
            }
        )
        if status == "delivered" and order.status == "shipped":
            self._set_status(order, "delivered")
        return order

    def accrue_freight(self, order_id: str, shipment_id: str, amount: dict) -> FreightAccrual:
        order = self.order(order_id)
        accrual = FreightAccrual(
            self._ids["FA"].next(), order.id, shipment_id, dict(amount), self.now()
        )
        self.accruals[accrual.id] = accrual
        return accrual

    def adjust_inventory(
        self, sku: str, delta: int, reason: str, reference: str | None, site: str | None = None
    ) -> InventoryAdjustment:
        self._require_sku(sku, "sku")
        if reason not in ADJUSTMENT_REASONS:
            raise _invalid("reason", f"unknown adjustment reason {reason!r}")
        stock = self.sites.stock(site)
        if stock[sku] + delta < 0:
            raise unprocessable(
                "insufficient_stock",
                f"adjusting {sku} by {delta} would take book stock below zero",
                sku=sku,
                on_hand=stock[sku],
                delta=delta,
            )
        stock[sku] += delta
        adjustment = InventoryAdjustment(
            self._ids["IA"].next(), sku, delta, reason, reference, stock[sku], self.now()
        )
        self.adjustments[adjustment.id] = adjustment
        return adjustment

    def receive_goods(
        self, reference: str, lines: list[dict], site: str | None = None
    ) -> GoodsReceipt:
        stock = self.sites.stock(site)
        if not lines:
            raise _invalid("lines", "a receipt needs at least one line")
        for index, line in enumerate(lines):
            self._require_sku(line["sku"], f"lines.{index}.sku")
            if line["qty"] < 1:
                raise _invalid(f"lines.{index}.qty", "qty must be at least 1")
        received = [{"sku": line["sku"], "qty": line["qty"]} for line in lines]
        for line in received:
            stock[line["sku"]] += line["qty"]
        receipt = GoodsReceipt(self._ids["GR"].next(), reference, received, self.now())
        self.receipts[receipt.id] = receipt
        return receipt

    # -- item master ---------------------------------------------------------------------
    def create_item(
        self,
        sku: str,
        description: str,
        uom: str = "EA",
        each_per_case: int = 1,
        weight_kg: float = DEFAULT_WEIGHT_KG,
        *,
        opening_stock: int = 0,
    ) -> Item:
        """A new article (the product team's); emits ``item.created`` with the whole item.
        ``opening_stock`` is its first delivery, already in the book (docs/choreography.md)."""
        if sku in self.items:
            raise conflict("already_exists", f"item {sku} already exists", sku=sku)
        _check_item(uom, each_per_case, weight_kg)
        now = self.now()
        item = Item(sku, description, uom, each_per_case, weight_kg, True, 1, now, now)
        self.items[sku] = item
        self.stock.setdefault(sku, opening_stock)
        self.emit("item.created", item.to_dict(), sku)
        self.notify("item_created", item)
        return item

    def change_item(
        self,
        sku: str,
        *,
        description: str | None = None,
        weight_kg: float | None = None,
        active: bool | None = None,
    ) -> Item:
        """Edit an article; its version grows and ``item.changed`` carries the whole item."""
        item = self.item(sku)
        if weight_kg is not None:
            _check_item(item.uom, item.each_per_case, weight_kg)
            item.weight_kg = weight_kg
        if description is not None:
            item.description = description
        if active is not None:
            item.active = active
        item.version += 1
        item.updated_at = self.now()
        self.emit("item.changed", item.to_dict(), sku)
        self.notify("item_changed", item)
        return item

    def cutover_item(self, sku: str, uom: str, each_per_case: int) -> Item:
        """Set how a catalogue item is sold before the day starts, as the data migration of
        a cutover does: no event (the WMS was loaded from the same file)."""
        _check_item(uom, each_per_case, DEFAULT_WEIGHT_KG)
        item = self.item(sku)
        item.uom, item.each_per_case = uom, each_per_case
        return item

    def ensure_item(self, sku: str) -> Item:
        """The item of a SKU, loaded as the cutover would if the master lacks it."""
        return self.items.setdefault(sku, self._loaded(sku))

    def _loaded(self, sku: str) -> Item:
        now = self.now()
        return Item(sku, f"Article {sku}", "EA", 1, DEFAULT_WEIGHT_KG, True, 1, now, now)

    def _require_sellable(self, sku: str, uom: str, where: str) -> None:
        item = self.items.get(sku)
        if uom not in UOMS:
            raise _invalid(f"{where}.uom", f"uom must be one of {', '.join(UOMS)}")
        if item is not None and not item.active:
            raise unprocessable(
                "inactive_item", f"item {sku} is not active", field=f"{where}.sku", sku=sku
            )

    def _ordered_eaches(self, order: SalesOrder) -> dict[int, int]:
        return {
            line["line"]: self._eaches(line["sku"], line["qty"], line.get("uom", "EA"))
            for line in order.lines
        }

    def _in_eaches(self, order: SalesOrder, lines: list[dict]) -> list[dict]:
        """Goods issue lines converted to eaches with the item master (``uom`` absent: EA)."""
        sku_of = {line["line"]: line["sku"] for line in order.lines}
        converted = []
        for index, line in enumerate(lines):
            uom = line.get("uom") or "EA"
            if uom not in UOMS:
                raise _invalid(f"lines.{index}.uom", f"uom must be one of {', '.join(UOMS)}")
            sku = sku_of.get(line["line"])
            qty = line["qty"] if sku is None else self._eaches(sku, line["qty"], uom)
            converted.append({"line": line["line"], "qty": qty})
        return converted

    def _eaches(self, sku: str, qty: int, uom: str) -> int:
        item = self.items.get(sku)
        return item.eaches(qty, uom) if item is not None else qty

    # -- returns -------------------------------------------------------------------------
    def authorise_return(
        self,
        order_id: str,
        lines: list[dict],
        reason: str,
        resolution: str = "refund",
        *,
        rma_id: str | None = None,
    ) -> ReturnAuthorisation:
        """Authorise the customer to send back issued units; emits ``return.authorised``.

        Only what was issued can come back: all RMAs of an order together authorise at most
        the issued qty of each line (422 ``qty_exceeds_issued``). ``rma_id`` names it (a
        provider state does), else the next RMA id.
        """
        order = self.order(order_id)
        _require_status(order, RETURNABLE, "only a shipped or delivered order can be returned")
        if reason not in RETURN_REASONS:
            raise _invalid("reason", f"reason must be one of {', '.join(RETURN_REASONS)}")
        if resolution not in RESOLUTIONS:
            raise _invalid("resolution", f"resolution must be one of {', '.join(RESOLUTIONS)}")
        if not lines:
            raise _invalid("lines", "a return needs at least one line")
        returnable = self._returnable(order)
        sku_of = {line["line"]: line["sku"] for line in order.lines}
        wanted: Counter[int] = Counter()
        for index, line in enumerate(lines):
            if line["line"] not in sku_of:
                raise _invalid(
                    f"lines.{index}.line", f"order {order.id} has no line {line['line']}"
                )
            if line["qty"] < 1:
                raise _invalid(f"lines.{index}.qty", "qty must be at least 1")
            wanted[line["line"]] += line["qty"]
        for number, qty in wanted.items():
            if qty > returnable[number]:
                raise unprocessable(
                    "qty_exceeds_issued",
                    f"line {number} returns {qty} but only {returnable[number]} can come back",
                    line=number,
                    returnable=returnable[number],
                    requested=qty,
                )
        if rma_id in self.returns:
            raise conflict("already_exists", f"RMA {rma_id} already exists", id=rma_id)
        rma = ReturnAuthorisation(
            rma_id or self._ids["RMA"].next(),
            order.id,
            [{"line": n, "sku": sku_of[n], "qty": qty} for n, qty in sorted(wanted.items())],
            reason,
            resolution,
            "authorised",
            self.now(),
        )
        self.returns[rma.id] = rma
        self.returns_of.setdefault(order.id, []).append(rma.id)
        data = {
            "rma_id": rma.id,
            "order_id": order.id,
            "lines": [dict(line) for line in rma.lines],
            "reason": reason,
            "resolution": resolution,
            "authorised_at": rma.authorised_at,
        }
        self.emit("return.authorised", data, order.id)
        self.notify("return_authorised", rma)
        return rma

    def dispose_return(self, rma_id: str, receipt_id: str, lines: list[dict]) -> CreditMemo:
        """Post the financial disposition of one return receipt: a credit memo for what came
        back, and book stock up by the restockable qty only.

        One disposition per receipt (409 ``already_disposed``, as SAP's "already posted");
        what all credit memos of the RMA credit stays within what was authorised (422).
        """
        rma = self.return_authorisation(rma_id)
        posted = self.memo_by_receipt.get(receipt_id)
        if posted is not None:
            raise conflict(
                "already_disposed",
                f"return receipt {receipt_id} already has credit memo {posted}",
                status=rma.status,
                rma_id=rma.id,
                receipt_id=receipt_id,
                credit_memo_id=posted,
            )
        if not lines:
            raise _invalid("lines", "a disposition needs at least one line")
        left = self._uncredited(rma)
        sku_of = {line["line"]: line["sku"] for line in rma.lines}
        credited: Counter[int] = Counter()
        for index, line in enumerate(lines):
            if line["line"] not in sku_of:
                raise _invalid(f"lines.{index}.line", f"{rma.id} authorises no line {line['line']}")
            if not 0 <= line["restock_qty"] <= line["qty"]:
                raise _invalid(f"lines.{index}.restock_qty", "restock_qty must be 0..qty")
            credited[line["line"]] += line["qty"]
        for number, qty in credited.items():
            if qty > left[number]:
                raise unprocessable(
                    "qty_exceeds_authorised",
                    f"line {number} credits {qty} but only {left[number]} of {rma.id} is left",
                    line=number,
                    left=left[number],
                    requested=qty,
                )
        memo_lines = [_credit_line(sku_of[line["line"]], line) for line in lines]
        for line in memo_lines:
            self.stock[line["sku"]] += line["restock_qty"]
        total = sum((Decimal(line["amount"]["amount"]) for line in memo_lines), Decimal(0))
        memo = CreditMemo(
            self._ids["CM"].next(),
            rma.id,
            rma.order_id,
            receipt_id,
            rma.resolution,
            memo_lines,
            money(total),
            self.now(),
        )
        self.credit_memos[memo.id] = memo
        self.memo_by_receipt[receipt_id] = memo.id
        rma.credit_memos.append(memo.id)
        fully = all(qty == credited[n] for n, qty in left.items())
        rma.status = "credited" if fully else "partially_credited"
        self.notify("return_disposed", memo)
        return memo

    def _returnable(self, order: SalesOrder) -> Counter[int]:
        """Issued qty per line not yet authorised for return."""
        left: Counter[int] = Counter()
        for gi_id in order.goods_issues:
            for line in self.goods_issues[gi_id].lines:
                left[line["line"]] += line["qty"]
        for rma_id in self.returns_of.get(order.id, ()):
            for line in self.returns[rma_id].lines:
                left[line["line"]] -= line["qty"]
        return left

    def _uncredited(self, rma: ReturnAuthorisation) -> Counter[int]:
        """Authorised qty per line no credit memo has credited yet."""
        left: Counter[int] = Counter({line["line"]: line["qty"] for line in rma.lines})
        for memo_id in rma.credit_memos:
            for line in self.credit_memos[memo_id].lines:
                left[line["line"]] -= line["qty"]
        return left

    # -- examples ------------------------------------------------------------------------
    def seed_examples(self) -> None:
        """The catalogue and documents the OpenAPI examples name, in the states they need.

        SO-000001 released (read, goods issue, freight), SO-000002 open (release, change),
        SO-000003 open (cancel), SO-000004 shipped short (tracking) with GI-000001 and
        BO-000001, and one of its units authorised for return (RMA-000001, disposition);
        a second site DC2 and transfer order TO-000001 from DC1 to it, released.
        The seeded SKUs join the initial catalogue, so ``reset()`` keeps them.
        """
        self._initial_stock.update({"A-100": 100, "B-200": 50})
        for sku in ("A-100", "B-200"):
            self.stock.setdefault(sku, self._initial_stock[sku])
            self.items.setdefault(sku, self._loaded(sku))
        customer = {"name": "Ada Lovelace", "email": "ada@example.com"}
        ship_to = {
            "name": "Ada Lovelace",
            "street": "12 Analytical Way",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        }
        lines = [{"sku": "A-100", "qty": 3}, {"sku": "B-200", "qty": 1}]
        first, _, _, short = (
            self.create_order(customer, ship_to, "standard", lines) for _ in range(4)
        )
        self.release(first.id)
        self.release(short.id)
        self.goods_issue(short.id, [{"line": 1, "qty": 2}], "PC000000001", "parcelco", None)
        self.authorise_return(short.id, [{"line": 1, "qty": 1}], "changed_mind")  # RMA-000001
        if "DC2" not in self.sites.by_site:
            self.add_site("DC2", dict.fromkeys(self._initial_stock, 0))
        self.transfers.release("DC1", "DC2", [{"sku": "A-100", "qty": 5}])  # TO-000001

    # -- helpers -------------------------------------------------------------------------
    def require_sku(self, sku: str, field_name: str) -> None:
        self._require_sku(sku, field_name)

    def _require_sku(self, sku: str, field_name: str) -> None:
        if sku not in self.stock:
            raise unprocessable(
                "unknown_sku", f"SKU {sku} is not in the catalogue", field=field_name, sku=sku
            )

    def _require_stock(self, order: SalesOrder, issued: dict[int, int]) -> None:
        wanted: Counter[str] = Counter()
        for line in order.lines:
            wanted[line["sku"]] += issued[line["line"]]
        stock = self.sites.stock(order.site)
        for sku, qty in wanted.items():
            if qty > stock[sku]:
                raise unprocessable(
                    "insufficient_stock",
                    f"issuing {qty} of {sku} would take book stock below zero",
                    sku=sku,
                    on_hand=stock[sku],
                    requested=qty,
                )

    def _backorder(self, order: SalesOrder, issued: dict[int, int]) -> Backorder | None:
        """What was ordered and not issued, in eaches (a case line may ship part of a case)."""
        ordered = self._ordered_eaches(order)
        remainder = [
            {"line": n, "sku": line["sku"], "qty": ordered[n] - issued[n]}
            for line in order.lines
            if ordered[(n := line["line"])] > issued[n]
        ]
        if not remainder:
            return None
        backorder = Backorder(self._ids["BO"].next(), order.id, remainder, self.now())
        self.backorders[backorder.id] = backorder
        order.backorders.append(backorder.id)
        return backorder

    def _set_status(self, order: SalesOrder, status: str) -> None:
        order.status = status
        self._record_status(order)

    def _record_status(self, order: SalesOrder) -> None:
        """A status move (creation included) is a change of the order."""
        order.updated_at = self.now()
        order.status_history.append({"status": order.status, "at": order.updated_at})


def _check_item(uom: str, each_per_case: int, weight_kg: float) -> None:
    if uom not in UOMS:
        raise _invalid("uom", f"uom must be one of {', '.join(UOMS)}")
    if each_per_case < 1 or (uom == "EA" and each_per_case != 1):
        raise _invalid("each_per_case", "each_per_case must be 1 for an EA item, >= 1 for CS")
    if weight_kg <= 0:
        raise _invalid("weight_kg", "weight_kg must be above 0")


def _credit_line(sku: str, line: dict[str, Any]) -> dict[str, Any]:
    """A credit memo line priced from the list: what came back is credited in full."""
    price = list_price(sku)
    return {
        "line": line["line"],
        "sku": sku,
        "qty": line["qty"],
        "restock_qty": line["restock_qty"],
        "unit_price": money(price),
        "amount": money(price * line["qty"]),
    }


def _require_status(order: SalesOrder, allowed: tuple[str, ...], message: str) -> None:
    if order.status not in allowed:
        raise _status_conflict(order, f"{message}; {order.id} is {order.status}")


def _status_conflict(
    order: SalesOrder, message: str, code: str = "invalid_status", **details: Any
) -> SimError:
    """A 409 whose ``details.status`` is the order's current status."""
    return conflict(code, message, status=order.status, order_id=order.id, **details)
