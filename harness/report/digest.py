"""Digests that say "the same" without a diff: of a scenario, and of a day's business outcome.

The outcome digest covers what the business sees, keyed by business identity (order, line,
SKU), never by the ids simulators hand out in arrival order (goods-issue numbers, fulfilment
ids, tracking numbers): two runs whose stacks did the same to the business get the same
digest, however they interleaved their calls.
"""

from __future__ import annotations

from typing import Any

import orjson

from harness.oracles.view import SystemsView
from simulators.common.journal import body_digest


def digest(value: Any) -> str:
    """The journal's body digest of ``value`` as canonical JSON (keys sorted)."""
    return body_digest(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def outcome(view: SystemsView) -> str:
    labels = view.labels_by_order()
    orders = {}
    for order_id, order in sorted(view.erp_orders.items()):
        orders[order_id] = {
            "status": order["status"],
            "ship_to": order["ship_to"],
            "issued": sorted(
                (line["line"], line["sku"], line["qty"])
                for gi in view.goods_issues_by_order.get(order_id, [])
                for line in gi["lines"]
            ),
            "backordered": sorted(
                (line["line"], line["sku"], line["qty"])
                for bo in view.backorders_by_order.get(order_id, [])
                for line in bo["lines"]
            ),
            "tracking": [
                (t["status"], t["occurred_at"]) for t in order.get("tracking_history") or []
            ],
            "labels": sorted(
                (label["service"], label["status"], str(label.get("cost")))
                for label in labels.get(order_id, [])
            ),
            "wms": sorted(
                (fo["status"], tuple((x["sku"], x["picked_qty"]) for x in fo["lines"]))
                for fo in view.wms_by_ref.get(order_id, [])
            ),
        }
    accrued = sorted(
        (view.order_of(shipment) or shipment, str(a["amount"]))
        for shipment, accruals in view.accruals_by_shipment.items()
        for a in accruals
    )
    return digest(
        {
            "orders": orders,
            "erp_stock": view.erp_stock,
            "wms_stock": view.wms_stock,
            "accrued": accrued,
        }
    )
