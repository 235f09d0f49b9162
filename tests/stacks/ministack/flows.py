"""The business choreography: what each vendor event makes the stack do."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from .config import Config
from .vendors import VendorError, Vendors
from .worker import Worker

log = logging.getLogger("ministack.flows")

# A WMS order refused for an item it does not hold (yet) is master data in flight: the order
# waits for the item's PUT (or a timer), and is dead-lettered only after this long waiting.
ITEM_WAIT_MAX_S = 900.0
ITEM_REFUSALS = ("unknown_item", "inactive_item")


@dataclass
class Order:
    ref: str
    corr: str
    lines: list[dict] = field(default_factory=list)  # as released: line, sku, qty, uom
    service_level: str | None = None
    ship_to: dict | None = None
    ship_to_at: datetime | None = None  # when the ERP set the address we hold
    cancelled: bool = False
    fo_id: str | None = None
    packed: dict | None = None
    shipment: dict | None = None
    label: dict | None = None
    label_key: str | None = None
    labelled: bool = False
    issued: bool = False
    last_seq: int = 0  # the latest carrier scan posted to the ERP
    parked: list[dict] = field(default_factory=list)  # scans waiting for the goods issue


def instant(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


class Flows:
    def __init__(self, config: Config, vendors: Vendors, worker: Worker):
        self.bugs = config.bugs
        self.v = vendors
        self.worker = worker
        self.orders: dict[str, Order] = {}
        self.by_tracking: dict[str, str] = {}
        self.posted: set[str] = set()  # accruals, adjustments, receipts already in the ERP
        self.items: dict[str, dict] = {}  # the newest version of each item the ERP announced
        self.synced: dict[str, int] = {}  # the version of each item last PUT to the WMS
        self.case_sizes: dict[str, int] = {}  # each_per_case by SKU (fixed for an item's life)
        self.transfers: dict[str, str] = {}  # ERP transfer order -> the WMS transfer made for it
        self.parked_receipts: dict[str, dict] = {}  # WMS transfer -> its receipt, until issued

    def order(self, ref: str, corr: str | None = None) -> Order:
        if ref not in self.orders:
            self.orders[ref] = Order(ref, corr or f"ms-{ref}")
        return self.orders[ref]

    # -- intake: one job per event, queued behind the other jobs of the same order ----------

    def dispatch(self, event: dict, corr: str | None) -> None:
        kind, data = event["type"], event["data"]
        try:
            if kind == "order.released":
                key = self.order(data["id"], corr).ref
            elif kind in ("order.cancelled", "order.updated"):
                key = data["order_id"]
            elif kind in ("order.picked", "order.packed", "order.shipped", "freight.settled"):
                key = data["order_ref"]
            elif kind == "tracking.updated" and data.get("rma_id"):
                log.info("a return parcel's scan (%s): not ours to post", data["rma_id"])
                return
            elif kind == "tracking.updated":
                key = self.by_tracking.get(data["tracking_number"], data["tracking_number"])
            elif kind == "inventory.adjusted":
                key = data["adjustment_id"]
            elif kind in ("receipt.confirmed", "return.received"):
                key = data["receipt_id"]
            elif kind in ("item.created", "item.changed"):
                key = f"item:{data['sku']}"  # one queue per SKU: its versions one at a time
                self.take_item(data)
            elif kind == "transfer.released":
                key = data["id"]
            elif kind in ("transfer.shipped", "transfer.received"):
                key = data["transfer_id"]  # issue and receipt of one truck, one after the other
            else:
                log.info("ignoring %r %r", kind, event["id"])
                return
            handler = getattr(self, kind.replace(".", "_"))
        except (KeyError, TypeError, ValueError) as exc:
            self.worker.bury(kind, event["id"], f"unreadable data: {exc!r}")
            return
        self.worker.submit(kind, str(key), lambda: handler(str(key), data, corr))

    # -- ERP events --------------------------------------------------------------------------

    def take_address(self, o: Order, ship_to: dict, at: Any) -> bool:
        when = instant(at)
        if o.ship_to is not None and (when is None or (o.ship_to_at and when <= o.ship_to_at)):
            return False
        if "home-country" in self.bugs:  # BUG home-country: built for a shop in Germany
            ship_to = {**ship_to, "country": "DE"}
        o.ship_to, o.ship_to_at = ship_to, when
        return True

    async def order_released(self, ref: str, d: dict, corr: str | None) -> None:
        o = self.order(ref, corr)
        o.lines = [
            {"line": x["line"], "sku": x["sku"], "qty": x["qty"], "uom": x.get("uom") or "EA"}
            for x in d["lines"]
        ]
        if "lines-by-sku" in self.bugs:  # BUG lines-by-sku: one line per SKU, the last wins
            o.lines = list({x["sku"]: x for x in o.lines}.values())
        o.service_level = d["service_level"]
        self.take_address(o, d["ship_to"], d.get("updated_at") or d.get("released_at"))
        if o.cancelled or o.fo_id:
            return  # cancelled first, or a re-sent release: one WMS order per ERP order
        body = {
            "order_ref": ref,
            "ship_to": o.ship_to,
            "service_level": o.service_level,
            "lines": [await self.in_eaches(x, o.corr) for x in o.lines],  # the WMS picks eaches
        }
        if "wms-standard" in self.bugs:  # BUG wms-standard: no express in the WMS's service map
            body["service_level"] = "standard"
        if "renumbered" in self.bugs:  # BUG renumbered: the WMS lines numbered by position
            body["lines"] = [{**x, "line": n} for n, x in enumerate(body["lines"], 1)]
        if d.get("site"):
            body["site"] = d["site"]  # the site the ERP assigned: else the WMS's default
        waited, pause = 0.0, 1.0
        while True:
            puts = dict(self.synced)
            try:
                fo = await self.v.call(
                    "wms",
                    "POST",
                    "/fulfilment-orders",
                    corr=o.corr,
                    json=body,
                    key=f"fo-{ref}",
                    recover=lambda: self.find_fulfilment_order(o),
                )
                break
            except VendorError as exc:
                if exc.code not in ITEM_REFUSALS or waited >= ITEM_WAIT_MAX_S:
                    raise
                sku = exc.details.get("sku")
                if sku is not None and self.synced.get(sku) != puts.get(sku):
                    continue  # the item reached the WMS while we asked: ask again at once
                log.info("%s: WMS %s %s, waiting for its item [%s]", ref, exc.code, sku, o.corr)
                started = time.monotonic()
                await self.worker.hold(f"item:{sku}", pause)
                waited += time.monotonic() - started
                pause = min(30.0, pause * 2)
        o.fo_id = fo["id"]

    async def in_eaches(self, line: dict, corr: str) -> dict:
        qty = line["qty"]
        if line["uom"] == "CS":
            qty *= await self.case_size(line["sku"], corr)
        return {"line": line["line"], "sku": line["sku"], "qty": qty}

    async def case_size(self, sku: str, corr: str) -> int:
        if sku in self.items:
            return self.items[sku]["each_per_case"]
        if sku not in self.case_sizes:  # a catalogue item: the ERP's item master says
            item = await self.v.call("erp", "GET", self.item_path(sku), corr=corr)
            self.case_sizes[sku] = int(item["each_per_case"])
        return self.case_sizes[sku]

    def order_segment(self, ref: str) -> str:
        """An ERP order number may hold "/" (SO/2026/0001, a migrated order): one segment."""
        if "raw-order-path" in self.bugs:  # BUG raw-order-path: the number as it is
            return ref
        return quote(ref, safe="")

    def item_path(self, sku: str) -> str:
        """A SKU may hold any character (``SKU-00001/XL``): one path segment, encoded."""
        if "raw-sku-path" in self.bugs:  # BUG raw-sku-path: the SKU put in the path as it is
            return f"/items/{sku}"
        return f"/items/{quote(sku, safe='')}"

    # -- item master -------------------------------------------------------------------------

    def take_item(self, d: dict) -> None:
        """Keep the newest version announced; events come late, twice and out of order."""
        known = self.items.get(d["sku"])
        if known is None or int(d["version"]) > int(known["version"]):
            self.items[d["sku"]] = d

    async def item_created(self, key: str, d: dict, corr: str | None) -> None:
        await self.sync_item(d["sku"], corr)

    async def item_changed(self, key: str, d: dict, corr: str | None) -> None:
        await self.sync_item(d["sku"], corr)

    async def sync_item(self, sku: str, corr: str | None) -> None:
        item = self.items[sku]  # the newest known: an older event carries the newer item
        version = int(item["version"])
        if self.synced.get(sku, 0) >= version:
            return  # put already (a duplicate, or an older version arriving late)
        body = {name: item[name] for name in ("description", "weight_kg", "active")}
        body["each_per_case"] = item["each_per_case"]
        corr = corr or f"ms-item-{sku}-v{version}"
        await self.v.call("wms", "PUT", self.item_path(sku), corr=corr, json=body)
        self.synced[sku] = max(version, self.synced.get(sku, 0))
        self.worker.wake(f"item:{sku}")  # orders the WMS refused for it go on now
        if "obsolete-item-letter" not in self.bugs:  # BUG obsolete-item-letter when skipped
            # an older version the WMS refused is moot now: replayed, it would put it back
            for kind in ("item.created", "item.changed"):
                self.worker.resolve(f"item:{sku}", kind)

    async def find_fulfilment_order(self, o: Order) -> dict | None:
        found = await self.v.call(
            "wms", "GET", "/fulfilment-orders", corr=o.corr, params={"order_ref": o.ref}, once=True
        )
        live = [fo for fo in found.get("items", []) if fo.get("status") != "cancelled"]
        return live[0] if live else None

    async def order_cancelled(self, ref: str, d: dict, corr: str | None) -> None:
        if "no-cancel" in self.bugs:
            return  # BUG no-cancel
        o = self.order(ref, corr)
        o.cancelled = True
        for system, path in (
            ("wms", o.fo_id and f"/fulfilment-orders/{o.fo_id}/cancel"),
            ("tms", o.shipment and f"/shipments/{o.shipment['id']}/cancel"),
        ):
            if not path:
                continue
            try:
                await self.v.call(system, "POST", path, corr=o.corr)
            except VendorError as exc:
                if exc.status != 409:
                    raise
                log.info("%s: %s [%s]", ref, exc, o.corr)
                if system == "wms" and exc.details.get("status") != "cancelled":
                    return  # shipped already: leave its shipment and label alone
        if o.label:
            await self.void_label(o)

    async def order_updated(self, ref: str, d: dict, corr: str | None) -> None:
        o = self.order(ref, corr)
        if not self.take_address(o, d["ship_to"], d.get("updated_at")):
            return
        if o.cancelled:
            return
        if o.fo_id and not o.labelled:
            try:
                await self.v.call(
                    "wms",
                    "PATCH",
                    f"/fulfilment-orders/{o.fo_id}",
                    corr=o.corr,
                    json={"ship_to": o.ship_to},
                )
            except VendorError as exc:
                if exc.status != 409:
                    raise
                log.info("%s: address not carried to the WMS: %s [%s]", ref, exc, o.corr)
        if o.packed and o.shipment and not o.labelled:
            await self.buy_label(o)  # the carrier refused the old address: try the new one

    # -- WMS events --------------------------------------------------------------------------

    async def order_picked(self, ref: str, d: dict, corr: str | None) -> None:
        o = self.order(ref, corr)
        if o.cancelled or o.issued or any(x["picked_qty"] > 0 for x in d["lines"]):
            return
        await self.goods_issue(o, {"lines": self.issued_lines(o, [])})  # closed short: backorder

    async def order_packed(self, ref: str, d: dict, corr: str | None) -> None:
        o = self.order(ref, corr)
        if o.cancelled or o.labelled:
            return
        o.packed = d
        o.fo_id = o.fo_id or d["fulfilment_order_id"]
        if o.shipment is None:
            o.shipment = await self.plan_shipment(o, o.service_level or d["service_level"])
        await self.buy_label(o)

    async def plan_shipment(self, o: Order, level: str) -> dict:
        body = {
            "order_ref": o.ref,
            "fulfilment_order_id": o.fo_id,
            "ship_to": o.ship_to or o.packed["ship_to"],
            "service_level": level,
            "packages": [{"weight_kg": p["weight_kg"]} for p in o.packed["packages"]],
        }
        if "whole-kilos" in self.bugs:  # BUG whole-kilos: weights rounded to the kilogram
            body["packages"] = [{"weight_kg": round(p["weight_kg"])} for p in body["packages"]]
        try:
            return await self.v.call(
                "tms", "POST", "/shipments", corr=o.corr, json=body, key=f"sh-{o.fo_id}-{level}"
            )
        except VendorError as exc:
            declined = exc.code == "tender_rejected" and level == "express"
            if declined and exc.details.get("reason") == "capacity_exhausted":
                # the business rule: ship today, by ground, rather than not at all
                log.info("%s: express declined, planning standard [%s]", o.ref, o.corr)
                return await self.plan_shipment(o, "standard")
            raise

    async def buy_label(self, o: Order) -> None:
        service = o.shipment["service"]
        if "label-service" in self.bugs:
            service = "express"  # BUG label-service
        body = {
            "shipment_ref": o.shipment["id"],
            "service": service,
            "ship_to": o.ship_to or o.packed["ship_to"],
            "packages": [
                {"weight_kg": p["weight_kg"], "contents": p["contents"]}
                for p in o.packed["packages"]
            ],
        }
        if "first-carton" in self.bugs:  # BUG first-carton: the label for the first carton only
            body["packages"] = body["packages"][:1]
        # same body, same key: a retry after a lost answer gets the label already bought;
        # a new address is a new purchase
        key = f"lb-{o.shipment['id']}-{digest(body)}"
        if o.label and o.label_key != key:  # bought for an address that has changed since
            await self.void_label(o)
        label = await self.v.call("carrier", "POST", "/labels", corr=o.corr, json=body, key=key)
        o.label, o.label_key = label, key
        self.by_tracking[label["tracking_number"]] = o.ref
        attach = {
            "tracking_number": label["tracking_number"],
            "carrier": o.shipment.get("carrier", "parcelco"),
            "label_id": label["id"],
        }
        if "label-shipment-ref" in self.bugs:  # BUG label-shipment-ref: the wrong id field
            attach["label_id"] = label["shipment_ref"]
        path = f"/fulfilment-orders/{o.fo_id}/label"
        await self.v.call("wms", "POST", path, corr=o.corr, json=attach)
        o.labelled = True
        self.worker.resolve(o.ref, "order.packed")

    async def void_label(self, o: Order) -> None:
        try:
            await self.v.call("carrier", "POST", f"/labels/{o.label['id']}/void", corr=o.corr)
        except VendorError as exc:
            if exc.status != 409:
                raise
            log.info("%s: label %s not voided: %s [%s]", o.ref, o.label["id"], exc, o.corr)
        o.label = o.label_key = None

    async def order_shipped(self, ref: str, d: dict, corr: str | None) -> None:
        o = self.order(ref, corr)
        if not o.issued:
            body = {
                "lines": self.issued_lines(o, d["lines"]),
                "tracking_number": d.get("tracking_number"),
                "carrier": d.get("carrier"),
                "shipment_id": o.shipment["id"] if o.shipment else None,
            }
            if "shipment-as-fo" in self.bugs:  # BUG shipment-as-fo: the WMS's order as shipment
                body["shipment_id"] = o.fo_id
            await self.goods_issue(o, body)
        await self.flush_scans(o)

    def issued_lines(self, o: Order, shipped: list[dict]) -> list[dict]:
        if "ordered-qty" in self.bugs:
            return [  # BUG ordered-qty
                {"line": x["line"], "qty": x["qty"], "uom": x["uom"]} for x in o.lines
            ]
        return [{"line": x["line"], "qty": x["qty"], "uom": "EA"} for x in shipped]  # picked eaches

    async def goods_issue(self, o: Order, body: dict) -> None:
        path = f"/orders/{self.order_segment(o.ref)}/goods-issue"
        try:
            await self.v.call("erp", "POST", path, corr=o.corr, json=body, key=f"gi-{o.ref}")
        except VendorError as exc:
            if exc.code != "already_issued":
                raise
        o.issued = True

    # -- carrier and TMS events --------------------------------------------------------------

    async def tracking_updated(self, key: str, d: dict, corr: str | None) -> None:
        ref = self.by_tracking.get(d["tracking_number"])
        if ref is None:
            raise LookupError(f"no order known for tracking number {d['tracking_number']}")
        o = self.order(ref)
        if d["sequence"] <= o.last_seq:
            log.info("%s: scan %s is older than one posted, dropped", ref, d["sequence"])
            return
        o.parked.append(d)
        if o.issued:  # tracking before the goods issue would stop the order moving on
            await self.flush_scans(o)

    async def flush_scans(self, o: Order) -> None:
        o.parked.sort(key=lambda scan: scan["sequence"])
        while o.parked:
            scan = o.parked[0]
            if scan["sequence"] > o.last_seq:
                at = scan["occurred_at"]
                if "scan-time" in self.bugs:
                    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # BUG scan-time
                if "offset-dropped" in self.bugs:
                    at = at[:19] + "Z"  # BUG offset-dropped: the depot's local time taken as UTC
                if "seconds-only" in self.bugs:  # BUG seconds-only: normalised by a fixed format
                    moment = datetime.strptime(at, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
                    at = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
                body = {"tracking_number": scan["tracking_number"], "status": scan["status"]}
                if "tracking-label-id" in self.bugs and o.label:  # BUG tracking-label-id
                    body["tracking_number"] = o.label["id"]
                body["occurred_at"] = at
                key = f"tr-{scan['tracking_number']}-{scan['sequence']}"
                path = f"/orders/{self.order_segment(o.ref)}/tracking"
                await self.v.call("erp", "POST", path, corr=o.corr, json=body, key=key)
                o.last_seq = scan["sequence"]
            o.parked.pop(0)

    async def freight_settled(self, ref: str, d: dict, corr: str | None) -> None:
        body = {"order_id": ref, "shipment_id": d["shipment_id"], "amount": d["amount"]}
        if "euro-only" in self.bugs:  # BUG euro-only: the books are in EUR, so is every bill
            body["amount"] = {**d["amount"], "currency": "EUR"}
        corr = self.order(ref, corr).corr
        await self.post_once("/freight-accruals", f"fa-{d['shipment_id']}", body, corr)

    # -- stock --------------------------------------------------------------------------------

    def at_site(self, body: dict, d: dict) -> dict:
        """A stock posting is booked at the site whose shelf or dock it was (README, sites)."""
        if "siteless-stock" in self.bugs:
            return body  # BUG siteless-stock
        if d.get("site"):
            body["site"] = d["site"]
        return body

    async def inventory_adjusted(self, key: str, d: dict, corr: str | None) -> None:
        body = {"sku": d["sku"], "delta": d["delta"], "reason": d["reason"], "reference": key}
        if "losses-only" in self.bugs:  # BUG losses-only: every adjustment a write-off
            body["delta"] = -abs(d["delta"])
        if "reason-default" in self.bugs:  # BUG reason-default: a map that knows only damage
            body["reason"] = {"damage": "damage"}.get(d["reason"], "cycle_count")
        body = self.at_site(body, d)
        await self.post_once("/inventory/adjustments", f"ia-{key}", body, corr or f"ms-{key}")

    async def receipt_confirmed(self, key: str, d: dict, corr: str | None) -> None:
        lines = [{"sku": x["sku"], "qty": x["qty"]} for x in d["lines"]]
        if "first-receipt-line" in self.bugs:  # BUG first-receipt-line: one SKU per receipt
            lines = lines[:1]
        body = self.at_site({"reference": key, "lines": lines}, d)
        if "siteless-receipts" in self.bugs:  # BUG siteless-receipts: as if only DC1 bought
            body.pop("site", None)
        await self.post_once("/goods-receipts", f"gr-{key}", body, corr or f"ms-{key}")

    async def return_received(self, key: str, d: dict, corr: str | None) -> None:
        credited: dict[int, int] = {}
        restocked: dict[int, int] = {}
        for x in d["lines"]:  # one entry per order line and condition
            credited[x["line"]] = credited.get(x["line"], 0) + x["qty"]
            if x["condition"] == "restock":
                restocked[x["line"]] = restocked.get(x["line"], 0) + x["qty"]
        lines = [
            {"line": n, "qty": qty, "restock_qty": restocked.get(n, 0)}
            for n, qty in sorted(credited.items())
        ]
        path = f"/returns/{d['rma_id']}/disposition"
        body = {"receipt_id": key, "lines": lines}
        try:
            await self.post_once(path, f"rd-{key}", body, self.order(d["order_ref"], corr).corr)
        except VendorError as exc:
            if exc.code != "already_disposed":
                raise

    # -- transfers between sites ------------------------------------------------------------

    async def transfer_released(self, ref: str, d: dict, corr: str | None) -> None:
        if ref in self.transfers:
            return  # a re-sent release: one WMS transfer per ERP transfer order
        body = {
            "transfer_ref": ref,
            "from_site": d["from_site"],
            "to_site": d["to_site"],
            "lines": [{"line": x["line"], "sku": x["sku"], "qty": x["qty"]} for x in d["lines"]],
        }
        made = await self.v.call(
            "wms",
            "POST",
            "/transfers",
            corr=corr or f"ms-{ref}",
            json=body,
            key=f"wt-{ref}",
            recover=lambda: self.find_transfer(ref, corr or f"ms-{ref}"),
        )
        self.transfers[ref] = made["id"]

    async def find_transfer(self, ref: str, corr: str) -> dict | None:
        found = await self.v.call(
            "wms", "GET", "/transfers", corr=corr, params={"transfer_ref": ref}, once=True
        )
        items = found.get("items", [])
        return items[0] if items else None

    def moved(self, wt: str, d: dict) -> dict:
        return {
            "reference": wt,
            "lines": [{"line": x["line"], "qty": x["qty"]} for x in d["lines"]],
        }

    async def transfer_shipped(self, wt: str, d: dict, corr: str | None) -> None:
        ref = d["transfer_ref"]
        path = f"/transfers/{ref}/goods-issue"
        try:
            await self.post_once(path, f"ti-{wt}", self.moved(wt, d), corr or f"ms-{ref}")
        except VendorError as exc:
            if exc.code != "already_issued":
                raise
            self.posted.add(f"ti-{wt}")
        parked = self.parked_receipts.pop(wt, None)
        if parked is not None:  # the truck arrived before we booked it leaving
            await self.transfer_received(wt, parked, corr)

    async def transfer_received(self, wt: str, d: dict, corr: str | None) -> None:
        if f"ti-{wt}" not in self.posted:
            self.parked_receipts[wt] = d  # the ERP takes no receipt before the issue
            return
        ref = d["transfer_ref"]
        path = f"/transfers/{ref}/goods-receipt"
        # once per WMS transfer, whatever event id re-sent it: the ERP takes every receipt
        await self.post_once(path, f"tr-{wt}", self.moved(wt, d), corr or f"ms-{ref}")

    async def post_once(self, path: str, key: str, body: dict, corr: str) -> None:
        if key in self.posted:
            return
        await self.v.call("erp", "POST", path, corr=corr, json=body, key=key)
        self.posted.add(key)
