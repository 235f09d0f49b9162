"""Oracles about what left the building: tracked, labelled once, never going backwards.

What must agree between systems (quantities, addresses, services) is the lineage table's
(``lineage_table.py``)."""

from __future__ import annotations

from harness.oracles.base import Judgement, oracle
from harness.oracles.view import SystemsView


@oracle(
    "tracking_in_erp",
    "Every shipped order carries its carrier tracking number in the ERP, for customer service",
)
def tracking_in_erp(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for fo in view.shipped_fulfilment_orders():
        judgement.checked += 1
        expected = (fo.get("label") or {}).get("tracking_number")
        order = view.erp_orders.get(fo["order_ref"], {})
        actual = order.get("tracking_number")
        if actual != expected:
            judgement.fail(
                fo["order_ref"], "ERP tracking number missing or wrong", expected, actual
            )
    return judgement


MILESTONES = ("picked_up", "in_transit", "out_for_delivery", "delivered")
EXCEPTION = "exception"


@oracle(
    "status_never_regresses",
    "An order's tracking status in the ERP only moves forward (picked up, in transit, out for "
    "delivery, delivered); after an exception the parcel may resume in transit",
)
def status_never_regresses(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for order in view.erp_orders.values():
        history = [entry["status"] for entry in order.get("tracking_history") or []]
        if not history:
            continue
        judgement.checked += 1
        floor = reached = 0  # milestone indexes: the lowest a next posting may report; the best
        delivered = MILESTONES.index("delivered")
        for position, status in enumerate(history, start=1):
            if status == EXCEPTION:
                expected = None if reached < delivered else "nothing after delivered"
                floor = min(reached, MILESTONES.index("in_transit"))
            elif status in MILESTONES:
                index = MILESTONES.index(status)
                expected = None if index >= floor else f"{MILESTONES[floor]} or later"
                reached = floor = max(reached, index)
            else:
                continue  # not a milestone this rule knows
            if expected is not None:
                judgement.fail(
                    order["id"],
                    f"tracking posting #{position} went back to {status} after "
                    f"{' > '.join(history[: position - 1])}",
                    expected=expected,
                    actual=status,
                )
                break
    return judgement


@oracle(
    "one_paid_label_per_shipment",
    "The carrier bills one label per order shipped: at most one label that is not voided per "
    "ERP order",
)
def one_paid_label_per_shipment(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for ref, labels in view.labels_by_order().items():
        judgement.checked += 1
        paid = [label for label in labels if label["status"] != "voided"]
        if len(paid) > 1:
            judgement.fail(
                ref,
                f"{len(paid)} labels not voided: "
                + ", ".join(
                    f"{x['id']} ({x['tracking_number']}, {x['shipment_ref']})" for x in paid
                ),
                expected=1,
                actual=len(paid),
            )
    return judgement
