"""The ERP's HTTP face: the routes of docs/choreography.md's ERP section over ``ErpModel``.

Handlers only translate: validate the body, call the model, answer with its ``to_dict()``.
Refusals are ``SimError``s the model raises; the simulator turns them into vendor errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, Strict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.common import changes
from simulators.common.clock import Clock
from simulators.common.errors import not_found
from simulators.common.feed_faults import feed_view
from simulators.common.http import Endpoint, parse_body, resource, respond, set_ref
from simulators.common.query import bad_query
from simulators.common.schemas import Address, Body, NonEmpty
from simulators.common.simulator import Simulator
from simulators.common.sites import DEFAULT_SITE
from simulators.erp.model import ORDER_STATUSES, ErpModel, Item, SalesOrder

# Strict: a vendor API refuses "3" or true where it documents an integer.
Qty = Annotated[int, Strict(), Field(ge=1, le=1_000_000)]
IssuedQty = Annotated[int, Strict(), Field(ge=0, le=1_000_000)]
LineNumber = Annotated[int, Strict(), Field(ge=1, le=1_000)]
Delta = Annotated[int, Strict(), Field(ge=-1_000_000, le=1_000_000)]
Sku = Annotated[str, Field(min_length=1, max_length=64)]
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
Timestamp = Annotated[str, Field(pattern=TIMESTAMP_PATTERN)]
MAX_LINES = 100
DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
ORDER_FEED = "erp.orders"  # the feed the order list's page tokens belong to
ITEM_FEED = "erp.items"  # the item list's page tokens


class Customer(Body):
    name: NonEmpty
    email: NonEmpty


Uom = Literal["EA", "CS"]


class OrderLineIn(Body):
    sku: Sku
    qty: Qty
    uom: Uom = "EA"


class CreateOrder(Body):
    customer: Customer
    ship_to: Address
    service_level: Literal["standard", "express"]
    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=MAX_LINES)]
    site: NonEmpty | None = None  # the site to fulfil it; none: the default site


class ShipToChange(Body):
    ship_to: Address


class IssuedLine(Body):
    line: LineNumber
    qty: IssuedQty
    uom: Uom = "EA"


class GoodsIssueIn(Body):
    lines: Annotated[list[IssuedLine], Field(max_length=MAX_LINES)]
    tracking_number: NonEmpty | None = None
    carrier: NonEmpty | None = None
    shipment_id: NonEmpty | None = None


class TrackingIn(Body):
    tracking_number: NonEmpty
    status: Literal["picked_up", "in_transit", "out_for_delivery", "delivered", "exception"]
    occurred_at: Timestamp


class Amount(Body):
    """Money in ASCII digits, as the spec says (the shared ``Money``'s ``\\d`` takes any)."""

    amount: Annotated[str, Field(pattern=r"^-?[0-9]{1,12}(\.[0-9]{1,4})?$")]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class FreightAccrualIn(Body):
    order_id: NonEmpty
    shipment_id: NonEmpty
    amount: Amount


class AdjustmentIn(Body):
    sku: Sku
    delta: Delta
    reason: Literal["cycle_count", "damage", "shrink", "found"]
    reference: NonEmpty | None = None
    site: NonEmpty | None = None


class ReturnLineIn(Body):
    line: LineNumber
    qty: Qty


class ReturnIn(Body):
    order_id: NonEmpty
    lines: Annotated[list[ReturnLineIn], Field(min_length=1, max_length=MAX_LINES)]
    reason: Literal["changed_mind", "wrong_size", "defective", "damaged_in_transit"]
    resolution: Literal["refund", "credit"] = "refund"


class DisposedLine(Body):
    line: LineNumber
    qty: Qty
    restock_qty: IssuedQty


class DispositionIn(Body):
    receipt_id: NonEmpty
    lines: Annotated[list[DisposedLine], Field(min_length=1, max_length=MAX_LINES)]


class ReceiptLine(Body):
    sku: Sku
    qty: Qty


class ReceiptIn(Body):
    reference: NonEmpty
    lines: Annotated[list[ReceiptLine], Field(min_length=1, max_length=MAX_LINES)]
    site: NonEmpty | None = None


class TransferPostingIn(Body):
    """A transfer's goods issue or receipt: the qty per transfer line, and the WMS document."""

    reference: NonEmpty | None = None
    lines: Annotated[list[IssuedLine], Field(max_length=MAX_LINES)]


def _dump_lines(lines: list[Any]) -> list[dict[str, Any]]:
    return [line.model_dump() for line in lines]


def _order_id(request: Request) -> str:
    """The path's order id, named for the journal before anything can refuse."""
    order_id: str = request.path_params["order_id"]
    set_ref(request, order_id)
    return order_id


def _status_filter(request: Request) -> str | None:
    status = request.query_params.get("status")
    if status is not None and status not in ORDER_STATUSES:
        raise bad_query("status", f"status must be one of {', '.join(ORDER_STATUSES)}")
    return status


def _change_key(order: SalesOrder) -> changes.Key:
    return (order.updated_at or order.created_at, order.id)


def _item_change_key(item: Item) -> changes.Key:
    return (item.updated_at, item.sku)


class ErpHandlers:
    """One endpoint per operation; each validates, calls the model and answers its dict."""

    def __init__(self, model: ErpModel) -> None:
        self.model = model

    async def create_order(self, request: Request) -> Response:
        body = await parse_body(request, CreateOrder)
        order = self.model.create_order(
            body.customer.model_dump(),
            body.ship_to.to_dict(),
            body.service_level,
            _dump_lines(body.lines),
            site=body.site,
        )
        set_ref(request, order.id)
        return respond(order.to_dict(), 201)

    async def list_orders(self, request: Request) -> Response:
        """In change order, ``updated_since`` inclusive, paged by ``page_token``."""
        view = feed_view(request, self.model.clock)
        query = changes.read_query(
            request,
            ORDER_FEED,
            view,
            filters={"status": _status_filter(request)},
            default_limit=DEFAULT_LIMIT,
            max_limit=MAX_LIMIT,
        )
        status = query.filters.get("status")
        found = (o for o in self.model.orders.values() if status is None or o.status == status)
        page = changes.page(found, _change_key, query, view, ORDER_FEED)
        return respond(
            {
                "items": [changes.restamp(o.to_dict(), view, "updated_at") for o in page.items],
                "next_page_token": page.next_token,
                "has_more": page.has_more,
            }
        )

    async def get_order(self, request: Request) -> Response:
        return respond(self.model.order(_order_id(request)).to_dict())

    async def change_order(self, request: Request) -> Response:
        order_id = _order_id(request)
        self.model.order(order_id)  # an unknown order is a 404 whatever the body says
        body = await parse_body(request, ShipToChange)
        return respond(self.model.change_ship_to(order_id, body.ship_to.to_dict()).to_dict())

    async def release(self, request: Request) -> Response:
        return respond(self.model.release(_order_id(request)).to_dict())

    async def cancel(self, request: Request) -> Response:
        return respond(self.model.cancel(_order_id(request)).to_dict())

    async def goods_issue(self, request: Request) -> Response:
        order_id = _order_id(request)
        self.model.order(order_id)  # an unknown order is a 404 whatever the body says
        body = await parse_body(request, GoodsIssueIn)
        gi = self.model.goods_issue(
            order_id, _dump_lines(body.lines), body.tracking_number, body.carrier, body.shipment_id
        )
        return respond(gi.to_dict(), 201)

    async def tracking(self, request: Request) -> Response:
        order_id = _order_id(request)
        self.model.order(order_id)
        body = await parse_body(request, TrackingIn)
        order = self.model.post_tracking(
            order_id, body.tracking_number, body.status, body.occurred_at
        )
        return respond(order.to_dict())

    async def get_backorder(self, request: Request) -> Response:
        backorder = self.model.backorder(request.path_params["backorder_id"])
        set_ref(request, backorder.order_id)
        return respond(backorder.to_dict())

    async def accrue_freight(self, request: Request) -> Response:
        body = await parse_body(request, FreightAccrualIn)
        set_ref(request, body.order_id)
        accrual = self.model.accrue_freight(
            body.order_id, body.shipment_id, body.amount.model_dump()
        )
        return respond(accrual.to_dict(), 201)

    async def adjust_inventory(self, request: Request) -> Response:
        body = await parse_body(request, AdjustmentIn)
        set_ref(request, body.sku)
        adjustment = self.model.adjust_inventory(
            body.sku, body.delta, body.reason, body.reference, body.site
        )
        return respond(adjustment.to_dict(), 201)

    async def receive_goods(self, request: Request) -> Response:
        body = await parse_body(request, ReceiptIn)
        set_ref(request, body.reference)
        receipt = self.model.receive_goods(body.reference, _dump_lines(body.lines), body.site)
        return respond(receipt.to_dict(), 201)

    async def authorise_return(self, request: Request) -> Response:
        body = await parse_body(request, ReturnIn)
        set_ref(request, body.order_id)
        rma = self.model.authorise_return(
            body.order_id, _dump_lines(body.lines), body.reason, body.resolution
        )
        return respond(rma.to_dict(), 201)

    async def get_return(self, request: Request) -> Response:
        rma = self.model.return_authorisation(request.path_params["rma_id"])
        set_ref(request, rma.order_id)
        return respond(rma.to_dict())

    async def dispose_return(self, request: Request) -> Response:
        rma = self.model.return_authorisation(request.path_params["rma_id"])
        set_ref(request, rma.order_id)  # an unknown RMA is a 404 whatever the body says
        body = await parse_body(request, DispositionIn)
        memo = self.model.dispose_return(rma.id, body.receipt_id, _dump_lines(body.lines))
        return respond(memo.to_dict(), 201)

    async def list_items(self, request: Request) -> Response:
        """The item master in change order, paged as the order list is."""
        view = feed_view(request, self.model.clock)
        query = changes.read_query(
            request, ITEM_FEED, view, filters={}, default_limit=DEFAULT_LIMIT, max_limit=MAX_LIMIT
        )
        page = changes.page(self.model.items.values(), _item_change_key, query, view, ITEM_FEED)
        return respond(
            {
                "items": [changes.restamp(i.to_dict(), view, "updated_at") for i in page.items],
                "next_page_token": page.next_token,
                "has_more": page.has_more,
            }
        )

    async def get_item(self, request: Request) -> Response:
        sku: str = request.path_params["sku"]
        set_ref(request, sku)
        return respond(self.model.item(sku).to_dict())

    async def get_transfer(self, request: Request) -> Response:
        transfer = self.model.transfers.get(request.path_params["transfer_id"])
        set_ref(request, transfer.id)
        return respond(transfer.to_dict())

    async def transfer_issue(self, request: Request) -> Response:
        transfer = self.model.transfers.get(request.path_params["transfer_id"])
        set_ref(request, transfer.id)  # an unknown transfer is a 404 whatever the body says
        body = await parse_body(request, TransferPostingIn)
        posting = self.model.transfers.issue(transfer.id, body.reference, _dump_lines(body.lines))
        return respond(posting.to_dict(), 201)

    async def transfer_receipt(self, request: Request) -> Response:
        transfer = self.model.transfers.get(request.path_params["transfer_id"])
        set_ref(request, transfer.id)
        body = await parse_body(request, TransferPostingIn)
        posting = self.model.transfers.receive(transfer.id, body.reference, _dump_lines(body.lines))
        return respond(posting.to_dict(), 201)

    async def list_inventory(self, request: Request) -> Response:
        _, stock = self._site_stock(request)
        items = [{"sku": sku, "on_hand": n} for sku, n in stock.items()]
        return respond({"items": items})

    async def get_inventory(self, request: Request) -> Response:
        sku: str = request.path_params["sku"]
        set_ref(request, sku)
        _, stock = self._site_stock(request)
        self.model.on_hand(sku)  # an unknown SKU is a 404
        return respond({"sku": sku, "on_hand": stock[sku]})

    def _site_stock(self, request: Request) -> tuple[str, dict[str, int]]:
        """Book stock of the site ``?site=`` names (none: the default); unknown: 404."""
        site = request.query_params.get("site") or DEFAULT_SITE
        if site not in self.model.sites.by_site:
            raise not_found("site", site)
        return site, self.model.sites.by_site[site]


def routes(sim: Simulator) -> list[Route]:
    """The ERP's business routes; every POST and PATCH honours ``Idempotency-Key``."""
    h = ErpHandlers(sim.model)  # type: ignore[arg-type]

    idem = sim.idempotent

    table: dict[str, dict[str, Endpoint]] = {
        "/orders": {"POST": idem(h.create_order), "GET": h.list_orders},
        "/orders/{order_id}": {"GET": h.get_order, "PATCH": idem(h.change_order)},
        "/orders/{order_id}/release": {"POST": idem(h.release)},
        "/orders/{order_id}/cancel": {"POST": idem(h.cancel)},
        "/orders/{order_id}/goods-issue": {"POST": idem(h.goods_issue)},
        "/orders/{order_id}/tracking": {"POST": idem(h.tracking)},
        "/backorders/{backorder_id}": {"GET": h.get_backorder},
        "/freight-accruals": {"POST": idem(h.accrue_freight)},
        "/inventory/adjustments": {"POST": idem(h.adjust_inventory)},
        "/goods-receipts": {"POST": idem(h.receive_goods)},
        "/returns": {"POST": idem(h.authorise_return)},
        "/returns/{rma_id}": {"GET": h.get_return},
        "/returns/{rma_id}/disposition": {"POST": idem(h.dispose_return)},
        "/items": {"GET": h.list_items},
        "/items/{sku}": {"GET": h.get_item},
        "/transfers/{transfer_id}": {"GET": h.get_transfer},
        "/transfers/{transfer_id}/goods-issue": {"POST": idem(h.transfer_issue)},
        "/transfers/{transfer_id}/goods-receipt": {"POST": idem(h.transfer_receipt)},
        "/inventory": {"GET": h.list_inventory},
        "/inventory/{sku}": {"GET": h.get_inventory},
    }
    return [resource(path, handlers) for path, handlers in table.items()]


def build(
    clock: Clock, *, stock: dict[str, int] | None = None, line_step: int = 1, **options: Any
) -> Simulator:
    """An ERP simulator; ``stock`` is the catalogue and its book stock per SKU; an order's
    lines are numbered in steps of ``line_step`` (10: 10, 20, 30, as SAP numbers them).

    ERPs always honour ``Idempotency-Key``, so no option turns it off; others are ignored.
    """
    return Simulator(ErpModel(clock, stock, line_step), routes, honour_idempotency=True)
