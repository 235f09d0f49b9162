"""The choreography (docs/choreography.md), one handler per thing a feed can tell us.

Every handler is safe to run twice: it compares what it learned with what it already did
(state below) and sends writes with Idempotency-Keys. A handler raises Later when it cannot
finish now (a vendor still failing, a scan whose goods issue is not posted yet): its record is
then read again on a later cycle.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .feeds import Record
from .vendors import Ambiguous, Later, Reply, Vendors

log = logging.getLogger("pollstack.flows")

# the fields naming a record's business key, first found wins (a WMS transfer's events by WT)
KEYS = ("order_ref", "transfer_id", "id", "adjustment_id", "receipt_id", "shipment_id", "sku")


def refused(ref: str, vendor: str, what: str, reply: Reply) -> None:
    """A business refusal nobody can fix by retrying: logged, the record is done."""
    log.error("%s: %s refused %s: %s %s", ref, vendor, what, reply.status, reply.body)


def digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Order:
    """Everything the stack knows and did about one ERP order."""

    ref: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ship_to: dict[str, Any] | None = None  # the ERP's current address
    cancelled: bool = False
    cancel_done: bool = False  # the WMS order, the shipment and the label are cancelled
    fo_id: str | None = None
    fo_unsure: bool = False  # a create may have gone through unanswered: look before writing
    fo_settles_at: float = 0.0  # ... but not before this (monotonic): it may still land
    fo_ship_to: dict[str, Any] | None = None  # the address the WMS holds
    packed: dict[str, Any] | None = None  # the order.packed data
    shipment: dict[str, Any] | None = None  # the TMS shipment planned
    label: dict[str, Any] | None = None  # the carrier label bought
    label_refused: bool = False  # the carrier refused the address: buy again once it changes
    labelled: bool = False  # the label is on the WMS order
    issued: bool = False  # the ERP goods issue is posted
    last_scan: int = 0  # the newest scan sequence posted to the ERP


class Flows:
    """The stack's business rules over the vendors."""

    def __init__(self, vendors: Vendors, *, look_at_once: bool = False) -> None:
        self.vendors = vendors
        self.look_at_once = look_at_once  # the planted bug of that name
        self.orders: dict[str, Order] = {}
        self.parcels: dict[str, str] = {}  # tracking number -> order ref
        self.items: dict[str, dict[str, Any]] = {}  # sku -> the newest ERP item we learnt
        self.item_put: dict[str, int] = {}  # sku -> the version the WMS holds from us
        self.item_locks: dict[str, asyncio.Lock] = {}
        self.transfers: dict[str, str] = {}  # ERP transfer order (TO-) -> its WMS transfer (WT-)
        self.transfers_tried: set[str] = set()  # a create was sent: look before sending again
        self.transfer_settles_at: dict[str, float] = {}  # ... but not before (monotonic)
        self.transfer_posts: set[str] = set()  # "issue-WT-1", "receipt-WT-1": posted to the ERP
        self.refusals: dict[str, int] = {}  # an ERP posting's key -> its "not yet" refusals

    def settled(self, ref: str, settles_at: float) -> None:
        """Raise Later while a create our timeout cut off may still land (README: the
        vendor's gateway gives up on it 30 s after it was sent): looked for sooner, it is not
        there yet, and sending it again makes two."""
        if not self.look_at_once and time.monotonic() < settles_at:
            raise Later(f"{ref}: a create cut off by our timeout may still land")

    def order(self, ref: str) -> Order:
        if ref not in self.orders:
            self.orders[ref] = Order(ref)
        return self.orders[ref]

    async def call(self, system: str, method: str, path: str, ref: str, **kw: Any) -> Reply:
        """A vendor call about an order: its correlation id is `ps-<order>`."""
        return await self.vendors.call(system, method, path, corr=f"ps-{ref}", **kw)

    def key_for(self, key: str) -> str:
        """The Idempotency-Key of a posting's next try. The ERP replays the first answer to a
        key, refusals included (docs/choreography.md, conventions): after a "not yet" refusal,
        which posted nothing, the next try needs a key of its own or it is refused forever."""
        tries = self.refusals.get(key, 0)
        return f"{key}-retry{tries}" if tries else key

    def not_yet(self, key: str, why: str) -> Later:
        """A refusal that time will lift: the record is read again, under a new key."""
        self.refusals[key] = self.refusals.get(key, 0) + 1
        return Later(why)

    # -- keys: which records must run one after the other ---------------------------------
    def key_of(self, record: Record) -> str:
        data = record.data
        if record.kind == "tracking.updated":
            number = data.get("tracking_number", "")
            return self.parcels.get(number, number)
        for name in KEYS:
            if data.get(name):
                return str(data[name])
        return record.rid

    # -- ERP: the item events (master data) and transfer orders ---------------------------
    async def erp_event(self, record: Record) -> None:
        """item.created / item.changed: carry the whole item to the WMS, newest version only;
        transfer.released: create the WMS transfer."""
        if record.kind in ("item.created", "item.changed"):
            await self.sync_item(record.data)
        elif record.kind == "transfer.released":
            await self.create_transfer(record.data)

    async def sync_item(self, item: dict[str, Any]) -> None:
        sku, version = item["sku"], int(item["version"])
        if version > int(self.items.get(sku, {}).get("version", 0)):
            self.items[sku] = item
        lock = self.item_locks.setdefault(sku, asyncio.Lock())
        async with lock:
            newest = self.items[sku]
            if int(newest["version"]) <= self.item_put.get(sku, 0):
                return  # a duplicate, or an older version arriving late: the WMS has newer
            fields = ("description", "weight_kg", "active", "each_per_case")
            reply = await self.vendors.call(
                "wms",
                "PUT",
                f"/items/{quote(sku, safe='')}",  # a SKU may hold / or #: one segment
                corr=f"ps-item-{sku}",
                json_body={k: newest[k] for k in fields},
                key=f"wms-item-{sku}-v{newest['version']}",
            )
            if not reply.ok:
                refused(sku, "WMS", f"item version {newest['version']}", reply)
                return
            self.item_put[sku] = int(newest["version"])

    async def each_per_case(self, sku: str, ref: str) -> int:
        """Eaches in one case of `sku` (fixed for the item's life): from the item events we
        read, or the ERP's item master for an item of the catalogue loaded before the day."""
        if sku not in self.items:
            reply = await self.call("erp", "GET", f"/items/{quote(sku, safe='')}", ref)
            if not reply.ok:
                raise Later(f"{ref}: ERP item {sku}: {reply.status} {reply.code}")
            self.items.setdefault(sku, reply.body)
        return int(self.items[sku]["each_per_case"])

    async def wms_lines(self, order: Order, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ERP's order lines in eaches, the only unit the WMS picks."""
        out = []
        for x in lines:
            qty = x["qty"]
            if x.get("uom", "EA") == "CS":
                qty *= await self.each_per_case(x["sku"], order.ref)
            out.append({"line": x["line"], "sku": x["sku"], "qty": qty})
        return out

    # -- ERP: the orders change list ------------------------------------------------------
    async def erp_order(self, record: Record) -> None:
        """A version of an ERP order: release, cancellation, a new address."""
        data = record.data
        order = self.order(data["id"])
        order.ship_to = data["ship_to"]
        order.cancelled = order.cancelled or data["status"] == "cancelled"  # nothing new starts
        if not self.owed(order, data["status"]):
            return  # most versions are our own postings (goods issue, tracking) coming back
        async with order.lock:
            if order.cancelled:
                if not order.cancel_done:
                    await self.cancel(order)
            elif data["status"] == "released" and not order.fo_id:
                await self.create_fulfilment_order(order, data)
            elif order.fo_id and order.fo_ship_to != order.ship_to:
                await self.new_address(order)

    @staticmethod
    def owed(order: Order, status: str) -> bool:
        """Whether this version of the ERP order asks anything of the stack."""
        if order.cancelled:
            return not order.cancel_done
        if status == "released" and not order.fo_id:
            return True
        return bool(order.fo_id) and order.fo_ship_to != order.ship_to

    async def create_fulfilment_order(self, order: Order, data: dict[str, Any]) -> None:
        body = {
            "order_ref": order.ref,
            "ship_to": order.ship_to,
            "service_level": data["service_level"],
            "lines": await self.wms_lines(order, data["lines"]),
        }
        if data.get("site"):  # the site the ERP assigned; none is the WMS's default, DC1
            body["site"] = data["site"]
        if order.fo_unsure:
            self.settled(order.ref, order.fo_settles_at)
        if order.fo_unsure and (found := await self.live_fulfilment_orders(order)):
            order.fo_id, order.fo_ship_to = found[0]["id"], found[0]["ship_to"]
            order.fo_unsure = False
            if order.fo_ship_to != order.ship_to:
                await self.new_address(order)
            return
        try:  # the WMS does not honour Idempotency-Key: a lost answer may hide a created order
            reply = await self.call(
                "wms",
                "POST",
                "/fulfilment-orders",
                order.ref,
                json_body=body,
                key=f"fo-{order.ref}",
                retry_ambiguous=False,
            )
        except Ambiguous as unsure:
            order.fo_unsure, order.fo_settles_at = True, unsure.settles_at
            raise
        if reply.code in ("unknown_item", "inactive_item"):  # master data still on its way
            raise Later(f"{order.ref}: WMS {reply.code} {reply.details}")
        if not reply.ok:
            refused(order.ref, "WMS", "the fulfilment order", reply)
            return
        order.fo_id, order.fo_ship_to, order.fo_unsure = reply.body["id"], body["ship_to"], False

    async def live_fulfilment_orders(self, order: Order) -> list[dict[str, Any]]:
        reply = await self.call(
            "wms", "GET", "/fulfilment-orders", order.ref, params={"order_ref": order.ref}
        )
        if not reply.ok:
            raise Later(f"{order.ref}: WMS lookup {reply.status}")
        return [fo for fo in reply.body["items"] if fo.get("status") != "cancelled"]

    async def new_address(self, order: Order) -> None:
        """Carry the ERP's new address to the WMS, and buy the refused label again."""
        body = {"ship_to": order.ship_to}
        reply = await self.call(
            "wms",
            "PATCH",
            f"/fulfilment-orders/{order.fo_id}",
            order.ref,
            json_body=body,
            key=f"addr-{order.ref}-{digest(body)}",
        )
        if reply.ok or reply.status == 409:  # 409: labelled or closed, too late to change
            order.fo_ship_to = order.ship_to
        if order.label_refused and order.packed and not order.cancelled:
            await self.label_and_attach(order)

    async def cancel(self, order: Order) -> None:
        """The customer cancelled: stop the warehouse, the freight and the label."""
        fo_ids = [order.fo_id] if order.fo_id else []
        if order.fo_unsure:
            self.settled(order.ref, order.fo_settles_at)
            fo_ids += [fo["id"] for fo in await self.live_fulfilment_orders(order)]
            order.fo_unsure = False
        for fo_id in dict.fromkeys(fo_ids):
            reply = await self.call(
                "wms",
                "POST",
                f"/fulfilment-orders/{fo_id}/cancel",
                order.ref,
                json_body={},
                key=f"cancel-{fo_id}",
            )
            if reply.status == 409 and reply.details.get("status") == "shipped":
                log.error("%s: cancelled in the ERP but %s has shipped", order.ref, fo_id)
        if order.shipment:
            await self.call(
                "tms",
                "POST",
                f"/shipments/{order.shipment['id']}/cancel",
                order.ref,
                json_body={},
                key=f"cancel-{order.shipment['id']}",
            )
        if order.label:
            await self.call(
                "carrier",
                "POST",
                f"/labels/{order.label['id']}/void",
                order.ref,
                json_body={},
                key=f"void-{order.label['id']}",
            )
        order.cancel_done = True

    # -- WMS: the events feed -------------------------------------------------------------
    async def wms_event(self, record: Record) -> None:
        data = record.data
        if record.kind == "inventory.adjusted":
            await self.adjustment(data)
        elif record.kind == "receipt.confirmed":
            await self.receipt(data)
        elif record.kind == "return.received":
            await self.dispose_return(data)
        elif record.kind in ("transfer.shipped", "transfer.received"):
            await self.post_transfer(record.kind, data)
        elif record.kind in ("order.picked", "order.packed", "order.shipped"):
            order = self.order(data["order_ref"])
            async with order.lock:
                if order.cancelled:
                    return
                lines = data.get("lines", [])
                if record.kind == "order.picked" and not any(x["picked_qty"] for x in lines):
                    nothing = [{"line": x["line"], "qty": 0, "uom": "EA"} for x in lines]
                    await self.goods_issue(order, nothing)
                elif record.kind == "order.packed":
                    order.packed = data
                    await self.ship_out(order)
                elif record.kind == "order.shipped":
                    self.parcels[data["tracking_number"]] = order.ref
                    shipped = [{"line": x["line"], "qty": x["qty"], "uom": "EA"} for x in lines]
                    await self.goods_issue(order, shipped, data["tracking_number"], data["carrier"])

    async def ship_out(self, order: Order) -> None:
        """Packed: plan the freight, buy the label, put it on the WMS order."""
        packed = order.packed or {}
        if not order.shipment:
            body = {
                "order_ref": order.ref,
                "fulfilment_order_id": packed["fulfilment_order_id"],
                "ship_to": order.ship_to or packed["ship_to"],
                "service_level": packed["service_level"],
                "packages": [{"weight_kg": p["weight_kg"]} for p in packed["packages"]],
            }
            reply = await self.plan(order, body)
            if (
                reply.code == "tender_rejected"
                and body["service_level"] == "express"
                and reply.details.get("reason") == "capacity_exhausted"
            ):
                reply = await self.plan(order, {**body, "service_level": "standard"})  # by ground
            if not reply.ok:
                refused(order.ref, "TMS", "the shipment", reply)
                return
            reply.body["id"], reply.body["service"], reply.body["carrier"]  # all there, or Later
            order.shipment = reply.body
        await self.label_and_attach(order)

    async def plan(self, order: Order, body: dict[str, Any]) -> Reply:
        return await self.call(
            "tms",
            "POST",
            "/shipments",
            order.ref,
            json_body=body,
            key=f"plan-{order.ref}-{digest(body)}",
        )

    async def label_and_attach(self, order: Order) -> None:
        packed, shipment = order.packed or {}, order.shipment
        if not shipment:
            return
        if not order.label or order.label_refused:
            body = {
                "shipment_ref": shipment["id"],
                "service": shipment["service"],
                "ship_to": order.ship_to or packed["ship_to"],
                "packages": [
                    {"weight_kg": p["weight_kg"], "contents": p["contents"]}
                    for p in packed["packages"]
                ],
            }
            reply = await self.call(
                "carrier",
                "POST",
                "/labels",
                order.ref,
                json_body=body,
                key=f"label-{shipment['id']}-{digest(body)}",
            )
            if reply.code == "address_invalid":  # wait for customer service to fix it
                order.label_refused = True
                log.warning("%s: carrier refused the address: %s", order.ref, reply.details)
                return
            if not reply.ok:
                refused(order.ref, "carrier", "the label", reply)
                return
            reply.body["id"], reply.body["tracking_number"]  # all there, or Later
            order.label, order.label_refused = reply.body, False
            self.parcels[reply.body["tracking_number"]] = order.ref
        if not order.labelled:
            label = order.label or {}
            body = {
                "tracking_number": label["tracking_number"],
                "carrier": shipment["carrier"],
                "label_id": label["id"],
            }
            reply = await self.call(
                "wms",
                "POST",
                f"/fulfilment-orders/{packed['fulfilment_order_id']}/label",
                order.ref,
                json_body=body,
                key=f"attach-{label['id']}",
            )
            if not reply.ok:
                refused(order.ref, "WMS", "the label", reply)
            order.labelled = True

    async def goods_issue(
        self,
        order: Order,
        lines: list[dict[str, Any]],
        tracking: str | None = None,
        carrier: str | None = None,
    ) -> None:
        """Post what the warehouse shipped (or nothing, for a short-closed order) once."""
        if order.issued:
            return
        body = {
            "lines": lines,
            "tracking_number": tracking,
            "carrier": carrier,
            "shipment_id": order.shipment["id"] if order.shipment else None,
        }
        key = f"gi-{order.ref}"
        reply = await self.call(
            "erp",
            "POST",
            f"/orders/{quote(order.ref, safe='')}/goods-issue",
            order.ref,
            json_body=body,
            key=self.key_for(key),
        )
        if reply.code == "insufficient_stock":  # a receipt not posted yet: try again later
            raise self.not_yet(key, f"{order.ref}: goods issue refused for book stock")
        if not reply.ok and reply.code != "already_issued":
            refused(order.ref, "ERP", "the goods issue", reply)
        order.issued = True

    async def adjustment(self, data: dict[str, Any]) -> None:
        body = {
            "sku": data["sku"],
            "delta": data["delta"],
            "reason": data["reason"],
            "reference": data["adjustment_id"],
        }
        if data.get("site"):  # where it happened: the ERP books stock per site
            body["site"] = data["site"]
        await self.post_once("/inventory/adjustments", data["adjustment_id"], body)

    async def receipt(self, data: dict[str, Any]) -> None:
        body = {"reference": data["receipt_id"], "lines": data["lines"]}
        if data.get("site"):
            body["site"] = data["site"]
        await self.post_once("/goods-receipts", data["receipt_id"], body)

    async def dispose_return(self, data: dict[str, Any]) -> None:
        """A customer return at the bench: one credit memo per receipt, every unit credited
        per order line, only the units graded `restock` back in the books."""
        per_line: dict[int, dict[str, int]] = {}
        for x in data["lines"]:
            line = per_line.setdefault(x["line"], {"line": x["line"], "qty": 0, "restock_qty": 0})
            line["qty"] += x["qty"]
            if x["condition"] == "restock":
                line["restock_qty"] += x["qty"]
        body = {"receipt_id": data["receipt_id"], "lines": list(per_line.values())}
        reply = await self.call(
            "erp",
            "POST",
            f"/returns/{data['rma_id']}/disposition",
            data["order_ref"],
            json_body=body,
            key=f"disposition-{data['receipt_id']}",
        )
        if not reply.ok and reply.code != "already_disposed":
            refused(data["order_ref"], "ERP", f"the disposition of {data['receipt_id']}", reply)

    async def post_once(self, path: str, ref: str, body: dict[str, Any]) -> None:
        reply = await self.call("erp", "POST", path, ref, json_body=body, key=f"{path}-{ref}")
        if not reply.ok:
            refused(ref, "ERP", path, reply)

    # -- sites: ERP transfer orders carried out by WMS transfers ----------------------------
    async def create_transfer(self, data: dict[str, Any]) -> None:
        """One WMS transfer per ERP transfer order, at its shipping site. The WMS does not
        dedupe, so once a create has been sent we look it up by `transfer_ref` before sending
        it again (the last attempt may have gone through unanswered)."""
        ref = data["id"]
        if ref in self.transfers:
            return
        if ref in self.transfers_tried:
            self.settled(ref, self.transfer_settles_at.get(ref, 0.0))
            reply = await self.call("wms", "GET", "/transfers", ref, params={"transfer_ref": ref})
            if not reply.ok:
                raise Later(f"{ref}: WMS transfer lookup {reply.status}")
            if found := reply.body["items"]:
                self.transfers[ref] = found[0]["id"]
                return
        body = {
            "transfer_ref": ref,
            "from_site": data["from_site"],
            "to_site": data["to_site"],
            "lines": [{k: x[k] for k in ("line", "sku", "qty")} for x in data["lines"]],
        }
        self.transfers_tried.add(ref)
        try:
            reply = await self.call(
                "wms",
                "POST",
                "/transfers",
                ref,
                json_body=body,
                key=f"wt-{ref}",
                retry_ambiguous=False,
            )
        except Ambiguous as unsure:
            self.transfer_settles_at[ref] = unsure.settles_at
            raise
        if not reply.ok:
            refused(ref, "WMS", "the transfer", reply)
            return
        self.transfers[ref] = reply.body["id"]

    async def post_transfer(self, kind: str, data: dict[str, Any]) -> None:
        """transfer.shipped / transfer.received: the ERP transfer order's goods issue or
        receipt, once per WMS transfer (the ERP takes every receipt it is sent)."""
        ref, moved = data["transfer_ref"], data["transfer_id"]
        step = "issue" if kind == "transfer.shipped" else "receipt"
        if f"{step}-{moved}" in self.transfer_posts:
            return
        body = {
            "reference": moved,
            "lines": [{"line": x["line"], "qty": x["qty"]} for x in data["lines"]],
        }
        key = f"transfer-{step}-{moved}"
        reply = await self.call(
            "erp",
            "POST",
            f"/transfers/{ref}/goods-{step}",
            ref,
            json_body=body,
            key=self.key_for(key),
        )
        if reply.code == "invalid_status" and reply.details.get("status") == "released":
            raise self.not_yet(key, f"{ref}: receipt of {moved} before its goods issue is booked")
        if reply.code == "insufficient_stock":  # the shipping site's books are behind
            raise self.not_yet(key, f"{ref}: transfer goods issue refused for book stock")
        if not reply.ok and reply.code != "already_issued":
            refused(ref, "ERP", f"the transfer goods {step} of {moved}", reply)
        self.transfer_posts.add(f"{step}-{moved}")

    # -- TMS and carrier: their events feeds ----------------------------------------------
    async def tms_event(self, record: Record) -> None:
        if record.kind == "freight.settled":
            data = record.data
            body = {
                "order_id": data["order_ref"],
                "shipment_id": data["shipment_id"],
                "amount": data["amount"],
            }
            reply = await self.call(
                "erp",
                "POST",
                "/freight-accruals",
                data["order_ref"],
                json_body=body,
                key=f"fa-{data['shipment_id']}",
            )
            if not reply.ok:
                refused(data["order_ref"], "ERP", "the accrual", reply)

    async def carrier_event(self, record: Record) -> None:
        """A scan: post it to the ERP after the goods issue, newest scans only."""
        if record.kind != "tracking.updated":
            return
        data = record.data
        if data.get("rma_id"):  # a return parcel: the ERP's returns desk bought its label
            return
        ref = self.parcels.get(data["tracking_number"])
        if ref is None:
            raise Later(f"parcel {data['tracking_number']} not known yet")
        order = self.order(ref)
        async with order.lock:
            if order.cancelled or data["sequence"] <= order.last_scan:
                return
            if not order.issued:
                raise Later(f"{ref}: scan before the goods issue")
            body = {k: data[k] for k in ("tracking_number", "status", "occurred_at")}
            reply = await self.call(
                "erp",
                "POST",
                f"/orders/{quote(ref, safe='')}/tracking",
                ref,
                json_body=body,
                key=f"trk-{data['tracking_number']}-{data['sequence']}",
            )
            if not reply.ok:
                refused(ref, "ERP", "the scan", reply)
            order.last_scan = data["sequence"]
