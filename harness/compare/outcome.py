"""A day's business outcome as ``compare`` sees it: categories of records keyed by business
identity (order, SKU, receipt, adjustment), never by the ids simulators hand out in arrival
order (goods-issue numbers, fulfilment ids, tracking numbers, label ids).

Two stacks that did the same business get the same records however differently they called
the vendors. Each field has a kind (``FIELDS``) that says how two values are compared: exactly,
as instants within a time tolerance, as amounts within an amount tolerance, or as latencies.

When a stack's posting landed (a goods issue's ``posted_at``, the instant an ERP order became
shipped) is not in the records: it depends on retries timed by the stack's wall clock and
differs between two plays of one stack after an outage. How fast a stack carries the business
is compared as a distribution instead: the ``service_level`` category.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Literal

from harness.oracles.view import SystemsView, items

Kind = Literal["exact", "time", "amount", "latency", "count"]
Outcome = dict[str, dict[str, dict[str, Any]]]  # category -> business key -> field -> value
NO_ORDER = "(no order)"  # the key of dead letters that name no order

# Categories whose key is an ERP order: they decide whether an order is "identical".
ORDER_CATEGORIES = (
    "erp_order",
    "goods_issue",
    "backorder",
    "tracking",
    "accrual",
    "wms_order",
    "tms_shipment",
    "label",
    "dead_letter",
)
CATEGORIES: dict[str, str] = {
    "erp_order": "ERP order: status, its history, ship-to, service level",
    "goods_issue": "ERP goods issues of an order: postings, lines, carrier",
    "backorder": "ERP backorders of an order: lines",
    "tracking": "ERP tracking of an order: milestones and the carrier's instant of each",
    "accrual": "ERP freight accruals of an order: count and amounts",
    "wms_order": "WMS orders for an ERP order: count, status, lines picked and short, ship-to",
    "tms_shipment": "TMS shipments for an order: count, carrier, service, status, rate",
    "label": "carrier labels for an order: paid, voided, service, address, cost",
    "dead_letter": "dead letters the stack left about an order",
    "stock": "stock per SKU at the end, ERP book and WMS physical",
    "adjustment": "ERP inventory adjustments per WMS adjustment: count, SKU, delta",
    "receipt": "ERP goods receipts per WMS receipt: count, qty per SKU",
    "service_level": "flow latencies: count and percentiles per service level",
    "oracle": "each oracle's verdict: passed, and how many findings",
}
FIELDS: dict[str, dict[str, Kind]] = {
    "tracking": {"occurred_at": "time"},
    "accrual": {"amounts": "amount"},
    "tms_shipment": {"rate": "amount"},
    "label": {"cost": "amount"},
    "service_level": {
        "count": "count",
        "p50": "latency",
        "p95": "latency",
        "p99": "latency",
        "max": "latency",
    },
}


def kind(category: str, field: str) -> Kind:
    return FIELDS.get(category, {}).get(field, "exact")


def business_outcome(
    view: SystemsView,
    service_levels: list[dict[str, Any]] | None = None,
    oracles: list[dict[str, Any]] | None = None,
) -> Outcome:
    """The day's records by category; ``service_levels`` and ``oracles`` as verdict.json
    holds them."""
    found: Outcome = {name: {} for name in CATEGORIES}
    _erp(view, found)
    _wms(view, found)
    _tms_and_carrier(view, found)
    _stock(view, found)
    if view.dead_letters is not None:
        found["dead_letter"] = _dead_letters(view)
    else:
        del found["dead_letter"]
    for level in service_levels or []:
        found["service_level"][level["name"]] = {
            "count": level["count"],
            **{stat: level.get(stat) for stat in ("p50", "p95", "p99", "max")},
        }
    for result in oracles or []:
        found["oracle"][result["name"]] = {
            "passed": result["passed"],
            "findings": result.get("failures", len(result.get("findings", []))),
        }
    return found


def _erp(view: SystemsView, found: Outcome) -> None:
    for order_id, order in view.erp_orders.items():
        history = order.get("status_history") or []
        found["erp_order"][order_id] = {
            "status": order["status"],
            "history": [h["status"] for h in history],
            "ship_to": order.get("ship_to"),
            "service_level": order.get("service_level"),
        }
        tracking = order.get("tracking_history") or []
        if tracking:
            found["tracking"][order_id] = {
                "milestones": [t["status"] for t in tracking],
                "occurred_at": [t["occurred_at"] for t in tracking],
                "latest": order.get("tracking_status"),
            }
    for order_id, issues in view.goods_issues_by_order.items():
        found["goods_issue"][order_id] = {
            "postings": len(issues),
            "lines": sorted(
                [line["line"], line["sku"], line["qty"]] for gi in issues for line in gi["lines"]
            ),
            "carrier": sorted({gi.get("carrier") for gi in issues if gi.get("carrier")}),
        }
    for order_id, backorders in view.backorders_by_order.items():
        found["backorder"][order_id] = {
            "count": len(backorders),
            "lines": sorted(
                [line["line"], line["sku"], line["qty"]]
                for bo in backorders
                for line in bo["lines"]
            ),
        }
    accrued: dict[str, list[str]] = defaultdict(list)
    for shipment, accruals in view.accruals_by_shipment.items():
        for accrual in accruals:
            order = accrual.get("order_id") or view.order_of(shipment) or shipment
            accrued[order].append(_money(accrual.get("amount")))
    for order_id, amounts in accrued.items():
        found["accrual"][order_id] = {"count": len(amounts), "amounts": sorted(amounts)}
    erp = view.snapshots["erp"]
    adjusted: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for adjustment in items(erp.get("adjustments")):
        key = adjustment.get("reference") or f"(no reference) {adjustment.get('sku')}"
        adjusted[key].append(adjustment)
    for key, posted in adjusted.items():
        found["adjustment"][key] = {
            "count": len(posted),
            "sku": sorted({a.get("sku") for a in posted}),
            "delta": sum(a.get("delta") or 0 for a in posted),
        }
    received: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for receipt in items(erp.get("receipts")):
        received[receipt.get("reference") or "(no reference)"].append(receipt)
    for key, posted in received.items():
        qty: Counter[str] = Counter()
        for receipt in posted:
            for line in receipt.get("lines", []):
                qty[line["sku"]] += line["qty"]
        found["receipt"][key] = {"count": len(posted), "qty": dict(sorted(qty.items()))}


def _wms(view: SystemsView, found: Outcome) -> None:
    for ref, fos in view.wms_by_ref.items():
        live = [fo for fo in fos if fo["status"] != "cancelled"]
        shown = live[0] if live else fos[-1]
        found["wms_order"][ref] = {
            "count": len(fos),
            "live": len(live),
            "status": shown["status"],
            "history": [h["status"] for h in shown.get("status_history") or []],
            "lines": [
                [x["line"], x["sku"], x["qty"], x.get("picked_qty"), x.get("short_qty")]
                for x in shown["lines"]
            ],
            "ship_to": shown.get("ship_to"),
            "service_level": shown.get("service_level"),
        }


def _tms_and_carrier(view: SystemsView, found: Outcome) -> None:
    shipments: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for shipment in view.tms_shipments.values():
        shipments[shipment["order_ref"]].append(shipment)
    for ref, planned in shipments.items():
        shown = sorted(planned, key=lambda s: s.get("created_at") or "")[-1]
        found["tms_shipment"][ref] = {
            "count": len(planned),
            "carrier": shown.get("carrier"),
            "service": shown.get("service"),
            "status": shown.get("status"),
            "rate": _money(shown.get("rate")),
        }
    for order, labels in view.labels_by_order().items():
        paid = [label for label in labels if label["status"] != "voided"]
        shown = paid[-1] if paid else labels[-1]
        found["label"][order] = {
            "paid": len(paid),
            "voided": len(labels) - len(paid),
            "service": shown.get("service"),
            "ship_to": shown.get("ship_to"),
            "cost": _money(shown.get("cost")),
            "status": shown.get("status"),
        }


def _stock(view: SystemsView, found: Outcome) -> None:
    for sku in sorted(set(view.erp_stock) | set(view.wms_stock)):
        found["stock"][sku] = {"erp": view.erp_stock.get(sku), "wms": view.wms_stock.get(sku)}


def _dead_letters(view: SystemsView) -> dict[str, dict[str, Any]]:
    counted: Counter[str] = Counter()
    for item in view.dead_letters or []:
        counted[view.order_named_in(item) or NO_ORDER] += 1
    return {key: {"count": n} for key, n in sorted(counted.items())}


def _money(value: Any) -> str:
    """``{"amount": "5.40", "currency": "EUR"}`` as ``"5.40 EUR"`` (kept as text: compared as
    a decimal by the amount tolerance)."""
    if isinstance(value, dict):
        return f"{value.get('amount')} {value.get('currency')}"
    return "" if value is None else str(value)
