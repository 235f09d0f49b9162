"""Business documents as the lineage and causality tables see them: flat records with a key.

Each simulator keeps its documents in its own shape (an ERP order with its lines, a WMS order
with its status history, a carrier label with its scans). This module is the one place that
knows those shapes: it turns a ``SystemsView`` into named lists of ``Record`` (a business key,
the fields a rule may compare, and the instant the document came to be), so that the tables in
``lineage_table.py`` can say "these fields must agree" as data, without code per rule.

A record's ``order`` is the ERP order it concerns (findings are filed under it, so the report
shows the order's journal); ``at`` is when the system that owns the document wrote it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from harness.oracles.view import SystemsView, items


@dataclass(slots=True)
class Record:
    """One document as the lineage tables compare it. Not frozen, though nothing assigns to
    one: a frozen dataclass is made through ``object.__setattr__`` per field, 1.0 against
    0.4 us, and judging a peak day makes hundreds of thousands."""

    key: tuple[Any, ...]
    values: dict[str, Any]
    order: str | None = None  # the ERP order it concerns, when there is one
    at: str | None = None  # ISO-8601 UTC, when the owning system wrote it
    label: str = ""  # how a finding names it ("GI-000004", "FO-000012 line 2")
    extra: dict[str, Any] = field(default_factory=dict)  # context for messages


Extractor = Callable[[SystemsView], Iterator[Record]]
DOCUMENTS: dict[str, Extractor] = {}
DESCRIPTIONS: dict[str, str] = {}


def document(name: str, description: str) -> Callable[[Extractor], Extractor]:
    def register(extract: Extractor) -> Extractor:
        DOCUMENTS[name] = extract
        DESCRIPTIONS[name] = description
        return extract

    return register


# How many reads of each document the lineage and causality tables make when all of them are
# judged (``lineage.register`` counts them): a document is kept for the next read, and let go
# after the last, so judging a 10,000-order day never holds every kind at once.
READS: Counter[str] = Counter()


def records(view: SystemsView, name: str) -> tuple[Record, ...]:
    """The view's documents of this kind, derived once per view and let go after the tables'
    last read: a view is built once, at the end of the day (its indexes are too), and
    several rows read the same documents. A read the tables did not count derives anew."""
    kept = view.documents.get(name)
    if kept is None:
        kept = view.documents[name] = [tuple(DOCUMENTS[name](view)), READS[name]]
    made, kept[1] = kept[0], kept[1] - 1
    if kept[1] <= 0:
        del view.documents[name]
    return made


def _weights(packages: Any) -> list[Any]:
    """Each package's weight in kg, as written, in package order."""
    return [p.get("weight_kg") for p in packages or [] if isinstance(p, dict)]


def _when(text: Any) -> float:
    """An instant to order by: times in different offsets compare as text in the wrong order
    (``15:00+01:00`` is before ``14:30Z``); one that is not an instant sorts first."""
    moment = instant(text)
    return -math.inf if moment is None else moment


def instant(text: Any) -> float | None:
    """An ISO-8601 instant as epoch seconds (``Z`` or an offset), None when it is not one:
    a time without a zone is not an instant."""
    if not isinstance(text, str):
        return None
    return _parsed(text)


