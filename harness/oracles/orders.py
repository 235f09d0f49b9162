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
