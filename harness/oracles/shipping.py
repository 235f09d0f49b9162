"""Oracles about what left the building: posted once, with the same figures everywhere."""

from __future__ import annotations

from collections import Counter

from harness.oracles.base import Judgement, oracle
from harness.oracles.view import SystemsView


@oracle(
    "goods_issue_matches_shipment",
    "Each shipment is posted to the ERP exactly once, with the shipped qty the WMS and "
    "the carrier's parcel agree on",
)
def goods_issue_matches_shipment(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for fo in view.shipped_fulfilment_orders():
        judgement.checked += 1
        ref = fo["order_ref"]
        issues = view.goods_issues_by_order.get(ref, [])
        if len(issues) != 1:
            judgement.fail(ref, f"{len(issues)} goods issues for {fo['id']}", 1, len(issues))
            continue
        wms_qty = Counter()
        for line in fo["lines"]:
            if line["picked_qty"]:
                wms_qty[line["sku"]] += line["picked_qty"]
        erp_qty = Counter()
        for line in issues[0]["lines"]:
            if line["qty"]:
                erp_qty[line["sku"]] += line["qty"]
        parcel_qty = Counter()
        label = view.labels_by_tracking.get((fo.get("label") or {}).get("tracking_number"))
        for package in (label or {}).get("packages", []):
            for item in package.get("contents", []):
                parcel_qty[item["sku"]] += item["qty"]
        if erp_qty != wms_qty:
            judgement.fail(
                ref,
                "ERP goods issue qty differs from WMS shipped qty",
                dict(wms_qty),
                dict(erp_qty),
            )
        elif label is not None and parcel_qty != wms_qty:
            judgement.fail(
                ref,
                "carrier parcel contents differ from WMS shipped qty",
                dict(wms_qty),
                dict(parcel_qty),
            )
    return judgement


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


@oracle(
    "parcel_goes_to_current_address",
    "Every paid label ships to the address the ERP holds for the order: a change of address "
    "after release (or a corrected one) reaches the parcel",
)
def parcel_goes_to_current_address(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for ref, labels in sorted(view.labels_by_order().items()):
        order = view.erp_orders.get(ref)
        if order is None:
            continue
        for label in labels:
            if label["status"] == "voided":
                continue
            judgement.checked += 1
            wrong = {
                name: (label["ship_to"].get(name), value)
                for name, value in order["ship_to"].items()
                if label["ship_to"].get(name) != value
            }
            if wrong:
                judgement.fail(
                    ref,
                    f"label {label['id']} ships to an old address: "
                    + ", ".join(f"{k} {old!r} (ERP: {new!r})" for k, (old, new) in wrong.items()),
                    expected=order["ship_to"],
                    actual=label["ship_to"],
                )
    return judgement
