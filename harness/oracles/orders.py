"""Oracles about orders as a whole: none lost, none duplicated."""

from __future__ import annotations

from harness.oracles.base import Judgement, oracle
from harness.oracles.view import SystemsView

TERMINAL = {"delivered", "backordered", "cancelled"}


@oracle(
    "orders_terminal",
    "Every released order ends delivered, backordered or cancelled in the ERP: none is lost",
)
def orders_terminal(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for order in view.released_orders():
        judgement.checked += 1
        if order["status"] not in TERMINAL:
            fos = view.wms_by_ref.get(order["id"], [])
            where = ", ".join(f"{fo['id']} {fo['status']}" for fo in fos) or "no WMS order"
            judgement.fail(
                order["id"],
                f"ended {order['status']} ({where})",
                expected=sorted(TERMINAL),
                actual=order["status"],
            )
    return judgement


@oracle(
    "one_wms_order_per_erp_order",
    "Each released ERP order becomes exactly one WMS fulfilment order: no double shipping",
)
def one_wms_order_per_erp_order(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for order in view.released_orders():
        judgement.checked += 1
        fos = view.wms_by_ref.get(order["id"], [])
        if len(fos) > 1:
            judgement.fail(
                order["id"],
                f"{len(fos)} WMS orders: {', '.join(fo['id'] for fo in fos)}",
                expected=1,
                actual=len(fos),
            )
        elif not fos and order["status"] != "cancelled":
            judgement.fail(order["id"], "never reached the WMS", expected=1, actual=0)
    return judgement


@oracle(
    "short_becomes_backorder",
    "Whatever the warehouse could not pick is owed to the customer: every short-picked line "
    "of a shipped or short-closed WMS order is on an ERP backorder for that order and line",
)
def short_becomes_backorder(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for fo in view.wms_orders.values():
        if fo["status"] not in ("shipped", "short_closed"):
            continue
        ref = fo["order_ref"]
        if view.erp_orders.get(ref, {}).get("status") == "cancelled" and fo["status"] != "shipped":
            continue  # cancelled in the ERP: nothing is owed to the customer
        owed: dict[int, int] = {}
        for bo in view.backorders_by_order.get(ref, []):
            for line in bo["lines"]:
                owed[line["line"]] = owed.get(line["line"], 0) + line["qty"]
        for line in fo["lines"]:
            if not line["short_qty"]:
                continue
            judgement.checked += 1
            backordered = owed.get(line["line"], 0)
            if backordered != line["short_qty"]:
                judgement.fail(
                    f"{ref} line {line['line']} ({line['sku']})",
                    f"{fo['id']} picked {line['short_qty']} short; "
                    f"ERP backorders hold {backordered}",
                    expected=line["short_qty"],
                    actual=backordered,
                )
    return judgement


@oracle(
    "cancelled_never_ships",
    "A cancelled order never leaves the building: no shipped WMS order, no goods issue and no "
    "parcel picked up by the carrier",
)
def cancelled_never_ships(view: SystemsView) -> Judgement:
    judgement = Judgement()
    labels = view.labels_by_order()
    for order in view.erp_orders.values():
        if order["status"] != "cancelled":
            continue
        judgement.checked += 1
        ref = order["id"]
        fos = view.wms_by_ref.get(ref, [])
        shipped = [f"WMS order {fo['id']} shipped" for fo in fos if fo["status"] == "shipped"]
        shipped += [f"goods issue {gi['id']}" for gi in view.goods_issues_by_order.get(ref, [])]
        shipped += [
            f"parcel {label['tracking_number']} picked up"
            for label in labels.get(ref, [])
            if any(e["status"] == "picked_up" for e in label.get("events", []))
        ]
        if shipped:
            judgement.fail(ref, "cancelled in the ERP but shipped", expected=[], actual=shipped)
    return judgement