@lru_cache(maxsize=1 << 16)
def _parsed(text: str) -> float | None:
    """The same instants are read by several documents (a scan's time by its ERP posting,
    its carrier event and the causality rows): each text is parsed once."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _qty_by_sku(lines: list[dict[str, Any]], field_name: str) -> dict[str, int]:
    counted: Counter[str] = Counter()
    for line in lines:
        if line.get(field_name):
            counted[line["sku"]] += line[field_name]
    return dict(counted)


def _transfer_values(transfer: dict[str, Any]) -> dict[str, Any]:
    """What must agree between an ERP transfer order and the WMS transfer carrying it out."""
    return {
        "from_site": transfer["from_site"],
        "to_site": transfer["to_site"],
        "qty_by_sku": _qty_by_sku(transfer["lines"], "qty"),
    }


def _first(history: list[dict[str, str]], status: str) -> str | None:
    times = [h["at"] for h in history if h["status"] == status]
    return min(times) if times else None


def _live_fulfilment_orders(view: SystemsView) -> Iterator[dict[str, Any]]:
    for fo in view.wms_orders.values():
        if fo["status"] != "cancelled":
            yield fo


def _paid_labels(view: SystemsView) -> Iterator[tuple[str, dict[str, Any]]]:
    for order, labels in sorted(view.labels_by_order().items()):
        for label in labels:
            if label["status"] != "voided":
                yield order, label


# -- ERP ------------------------------------------------------------------------------------
@document("erp.order", "a released ERP order that was not cancelled: ship-to, service level")
def erp_orders(view: SystemsView) -> Iterator[Record]:
    for order in view.released_orders():
        if order["status"] == "cancelled":
            continue
        yield Record(
            (order["id"],),
            {"ship_to": order["ship_to"], "service_level": order["service_level"]},
            order["id"],
            order.get("released_at"),
            order["id"],
        )


@document(
    "erp.order_line",
    "a line of a released ERP order that was not cancelled: qty in eaches (a case line "
    "converted with the ERP's item master)",
)
def erp_order_lines(view: SystemsView) -> Iterator[Record]:
    for order in view.released_orders():
        if order["status"] == "cancelled":
            continue
        for line in order["lines"]:
            yield Record(
                (order["id"], line["line"]),
                {"sku": line["sku"], "qty": view.ordered_eaches(line)},
                order["id"],
                order.get("released_at"),
                f"{order['id']} line {line['line']}",
            )


@document("erp.release", "an ERP order's release to fulfilment")
def erp_releases(view: SystemsView) -> Iterator[Record]:
    for order in view.released_orders():
        yield Record((order["id"],), {}, order["id"], order["released_at"], order["id"])


@document(
    "erp.goods_issue",
    "an ERP goods issue: qty issued per SKU; the shipment, carrier and tracking number it names",
)
def erp_goods_issues(view: SystemsView) -> Iterator[Record]:
    for order, issues in view.goods_issues_by_order.items():
        for gi in issues:
            yield Record(
                (order,),
                {
                    "qty_by_sku": _qty_by_sku(gi["lines"], "qty"),
                    "shipment_id": gi.get("shipment_id"),
                    "carrier": gi.get("carrier"),
                },
                view.order_of(order) or order,
                gi["posted_at"],
                gi["id"],
            )


@document("erp.transfer", "an ERP transfer order: from and to which site, qty per SKU")
def erp_transfers(view: SystemsView) -> Iterator[Record]:
    for transfer in items((view.snapshots.get("erp") or {}).get("transfers")):
        yield Record(
            (transfer["id"],),
            _transfer_values(transfer),
            None,
            transfer.get("released_at"),
            transfer["id"],
        )


@document("erp.backorder", "an ERP backorder raised for an order")
def erp_backorders(view: SystemsView) -> Iterator[Record]:
    for order, backorders in view.backorders_by_order.items():
        for bo in backorders:
            yield Record((order,), {}, order, bo["created_at"], bo["id"])


@document("erp.tracking", "a tracking milestone posted to an ERP order, with its tracking number")
def erp_tracking(view: SystemsView) -> Iterator[Record]:
    for order in view.erp_orders.values():
        for n, posting in enumerate(order.get("tracking_history") or [], start=1):
            yield Record(
                (order["id"], posting["status"], instant(posting["occurred_at"])),
                {
                    "status": posting["status"],
                    "occurred_at": posting["occurred_at"],
                    "tracking_number": posting.get("tracking_number"),
                },
                order["id"],
                posting.get("posted_at"),
                f"{order['id']} tracking posting #{n}",
                {"occurred_at": posting["occurred_at"]},
            )


@document("erp.latest_tracking", "the latest milestone (by scan time) an ERP order holds")
def erp_latest_tracking(view: SystemsView) -> Iterator[Record]:
    for order in view.erp_orders.values():
        history = order.get("tracking_history") or []
        if not history:
            continue
        latest = max(history, key=lambda p: _when(p["occurred_at"]))
        yield Record(
            (order["id"],),
            {"status": latest["status"], "occurred_at": latest["occurred_at"]},
            order["id"],
            latest.get("posted_at"),
            order["id"],
        )


@document("erp.accrual", "an ERP freight accrual for a TMS shipment")
def erp_accruals(view: SystemsView) -> Iterator[Record]:
    for shipment, accruals in view.accruals_by_shipment.items():
        for accrual in accruals:
            yield Record(
                (shipment,),
                {"amount": accrual["amount"]},
                accrual.get("order_id") or view.order_of(shipment),
                accrual["posted_at"],
                accrual["id"],
            )


@document(
    "erp.adjustment",
    "an ERP inventory adjustment, by the WMS adjustment it posts: SKU, delta, reason",
)
def erp_adjustments(view: SystemsView) -> Iterator[Record]:
    for adjustment in items(view.snapshots["erp"].get("adjustments")):
        yield Record(
            (adjustment.get("reference"),),
            {
                "sku": adjustment["sku"],
                "delta": adjustment["delta"],
                "reason": adjustment["reason"],
            },
            None,
            adjustment["posted_at"],
            adjustment["id"],
        )


@document("erp.receipt", "an ERP goods receipt, by the WMS receipt it posts: qty per SKU")
def erp_receipts(view: SystemsView) -> Iterator[Record]:
    for receipt in items(view.snapshots["erp"].get("receipts")):
        yield Record(
            (receipt["reference"],),
            {"qty_by_sku": _qty_by_sku(receipt["lines"], "qty")},
            None,
            receipt["posted_at"],
            receipt["id"],
        )


# -- WMS ------------------------------------------------------------------------------------
@document("wms.order", "a WMS fulfilment order that was not cancelled: id, ship-to, service level")
def wms_orders(view: SystemsView) -> Iterator[Record]:
    for fo in _live_fulfilment_orders(view):
        yield Record(
            (fo["order_ref"],),
            {"id": fo["id"], "ship_to": fo["ship_to"], "service_level": fo.get("service_level")},
            view.order_of(fo["order_ref"]),
            fo["created_at"],
            fo["id"],
        )


@document("wms.order_line", "a line of a WMS fulfilment order that was not cancelled")
def wms_order_lines(view: SystemsView) -> Iterator[Record]:
    for fo in _live_fulfilment_orders(view):
        for line in fo["lines"]:
            yield Record(
                (fo["order_ref"], line["line"]),
                {"sku": line["sku"], "qty": line["qty"]},
                view.order_of(fo["order_ref"]),
                fo["created_at"],
                f"{fo['order_ref']} line {line['line']} ({fo['id']})",
            )


@document(
    "wms.label", "the label attached to a WMS order that was not cancelled: its id, tracking number"
)
def wms_labels(view: SystemsView) -> Iterator[Record]:
    for fo in _live_fulfilment_orders(view):
        label = fo.get("label")
        if not label:
            continue
        yield Record(
            (fo["order_ref"],),
            {"label_id": label.get("label_id"), "tracking_number": label.get("tracking_number")},
            view.order_of(fo["order_ref"]),
            _first(fo["status_history"], "labelled"),
            fo["id"],
        )


@document(
    "wms.shipment", "a shipped WMS order: qty picked per SKU, package weights, when it shipped"
)
def wms_shipments(view: SystemsView) -> Iterator[Record]:
    for fo in view.shipped_fulfilment_orders():
        yield Record(
            (fo["order_ref"],),
            {
                "qty_by_sku": _qty_by_sku(fo["lines"], "picked_qty"),
                "weights": _weights(fo.get("packages")),
            },
            view.order_of(fo["order_ref"]),
            _first(fo["status_history"], "shipped"),
            fo["id"],
            {"tracking_number": (fo.get("label") or {}).get("tracking_number")},
        )


@document("wms.closed", "a WMS order that shipped or was closed short: when it first did")
def wms_closed(view: SystemsView) -> Iterator[Record]:
    for fo in view.wms_orders.values():
        closed = ("shipped", "short_closed")
        times = [h["at"] for h in fo["status_history"] if h["status"] in closed]
        if times:
            order = view.order_of(fo["order_ref"])
            yield Record((fo["order_ref"],), {}, order, min(times), fo["id"])


@document(
    "wms.short_pick",
    "a WMS order with a short-picked line: when the pick was confirmed (or closed short)",
)
def wms_short_picks(view: SystemsView) -> Iterator[Record]:
    for fo in view.wms_orders.values():
        if any(line["short_qty"] for line in fo["lines"]):
            confirmed = [
                h["at"] for h in fo["status_history"] if h["status"] in ("picked", "short_closed")
            ]
            order = view.order_of(fo["order_ref"])
            yield Record((fo["order_ref"],), {}, order, min(confirmed, default=None), fo["id"])


@document(
    "wms.transfer",
    "a WMS transfer, by the ERP transfer order it carries out: sites, qty per SKU to move",
)
def wms_transfers(view: SystemsView) -> Iterator[Record]:
    for transfer in items((view.snapshots.get("wms") or {}).get("transfers")):
        yield Record(
            (transfer["transfer_ref"],),
            _transfer_values(transfer),
            None,
            transfer.get("created_at"),
            f"{transfer['id']} ({transfer['transfer_ref']})",
        )


@document("wms.adjustment", "a WMS inventory adjustment (cycle count, damage): SKU, delta, reason")
def wms_adjustments(view: SystemsView) -> Iterator[Record]:
    for adjustment in items(view.snapshots["wms"].get("adjustments")):
        yield Record(
            (adjustment["adjustment_id"],),
            {
                "sku": adjustment["sku"],
                "delta": adjustment["delta"],
                "reason": adjustment["reason"],
            },
            None,
            adjustment.get("at"),
            adjustment["adjustment_id"],
        )


@document("wms.receipt", "a WMS receipt at the dock: qty received per SKU")
def wms_receipts(view: SystemsView) -> Iterator[Record]:
    for receipt in items(view.snapshots["wms"].get("receipts")):
        yield Record(
            (receipt["receipt_id"],),
            {"qty_by_sku": _qty_by_sku(receipt["lines"], "qty")},
            None,
            receipt.get("at"),
            receipt["receipt_id"],
        )


# -- TMS ------------------------------------------------------------------------------------
@document(
    "tms.shipment",
    "a TMS shipment that was not cancelled: id, carrier, the WMS order it carries, service "
    "level, service, weights",
)
def tms_shipments(view: SystemsView) -> Iterator[Record]:
    for shipment in view.tms_shipments.values():
        if shipment["status"] == "cancelled":
            continue
        yield Record(
            (shipment["order_ref"],),
            {
                "id": shipment["id"],
                "carrier": shipment.get("carrier"),
                "fulfilment_order_id": shipment.get("fulfilment_order_id"),
                "service_level": shipment["service_level"],
                "service": shipment["service"],
                "weights": _weights(shipment.get("packages")),
            },
            view.order_of(shipment["order_ref"]),
            shipment["created_at"],
            shipment["id"],
        )


@document("tms.planned_service", "the service a TMS shipment was planned with, by shipment")
def tms_planned_services(view: SystemsView) -> Iterator[Record]:
    for shipment in view.tms_shipments.values():
        if shipment["status"] == "cancelled":
            continue
        yield Record(
            (shipment["id"],),
            {"service": shipment["service"]},
            view.order_of(shipment["order_ref"]),
            shipment["created_at"],
            shipment["id"],
        )


@document("tms.settlement", "a settled TMS shipment: the freight amount billed")
def tms_settlements(view: SystemsView) -> Iterator[Record]:
    for shipment in view.tms_shipments.values():
        if shipment["status"] != "settled":
            continue
        yield Record(
            (shipment["id"],),
            {"amount": shipment["rate"]},
            view.order_of(shipment["order_ref"]),
            shipment.get("settled_at"),
            f"{shipment['id']} ({shipment['order_ref']})",
        )


# -- carrier --------------------------------------------------------------------------------
@document("carrier.label", "a paid (not voided) label, by order: id, tracking number, ship-to")
def carrier_labels(view: SystemsView) -> Iterator[Record]:
    for order, label in _paid_labels(view):
        yield Record(
            (order,),
            {
                "id": label["id"],
                "tracking_number": label["tracking_number"],
                "ship_to": label["ship_to"],
            },
            order,
            label.get("created_at"),
            label["id"],
        )


@document("carrier.label_service", "a paid label, by the TMS shipment it was bought for")
def carrier_label_services(view: SystemsView) -> Iterator[Record]:
    for order, label in _paid_labels(view):
        yield Record(
            (label["shipment_ref"],),
            {"service": label["service"]},
            order,
            label.get("created_at"),
            label["id"],
        )


@document("carrier.parcel", "what the carrier's paid label says is in the parcel: per SKU, weights")
def carrier_parcels(view: SystemsView) -> Iterator[Record]:
    for order, label in _paid_labels(view):
        contents: Counter[str] = Counter()
        for package in label.get("packages", []):
            for item in package.get("contents", []):
                contents[item["sku"]] += item["qty"]
        yield Record(
            (order,),
            {"qty_by_sku": dict(contents), "weights": _weights(label.get("packages"))},
            order,
            label.get("created_at"),
            label["id"],
        )


@document(
    "carrier.scan",
    "a carrier scan of a paid label: status, the instant it happened, the label's tracking number",
)
def carrier_scans(view: SystemsView) -> Iterator[Record]:
    for order, label in _paid_labels(view):
        for event in label.get("events", []):
            yield Record(
                (order, event["status"], instant(event["occurred_at"])),
                {
                    "status": event["status"],
                    "occurred_at": event["occurred_at"],
                    "tracking_number": label["tracking_number"],
                },
                order,
                event["occurred_at"],
                f"{label['tracking_number']} scan #{event.get('sequence', '?')}",
            )


@document("carrier.latest_scan", "the latest scan of an order's paid label")
def carrier_latest_scans(view: SystemsView) -> Iterator[Record]:
    for order, label in _paid_labels(view):
        events = label.get("events") or []
        if not events:
            continue
        latest = max(events, key=lambda e: (_when(e["occurred_at"]), e.get("sequence", 0)))
        yield Record(
            (order,),
            {"status": latest["status"], "occurred_at": latest["occurred_at"]},
            order,
            latest["occurred_at"],
            label["tracking_number"],
        )
