"""What the reference stack needs from each vendor, as Pact interactions (consumer side).

One entry per call the stack makes (``reference_stack.clients.Vendors``) and per webhook event
it consumes (``reference_stack.handlers.HANDLERS``). Each HTTP case runs the stack's real
client against Pact's mock provider and checks how the stack read the answer; each message
case feeds the event to the stack's real parser and handler and checks the job it starts.
Response bodies hold only what the stack reads: that is what the vendor must keep.

Provider states use the twinyard vocabulary (``simulators.provider_states``), so these pacts
verify against the simulators with no code, and against a vendor that maps the same sentences.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pact import match

from reference_stack.clients import Outcome, Vendors, Verdict
from simulators.provider_states import DEFAULT_SHIP_TO

CONSUMER = "reference-stack"
CORRELATION = "corr-SO-000001-0a1b2c3d"
SHIP_TO = DEFAULT_SHIP_TO  # the Amsterdam address every example uses
LINES = [{"line": 1, "sku": "A-100", "qty": 3}]
PACKAGES = [{"weight_kg": 1.6, "contents": [{"sku": "A-100", "qty": 3}]}]

Call = Callable[[Vendors], Awaitable[Outcome]]
State = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class HttpCase:
    """One call: the request the stack sends, the answer it relies on, how it reads it."""

    provider: str
    description: str
    states: list[State]
    method: str
    path: str
    call: Call
    status: int
    response: Any = None
    body: Any = None  # the request body, with matchers
    query: dict[str, str] | None = None
    keyed: bool = True  # sends an Idempotency-Key
    verdict: Verdict = Verdict.OK


@dataclass(frozen=True)
class MessageCase:
    """One webhook event: the envelope the stack relies on, and the job kinds it starts."""

    provider: str
    description: str
    states: list[State]
    event_type: str
    data: dict[str, Any]
    jobs: list[str]
    known_parcels: dict[str, str] = field(default_factory=dict)  # tracking -> order (store)


def like(value: Any) -> Any:
    return match.like(value)


def error(code: str, **details: Any) -> dict[str, Any]:
    """The vendor error envelope the stack reads ``code`` and ``details`` from."""
    return {"error": {"code": code, "message": like("why"), "details": details}}


def typed(body: dict[str, Any]) -> dict[str, Any]:
    return {k: like(x) for k, x in body.items()}


def _key(kind: str) -> str:
    return f"{kind}-FO-000001"


# -- WMS -------------------------------------------------------------------------------------
TRANSFER_BODY = {
    "transfer_ref": "TO-000001",
    "from_site": "DC1",
    "to_site": "DC2",
    "lines": [{"line": 1, "sku": "A-100", "qty": 5}],
}
CREATE_BODY = {
    "order_ref": "SO-000001",
    "ship_to": SHIP_TO,
    "service_level": "standard",
    "lines": LINES,
}

WMS = [
    HttpCase(
        "wms",
        "a fulfilment order is created for a released sales order",
        [("SKU A-100 has 10 on hand", {})],
        "POST",
        "/fulfilment-orders",
        lambda v: v.create_fulfilment_order(
            CREATE_BODY, key="wms-create-SO-000001", correlation_id=CORRELATION
        ),
        201,
        {"id": like("FO-000001")},
        body={**CREATE_BODY, "order_ref": like("SO-000001"), "lines": match.each_like(LINES[0])},
    ),
    HttpCase(
        "wms",
        "a fulfilment order is created at the site the ERP assigned",
        [("site DC2 exists", {"sku": "A-100", "qty": 10})],
        "POST",
        "/fulfilment-orders",
        lambda v: v.create_fulfilment_order(
            {**CREATE_BODY, "site": "DC2"}, key="wms-create-SO-000001", correlation_id=CORRELATION
        ),
        201,
        {"id": like("FO-000001")},
        body={
            **CREATE_BODY,
            "order_ref": like("SO-000001"),
            "lines": match.each_like(LINES[0]),
            "site": "DC2",
        },
    ),
    HttpCase(
        "wms",
        "a transfer order is created at its shipping site",
        [("site DC2 exists", {"sku": "A-100", "qty": 0})],
        "POST",
        "/transfers",
        lambda v: v.create_transfer(
            TRANSFER_BODY, key="wms-transfer-TO-000001", correlation_id=CORRELATION
        ),
        201,
        {"id": like("WT-000001")},
        body={
            **typed({k: x for k, x in TRANSFER_BODY.items() if k != "lines"}),
            "lines": match.each_like(TRANSFER_BODY["lines"][0]),
        },
    ),
    HttpCase(
        "wms",
        "the transfers of a transfer order are looked up before a create is retried",
        [("transfer WT-000001 for TO-000001 is accepted", {})],
        "GET",
        "/transfers",
        lambda v: v.find_transfers("TO-000001", correlation_id=CORRELATION),
        200,
        {"items": match.each_like({"id": "WT-000001", "status": "accepted"})},
        query={"transfer_ref": "TO-000001"},
        keyed=False,
    ),
    HttpCase(
        "wms",
        "the fulfilment orders of a sales order are looked up before a create is retried",
        [("fulfilment order FO-000001 for SO-000001 is accepted", {})],
        "GET",
        "/fulfilment-orders",
        lambda v: v.find_fulfilment_orders("SO-000001", correlation_id=CORRELATION),
        200,
        {"items": match.each_like({"id": "FO-000001", "status": "accepted"})},
        query={"order_ref": "SO-000001"},
        keyed=False,
    ),
    HttpCase(
        "wms",
        "a fulfilment order is cancelled",
        [("fulfilment order FO-000001 for SO-000001 is accepted", {})],
        "POST",
        "/fulfilment-orders/FO-000001/cancel",
        lambda v: v.cancel_fulfilment_order(
            "FO-000001", key=_key("wms-cancel"), correlation_id=CORRELATION
        ),
        200,
        {"status": "cancelled"},
        body={},
    ),
    HttpCase(
        "wms",
        "cancelling a fulfilment order already cancelled is as good as done",
        [("fulfilment order FO-000001 for SO-000001 is cancelled", {})],
        "POST",
        "/fulfilment-orders/FO-000001/cancel",
        lambda v: v.cancel_fulfilment_order(
            "FO-000001", key=_key("wms-cancel"), correlation_id=CORRELATION
        ),
        409,
        error("invalid_transition", status="cancelled"),
        body={},
        verdict=Verdict.DONE,
    ),
    HttpCase(
        "wms",
        "a fulfilment order takes the customer's new ship-to",
        [("fulfilment order FO-000001 for SO-000001 is accepted", {})],
        "PATCH",
        "/fulfilment-orders/FO-000001",
        lambda v: v.change_ship_to(
            "FO-000001", {"ship_to": SHIP_TO}, key=_key("wms-address"), correlation_id=CORRELATION
        ),
        200,
        {"id": like("FO-000001")},
        body={"ship_to": like(SHIP_TO)},
    ),
    HttpCase(
        "wms",
        "a labelled fulfilment order refuses a new ship-to",
        [("fulfilment order FO-000001 for SO-000001 is labelled", {})],
        "PATCH",
        "/fulfilment-orders/FO-000001",
        lambda v: v.change_ship_to(
            "FO-000001", {"ship_to": SHIP_TO}, key=_key("wms-address"), correlation_id=CORRELATION
        ),
        409,
        error("invalid_transition", status="labelled"),
        body={"ship_to": like(SHIP_TO)},
        verdict=Verdict.REFUSED,
    ),
    HttpCase(
        "wms",
        "the carrier's label is attached to a packed fulfilment order",
        [("fulfilment order FO-000001 for SO-000001 is packed", {})],
        "POST",
        "/fulfilment-orders/FO-000001/label",
        lambda v: v.attach_label(
            "FO-000001", LABEL_BODY, key=_key("wms-label"), correlation_id=CORRELATION
        ),
        200,
        {"status": "labelled"},
        body={
            k: like(x)
            for k, x in {
                "tracking_number": "PC000000001",
                "carrier": "parcelco",
                "label_id": "LB-000001",
            }.items()
        },
    ),
    HttpCase(
        "wms",
        "attaching the label of a parcel already shipped is as good as done",
        [("fulfilment order FO-000001 for SO-000001 is shipped", {})],
        "POST",
        "/fulfilment-orders/FO-000001/label",
        lambda v: v.attach_label(
            "FO-000001", LABEL_BODY, key=_key("wms-label"), correlation_id=CORRELATION
        ),
        409,
        error("invalid_transition", status="shipped"),
        body={
            k: like(x)
            for k, x in {
                "tracking_number": "PC000000001",
                "carrier": "parcelco",
                "label_id": "LB-000001",
            }.items()
        },
        verdict=Verdict.DONE,
    ),
]
LABEL_BODY = {"tracking_number": "PC000000001", "carrier": "parcelco", "label_id": "LB-000001"}

# -- TMS and carrier -------------------------------------------------------------------------
PLAN_BODY = {
    "order_ref": "SO-000001",
    "fulfilment_order_id": "FO-000001",
    "ship_to": SHIP_TO,
    "service_level": "express",
    "packages": [{"weight_kg": 1.6}],
}
LABEL_REQUEST = {
    "shipment_ref": "SH-000001",
    "service": "ground",
    "ship_to": SHIP_TO,
    "packages": PACKAGES,
}
NO_POSTCODE = {**SHIP_TO, "postal_code": ""}

ITEM_BODY = {"description": "Kettle, steel", "weight_kg": 1.2, "active": True, "each_per_case": 6}
WMS += [
    HttpCase(
        "wms",
        "an item of the ERP's master is put into the registry",
        [("item N-1 is not in the registry", {})],
        "PUT",
        "/items/N-1",
        lambda v: v.put_item("N-1", ITEM_BODY, key="wms-item-N-1-v1", correlation_id=CORRELATION),
        201,
        {"sku": like("N-1")},
        body={k: like(x) for k, x in ITEM_BODY.items()},
    ),
    HttpCase(
        "wms",
        "an order line for an item the registry lacks is refused as unknown",
        [("item N-1 is not in the registry", {})],
        "POST",
        "/fulfilment-orders",
        lambda v: v.create_fulfilment_order(
            {**CREATE_BODY, "lines": [{"line": 1, "sku": "N-1", "qty": 12}]},
            key="wms-create-SO-000001",
            correlation_id=CORRELATION,
        ),
        422,
        error("unknown_item", sku=like("N-1"), line=like(1)),
        body={
            **CREATE_BODY,
            "order_ref": like("SO-000001"),
            "lines": match.each_like({"line": 1, "sku": "N-1", "qty": 12}),
        },
        verdict=Verdict.REFUSED,
    ),
]

TMS = [
    HttpCase(
        "tms",
        "a shipment is planned for a packed order",
        [],
        "POST",
        "/shipments",
        lambda v: v.plan_shipment(PLAN_BODY, key="shipment-FO-000001", correlation_id=CORRELATION),
        201,
        {"id": like("SH-000001"), "service": like("express"), "carrier": like("parcelco")},
        body={
            **{k: like(x) for k, x in PLAN_BODY.items() if k != "service_level"},
            "service_level": "express",
        },
    ),
    HttpCase(
        "tms",
        "an express tender is declined when the carrier's express capacity is taken",
        [("express capacity is exhausted", {})],
        "POST",
        "/shipments",
        lambda v: v.plan_shipment(PLAN_BODY, key="shipment-FO-000001", correlation_id=CORRELATION),
        422,
        error("tender_rejected", reason="capacity_exhausted", available=["ground"]),
        body={
            **{k: like(x) for k, x in PLAN_BODY.items() if k != "service_level"},
            "service_level": "express",
        },
        verdict=Verdict.REFUSED,
    ),
]

CARRIER = [
    HttpCase(
        "carrier",
        "a label is bought for a planned shipment",
        [],
        "POST",
        "/labels",
        lambda v: v.buy_label(LABEL_REQUEST, key="label-FO-000001", correlation_id=CORRELATION),
        201,
        {"id": like("LB-000001"), "tracking_number": like("PC000000001")},
        body={
            **{k: like(x) for k, x in LABEL_REQUEST.items() if k != "packages"},
            "packages": match.each_like(PACKAGES[0]),
        },
    ),
    HttpCase(
        "carrier",
        "a label for an address without a postal code is refused",
        [],
        "POST",
        "/labels",
        lambda v: v.buy_label(
            {**LABEL_REQUEST, "ship_to": NO_POSTCODE},
            key="label-FO-000001",
            correlation_id=CORRELATION,
        ),
        422,
        error("address_invalid", field=like("ship_to.postal_code")),
        body={
            **{k: like(x) for k, x in LABEL_REQUEST.items() if k not in ("packages", "ship_to")},
            "ship_to": {**{k: like(x) for k, x in SHIP_TO.items()}, "postal_code": ""},
            "packages": match.each_like(PACKAGES[0]),
        },
        verdict=Verdict.REFUSED,
    ),
]

# -- ERP -------------------------------------------------------------------------------------
ISSUE_BODY = {
    "lines": [{"line": 1, "qty": 3, "uom": "EA"}],
    "tracking_number": "PC000000001",
    "carrier": "parcelco",
    "shipment_id": "SH-000001",
}
TRACKING_BODY = {
    "tracking_number": "PC000000001",
    "status": "in_transit",
    "occurred_at": "2026-11-02T10:30:00Z",
}
ACCRUAL_BODY = {
    "order_id": "SO-000001",
    "shipment_id": "SH-000001",
    "amount": {"amount": "5.40", "currency": "EUR"},
}
ADJUSTMENT_BODY = {"sku": "A-100", "delta": -2, "reason": "cycle_count", "reference": "ADJ-000001"}
RECEIPT_BODY = {"reference": "RC-000001", "lines": [{"sku": "A-100", "qty": 24}]}
DISPOSITION_BODY = {"receipt_id": "RR-000001", "lines": [{"line": 1, "qty": 1, "restock_qty": 1}]}
MOVED_BODY = {"reference": "WT-000001", "lines": [{"line": 1, "qty": 5}]}
MOVED_REQUEST = {
    "reference": like("WT-000001"),
    "lines": match.each_like(typed(MOVED_BODY["lines"][0])),
}
RELEASED = "transfer TO-000001 from DC1 to DC2 is released"
IN_TRANSIT = "transfer TO-000001 from DC1 to DC2 is in transit"


ERP = [
    HttpCase(
        "erp",
        "goods are issued for a shipped fulfilment order",
        [("order SO-000001 is released", {})],
        "POST",
        "/orders/SO-000001/goods-issue",
        lambda v: v.goods_issue(
            "SO-000001", ISSUE_BODY, key="gi-FO-000001", correlation_id=CORRELATION
        ),
        201,
        {"id": like("GI-000001")},
        body={**typed(ISSUE_BODY), "lines": match.each_like(ISSUE_BODY["lines"][0])},
    ),
    HttpCase(
        "erp",
        "a second goods issue for a shipped order is as good as done",
        [("order SO-000001 is shipped", {})],
        "POST",
        "/orders/SO-000001/goods-issue",
        lambda v: v.goods_issue(
            "SO-000001", ISSUE_BODY, key="gi-FO-000001", correlation_id=CORRELATION
        ),
        409,
        error("already_issued", goods_issue_id=like("GI-000001")),
        body={**typed(ISSUE_BODY), "lines": match.each_like(ISSUE_BODY["lines"][0])},
        verdict=Verdict.DONE,
    ),
    HttpCase(
        "erp",
        "the sales order is looked up before a goods issue is retried",
        [("order SO-000001 is shipped", {})],
        "GET",
        "/orders/SO-000001",
        lambda v: v.sales_order("SO-000001", correlation_id=CORRELATION),
        200,
        {"id": "SO-000001", "goods_issues": match.each_like("GI-000001")},
        keyed=False,
    ),
    HttpCase(
        "erp",
        "a carrier milestone is posted to a shipped order",
        [("order SO-000001 is shipped", {})],
        "POST",
        "/orders/SO-000001/tracking",
        lambda v: v.post_tracking(
            "SO-000001", TRACKING_BODY, key="tracking-PC000000001-2", correlation_id=CORRELATION
        ),
        200,
        {"id": like("SO-000001")},
        body=typed(TRACKING_BODY),
    ),
    HttpCase(
        "erp",
        "a shipment's settled freight is accrued",
        [("order SO-000001 is shipped", {})],
        "POST",
        "/freight-accruals",
        lambda v: v.freight_accrual(
            ACCRUAL_BODY, key="accrual-SH-000001", correlation_id=CORRELATION
        ),
        201,
        {"id": like("FA-000001")},
        body={**typed(ACCRUAL_BODY), "amount": typed(ACCRUAL_BODY["amount"])},
    ),
    HttpCase(
        "erp",
        "a warehouse stock adjustment is posted",
        [("SKU A-100 has 10 on hand", {})],
        "POST",
        "/inventory/adjustments",
        lambda v: v.inventory_adjustment(
            ADJUSTMENT_BODY, key="adjustment-ADJ-000001", correlation_id=CORRELATION
        ),
        201,
        {"id": like("IA-000001")},
        body={**typed(ADJUSTMENT_BODY), "reason": "cycle_count"},
    ),
    HttpCase(
        "erp",
        "a return receipt is credited and its good units restocked",
        [("return RMA-000001 of order SO-000001 is authorised", {})],
        "POST",
        "/returns/RMA-000001/disposition",
        lambda v: v.return_disposition(
            "RMA-000001",
            DISPOSITION_BODY,
            key="disposition-RR-000001",
            correlation_id=CORRELATION,
        ),
        201,
        {"id": like("CM-000001")},
        body={
            "receipt_id": like("RR-000001"),
            "lines": match.each_like(typed(DISPOSITION_BODY["lines"][0])),
        },
    ),
    HttpCase(
        "erp",
        "a second disposition of one return receipt is refused as already done",
        [
            ("return RMA-000001 of order SO-000001 is authorised", {}),
            ("return receipt RR-000001 of RMA-000001 is credited", {}),
        ],
        "POST",
        "/returns/RMA-000001/disposition",
        lambda v: v.return_disposition(
            "RMA-000001",
            DISPOSITION_BODY,
            key="disposition-RR-000001-again",
            correlation_id=CORRELATION,
        ),
        409,
        error("already_disposed"),
        body={
            "receipt_id": "RR-000001",
            "lines": match.each_like(typed(DISPOSITION_BODY["lines"][0])),
        },
        verdict=Verdict.DONE,
    ),
    HttpCase(
        "erp",
        "a transfer's goods issue is posted when its shipping site shipped it",
        [(RELEASED, {"qty": 5})],
        "POST",
        "/transfers/TO-000001/goods-issue",
        lambda v: v.transfer_issue(
            "TO-000001", MOVED_BODY, key="transfer-issue-WT-000001", correlation_id=CORRELATION
        ),
        201,
        {"id": like("TI-000001")},
        body=MOVED_REQUEST,
    ),
    HttpCase(
        "erp",
        "a second goods issue of a transfer is as good as done",
        [(IN_TRANSIT, {"qty": 5})],
        "POST",
        "/transfers/TO-000001/goods-issue",
        lambda v: v.transfer_issue(
            "TO-000001", MOVED_BODY, key="transfer-issue-WT-000001", correlation_id=CORRELATION
        ),
        409,
        error("already_issued"),
        body=MOVED_REQUEST,
        verdict=Verdict.DONE,
    ),
    HttpCase(
        "erp",
        "a transfer's goods receipt is posted when its receiving site counted it in",
        [(IN_TRANSIT, {"qty": 5})],
        "POST",
        "/transfers/TO-000001/goods-receipt",
        lambda v: v.transfer_receipt(
            "TO-000001", MOVED_BODY, key="transfer-receipt-WT-000001", correlation_id=CORRELATION
        ),
        201,
        {"id": like("TR-000001")},
        body=MOVED_REQUEST,
    ),
    HttpCase(
        "erp",
        "a transfer's goods receipt that overtook its goods issue is retried",
        [(RELEASED, {"qty": 5})],
        "POST",
        "/transfers/TO-000001/goods-receipt",
        lambda v: v.transfer_receipt(
            "TO-000001", MOVED_BODY, key="transfer-receipt-WT-000001", correlation_id=CORRELATION
        ),
        409,
        error("invalid_status", status="released"),
        body=MOVED_REQUEST,
        verdict=Verdict.RETRY,
    ),
    HttpCase(
        "erp",
        "a goods receipt is posted",
        [("SKU A-100 has 10 on hand", {})],
        "POST",
        "/goods-receipts",
        lambda v: v.goods_receipt(
            RECEIPT_BODY, key="receipt-RC-000001", correlation_id=CORRELATION
        ),
        201,
        {"id": like("GR-000001")},
        body={"reference": like("RC-000001"), "lines": match.each_like(RECEIPT_BODY["lines"][0])},
    ),
]


def subscribe(system: str, events: list[str]) -> HttpCase:
    """The stack subscribes to the events it consumes at start-up (``subscriptions.py``)."""
    body = {"url": f"http://127.0.0.1:8000/webhooks/{system}", "events": events, "secret": "s3"}
    return HttpCase(
        system,
        "the stack subscribes to the events it consumes",
        [],
        "POST",
        "/webhooks",
        lambda v: v.request(system, "POST", "/webhooks", body=body, correlation_id="subscribe"),
        201,
        {"id": like("WH-0001")},
        body={"url": like(body["url"]), "events": events, "secret": like("s3")},
        keyed=False,
    )


def list_subscriptions(system: str) -> HttpCase:
    return HttpCase(
        system,
        "the stack lists its subscriptions to drop stale ones",
        [],
        "GET",
        "/webhooks",
        lambda v: v.request(system, "GET", "/webhooks", correlation_id="subscribe"),
        200,
        {"items": []},
        keyed=False,
    )


def drop_subscription(system: str) -> HttpCase:
    """A restarted stack drops the subscription its earlier run left behind."""
    return HttpCase(
        system,
        "the stack drops a stale subscription",
        [("webhook subscription WH-0009 exists", {})],
        "DELETE",
        "/webhooks/WH-0009",
        lambda v: v.request(system, "DELETE", "/webhooks/WH-0009", correlation_id="subscribe"),
        204,
        keyed=False,
    )


def _subscriptions() -> list[HttpCase]:
    from reference_stack.handlers import CONSUMED

    cases: list[HttpCase] = []
    for system, events in CONSUMED.items():
        cases += [subscribe(system, events), list_subscriptions(system), drop_subscription(system)]
    return cases


ERP += [
    HttpCase(
        "erp",
        "an item's case size is read from the item master",
        [("item N-1 is in the item master", {"uom": "CS", "each_per_case": 6})],
        "GET",
        "/items/N-1",
        lambda v: v.item("N-1", correlation_id=CORRELATION),
        200,
        {"sku": like("N-1"), "each_per_case": like(6)},
        keyed=False,
    ),
]

HTTP: list[HttpCase] = [*WMS, *TMS, *CARRIER, *ERP, *_subscriptions()]

# -- webhook events --------------------------------------------------------------------------
ITEM_FIELDS = {**ITEM_BODY, "uom": "CS"}
ORDER = {
    "id": "SO-000001",
    "ship_to": SHIP_TO,
    "service_level": "standard",
    "lines": match.each_like({"line": 1, "sku": "A-100", "qty": 3, "uom": "EA"}),
}

MESSAGES: list[MessageCase] = [
    MessageCase(
        "erp",
        "an order.released event",
        [("order SO-000001 is released", {})],
        "order.released",
        typed(ORDER) | {"lines": ORDER["lines"]},
        ["create_fulfilment_order"],
    ),
    MessageCase(
        "erp",
        "an item.created event",
        [("item N-1 is created", {})],
        "item.created",
        {**typed(ITEM_FIELDS), "sku": like("N-1"), "version": like(1)},
        ["sync_item"],
    ),
    MessageCase(
        "erp",
        "an item.changed event",
        [("item N-1 is changed", {})],
        "item.changed",
        {**typed(ITEM_FIELDS), "sku": like("N-1"), "version": like(2)},
        ["sync_item"],
    ),
    MessageCase(
        "erp",
        "an order.cancelled event",
        [("order SO-000001 is cancelled", {})],
        "order.cancelled",
        {"order_id": like("SO-000001")},
        [],  # nothing was sent to the WMS yet, so there is nothing to cancel there
    ),
    MessageCase(
        "erp",
        "an order.updated event with a new ship-to",
        [("order SO-000001 has a new ship-to", {})],
        "order.updated",
        {
            "order_id": like("SO-000001"),
            "changed": ["ship_to"],
            "ship_to": typed(SHIP_TO),
            "updated_at": like("2026-11-02T09:00:00Z"),
        },
        ["change_fulfilment_address"],
    ),
    MessageCase(
        "erp",
        "a transfer.released event",
        [("transfer TO-000001 from DC1 to DC2 is released", {"qty": 5})],
        "transfer.released",
        {
            "id": like("TO-000001"),
            "from_site": like("DC1"),
            "to_site": like("DC2"),
            "lines": match.each_like({"line": 1, "sku": "A-100", "qty": 5}),
        },
        ["create_transfer"],
    ),
    MessageCase(
        "wms",
        "an order.picked event for an order picked short",
        [("fulfilment order FO-000001 for SO-000001 is picked short", {"qty": 1})],
        "order.picked",
        {
            "order_ref": like("SO-000001"),
            "fulfilment_order_id": like("FO-000001"),
            "lines": match.each_like({"line": 1, "picked_qty": 0, "short_qty": 1}),
        },
        ["goods_issue"],  # nothing picked: a zero goods issue backorders the order
    ),
    MessageCase(
        "wms",
        "an order.packed event",
        [("fulfilment order FO-000001 for SO-000001 is packed", {})],
        "order.packed",
        {
            "order_ref": like("SO-000001"),
            "fulfilment_order_id": like("FO-000001"),
            "ship_to": typed(SHIP_TO),
            "service_level": like("standard"),
            "packages": match.each_like(
                {"weight_kg": 1.4, "contents": match.each_like({"sku": "A-100", "qty": 3})}
            ),
        },
        ["plan_shipment"],
    ),
    MessageCase(
        "wms",
        "an order.shipped event",
        [("fulfilment order FO-000001 for SO-000001 is shipped", {})],
        "order.shipped",
        {
            "order_ref": like("SO-000001"),
            "fulfilment_order_id": like("FO-000001"),
            "lines": match.each_like({"line": 1, "qty": 3}),
            "tracking_number": like("PC000000001"),
            "carrier": like("parcelco"),
        },
        ["goods_issue"],
    ),
    MessageCase(
        "wms",
        "an inventory.adjusted event",
        [("SKU A-100 was adjusted by -2", {})],
        "inventory.adjusted",
        {
            "adjustment_id": like("ADJ-000001"),
            "sku": like("A-100"),
            "delta": like(-2),
            "reason": like("cycle_count"),
        },
        ["inventory_adjustment"],
    ),
    MessageCase(
        "wms",
        "a receipt.confirmed event",
        [("receipt RC-000001 is confirmed", {})],
        "receipt.confirmed",
        {"receipt_id": like("RC-000001"), "lines": match.each_like({"sku": "A-100", "qty": 3})},
        ["goods_receipt"],
    ),
    MessageCase(
        "wms",
        "a return.received event",
        [("return RR-000001 of RMA-000001 for SO-000001 is received", {})],
        "return.received",
        {
            "receipt_id": like("RR-000001"),
            "rma_id": like("RMA-000001"),
            "order_ref": like("SO-000001"),
            "lines": match.each_like(
                {
                    "line": 1,
                    "sku": "A-100",
                    "qty": 3,
                    "condition": match.regex("restock", regex="^(restock|damaged|scrap)$"),
                }
            ),
        },
        ["return_disposition"],
    ),
    MessageCase(
        "wms",
        "a transfer.shipped event",
        [("transfer WT-000001 for TO-000001 is shipped", {})],
        "transfer.shipped",
        {
            "transfer_id": like("WT-000001"),
            "transfer_ref": like("TO-000001"),
            "lines": match.each_like({"line": 1, "qty": 3}),
        },
        ["transfer_issue"],
    ),
    MessageCase(
        "wms",
        "a transfer.received event",
        [("transfer WT-000001 for TO-000001 is received", {})],
        "transfer.received",
        {
            "transfer_id": like("WT-000001"),
            "transfer_ref": like("TO-000001"),
            "lines": match.each_like({"line": 1, "qty": 3}),
        },
        ["transfer_receipt"],
    ),
    MessageCase(
        "tms",
        "a freight.settled event",
        [("shipment SH-000001 for SO-000001 is settled", {})],
        "freight.settled",
        {
            "shipment_id": like("SH-000001"),
            "order_ref": like("SO-000001"),
            "amount": typed({"amount": "5.40", "currency": "EUR"}),
        },
        ["freight_accrual"],
    ),
    MessageCase(
        "carrier",
        "a tracking.updated event",
        [("parcel PC000000001 is picked up", {})],
        "tracking.updated",
        {
            "tracking_number": "PC000000001",
            "status": like("picked_up"),
            "occurred_at": like("2026-11-02T16:00:00Z"),
            "sequence": like(1),
        },
        ["post_tracking"],
        known_parcels={"PC000000001": "SO-000001"},
    ),
]


def envelope(case: MessageCase) -> dict[str, Any]:
    """The webhook envelope: the stack reads ``id``, ``type`` and ``data``."""
    return {"id": like("EV-0001"), "type": case.event_type, "data": case.data}
