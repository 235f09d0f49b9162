"""Oracles about master data: the WMS knows every item the ERP sells, as the ERP describes
it, and no order waits long for an item still on its way.

The ERP's item master (``items``) is the truth; the WMS's registry (``items`` by SKU) the
copy the stack keeps. That quantities agree once converted (a case line reaches the WMS as
eaches, the goods issue posts eaches) is judged by the lineage rows ``order_lines_reach_wms``
and ``goods_issue_matches_shipment``, whose ERP documents are in eaches (docs/lineage.md).
"""

from __future__ import annotations

from harness.oracles.base import Judgement, oracle
from harness.oracles.documents import instant
from harness.oracles.view import SystemsView

SYNCED_FIELDS = ("description", "weight_kg", "active", "each_per_case")
BLOCKED_LIMIT_S = 7_200.0  # two hours: retries and an outage of the sync may take that long


@oracle(
    "item_master_synced",
    "Every item active in the ERP at the end of the day is in the WMS registry with the ERP's "
    "description, weight, active flag and case size: the warehouse never works from a stale "
    "or missing item",
)
def item_master_synced(view: SystemsView) -> Judgement:
    judgement = Judgement()
    for sku, item in sorted(view.erp_items.items()):
        if not item["active"]:
            continue
        judgement.checked += 1
        held = view.wms_items.get(sku)
        if held is None:
            judgement.fail(sku, f"item {sku} (version {item['version']}) is not in the WMS")
            continue
        expected = {name: item[name] for name in SYNCED_FIELDS}
        actual = {name: held.get(name) for name in SYNCED_FIELDS}
        if actual != expected:
            differ = ", ".join(n for n in SYNCED_FIELDS if actual[n] != expected[n])
            judgement.fail(
                sku,
                f"the WMS holds item {sku} with another {differ} than ERP version "
                f"{item['version']}",
                expected=expected,
                actual=actual,
            )
    return judgement


@oracle(
    "no_order_blocked_by_master_data",
    "An order for an item created during the day reaches the WMS within two hours of its "
    "release and of its item's creation in the ERP: master data in flight may delay an order "
    "(the WMS refuses a line for an unknown item), never lose it",
)
def no_order_blocked_by_master_data(view: SystemsView) -> Judgement:
    judgement = Judgement()
    created = {sku: instant(i["created_at"]) or 0.0 for sku, i in view.erp_items.items()}
    cutover = min(created.values(), default=0.0)
    for order in view.released_orders():
        if order["status"] == "cancelled":
            continue
        new = sorted({x["sku"] for x in order["lines"] if created.get(x["sku"], 0.0) > cutover})
        if not new:
            continue
        judgement.checked += 1
        ready = max([instant(order["released_at"]) or 0.0] + [created[sku] for sku in new])
        reached = [instant(fo["created_at"]) or 0.0 for fo in view.wms_by_ref.get(order["id"], [])]
        if not reached:
            judgement.fail(
                order["id"],
                f"never reached the WMS; it orders {', '.join(new)}, created during the day",
                expected=f"a WMS order within {BLOCKED_LIMIT_S / 60:.0f} min",
                actual="none",
            )
        elif (waited := min(reached) - ready) > BLOCKED_LIMIT_S:
            judgement.fail(
                order["id"],
                f"reached the WMS {waited / 60:.0f} min after it and {', '.join(new)} were ready",
                expected=BLOCKED_LIMIT_S,
                actual=waited,
            )
    return judgement
