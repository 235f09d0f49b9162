"""The lineage table: which fields of each business document must survive its way between
systems, and which postings must not come before the event that justifies them.

Adding a mapping is adding a row (and, when it reads a document no row read before, an
extractor in ``documents.py``). Every row is documented in ``docs/lineage.md``; a test keeps
that page and this table in step.
"""

from __future__ import annotations

from harness.oracles.lineage import Agree, Causality, Lineage, register

LINEAGE: tuple[Lineage, ...] = (
    Lineage(
        "order_lines_reach_wms",
        "Every line of a released ERP order reaches its WMS order with the same SKU and qty, "
        "and the WMS order has no line the ERP order does not (unless the order was cancelled)",
        source="erp.order_line",
        target="wms.order_line",
        agree=(Agree("sku"), Agree("qty")),
        count="at_least_one",
        scope="where_target_has_parent",
        unexplained_target=True,
    ),
    Lineage(
        "ship_to_reaches_wms",
        "The WMS order ships to the address the ERP holds for the order now (a change of "
        "address after release reaches the warehouse)",
        source="erp.order",
        target="wms.order",
        agree=(Agree("ship_to", how="address"),),
        count="at_least_one",
        scope="where_target_has_parent",
    ),
    Lineage(
        "service_level_reaches_wms",
        "The WMS order carries the service level the customer paid for in the ERP, so the floor "
        "picks express orders first and they make the day's last truck",
        source="erp.order",
        target="wms.order",
        agree=(Agree("service_level"),),
        count="at_least_one",
        scope="where_target_has_parent",
    ),
    Lineage(
        "parcel_goes_to_current_address",
        "Every paid label ships to the address the ERP holds for the order: a change of "
        "address after release (or a corrected one) reaches the parcel",
        source="erp.order",
        target="carrier.label",
        agree=(Agree("ship_to", how="address"),),
        count="any",
    ),
    Lineage(
        "label_attached_as_bought",
        "The WMS order carries the label the carrier sold for it, by label id and tracking "
        "number: the dock prints and ships the parcel under the label that was paid for",
        source="carrier.label",
        target="wms.label",
        agree=(Agree("id", "label_id"), Agree("tracking_number")),
        count="any",
    ),
    Lineage(
        "service_level_planned",
        "The TMS plans each shipment at the service level the customer paid for in the ERP; "
        "the only allowed change is express shipped by a slower service after the TMS declined "
        "the express tender (and the TMS shows the refusal)",
        source="erp.order",
        target="tms.shipment",
        agree=(Agree("service_level"),),
        count="any",
        allowed=("declined_express_tender",),
    ),
    Lineage(
        "label_service_as_planned",
        "Each paid label is bought for a shipment the TMS planned, with the service the TMS "
        "planned (ground is the carrier's v2 standard)",
        source="tms.planned_service",
        target="carrier.label_service",
        agree=(Agree("service", how="service"),),
        count="any",
        unexplained_target=True,
    ),
    Lineage(
        "goods_issue_matches_shipment",
        "Each shipment is posted to the ERP exactly once, with the qty per SKU the WMS picked "
        "and shipped",
        source="wms.shipment",
        target="erp.goods_issue",
        agree=(Agree("qty_by_sku"),),
    ),
    Lineage(
        "parcel_contents_match_shipment",
        "What the carrier's label says is in the parcel is what the WMS picked and shipped",
        source="wms.shipment",
        target="carrier.parcel",
        agree=(Agree("qty_by_sku"),),
        count="any",
    ),
    Lineage(
        "shipment_planned_for_its_wms_order",
        "The TMS shipment names the WMS order it carries (the warehouse's dock and the carrier's "
        "pick-up are matched by it), not another order or the ERP's order number",
        source="wms.order",
        target="tms.shipment",
        agree=(Agree("id", "fulfilment_order_id"),),
        count="any",
    ),
    Lineage(
        "goods_issue_names_its_shipment",
        "A goods issue that names its shipment and carrier names the TMS shipment that carried "
        "the order and that shipment's carrier, so freight bills and claims find their goods "
        "issue (both may be left out, as the ERP's contract allows)",
        source="tms.shipment",
        target="erp.goods_issue",
        agree=(Agree("id", "shipment_id", how="when_given"), Agree("carrier", how="when_given")),
        count="any",
    ),
    Lineage(
        "shipment_weighed_as_packed",
        "The TMS plans (and so bills) each shipment with the packages the WMS packed, each at "
        "its packed weight: a package left out or a weight rounded is freight billed wrong",
        source="wms.shipment",
        target="tms.shipment",
        agree=(Agree("weights", how="weights"),),
        count="any",
    ),
    Lineage(
        "parcel_weighed_as_packed",
        "The carrier's label declares the packages the WMS packed, each at its packed weight "
        "(a parcel declared lighter than it is is surcharged or refused at the hub)",
        source="wms.shipment",
        target="carrier.parcel",
        agree=(Agree("weights", how="weights"),),
        count="any",
    ),
    Lineage(
        "tracking_posted_as_scanned",
        "Every tracking milestone the ERP holds is a scan the carrier made, with its status, "
        "the instant it happened (not the time the stack heard of it) and the parcel's "
        "tracking number",
        source="erp.tracking",
        target="carrier.scan",
        agree=(Agree("tracking_number"),),
        count="at_least_one",
    ),
    Lineage(
        "latest_scan_in_erp",
        "The ERP holds each parcel's latest carrier scan, with its status and the instant it "
        "happened, so customer service sees where the parcel is",
        source="carrier.latest_scan",
        target="erp.latest_tracking",
        agree=(Agree("status"), Agree("occurred_at", how="instant")),
    ),
    Lineage(
        "freight_accrued_once",
        "Every settled freight bill is accrued in the ERP exactly once, for the settled amount "
        "and currency (not in minor units), and nothing is accrued that the TMS did not settle",
        source="tms.settlement",
        target="erp.accrual",
        agree=(Agree("amount", how="money"),),
        unexplained_target=True,
    ),
    Lineage(
        "transfer_reaches_wms",
        "Every ERP transfer order becomes exactly one WMS transfer, between the same sites, for "
        "the same qty per SKU, and the WMS moves nothing no transfer order asked for (a "
        "transfer never created leaves the receiving site short with nothing to show for it)",
        source="erp.transfer",
        target="wms.transfer",
        agree=(Agree("from_site"), Agree("to_site"), Agree("qty_by_sku")),
        unexplained_target=True,
    ),
    Lineage(
        "adjustment_posted_once",
        "Every WMS inventory adjustment (cycle count, damage) is posted to the ERP exactly "
        "once, for the same SKU, the same signed delta and the same reason (finance books "
        "damage, shrink and found units to different accounts), and no ERP adjustment lacks one",
        source="wms.adjustment",
        target="erp.adjustment",
        agree=(Agree("sku"), Agree("delta"), Agree("reason")),
        unexplained_target=True,
    ),
    Lineage(
        "receipt_posted_once",
        "Every receipt at the WMS dock is posted to the ERP as exactly one goods receipt, with "
        "the qty per SKU received, and no ERP goods receipt lacks one",
        source="wms.receipt",
        target="erp.receipt",
        agree=(Agree("qty_by_sku"),),
        unexplained_target=True,
    ),
)

CAUSALITY: tuple[Causality, ...] = (
    Causality("wms.order", "erp.release", "WMS order created before the ERP released the order"),
    Causality("erp.goods_issue", "wms.closed", "goods issue posted before the WMS shipped"),
    Causality("erp.tracking", "carrier.scan", "tracking posted before the carrier scanned"),
    Causality("erp.accrual", "tms.settlement", "freight accrued before the TMS settled it"),
    Causality("erp.backorder", "wms.short_pick", "backorder raised before the short pick"),
    Causality("erp.adjustment", "wms.adjustment", "adjustment posted before the WMS made it"),
    Causality("erp.receipt", "wms.receipt", "goods receipt posted before the WMS received it"),
)

register(
    LINEAGE,
    CAUSALITY,
    "Nothing is posted before the event that justifies it: no WMS order before release, no "
    "goods issue before the WMS shipped, no tracking before the scan, no accrual before "
    "settlement, no backorder before the short pick, no adjustment or receipt before the "
    "WMS made it (a negative service level is one of these)",
)
