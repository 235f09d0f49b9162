"""The WMS's HTTP face: fulfilment orders in, labels on, physical stock out.

Routes follow the WMS table of docs/choreography.md; ``/webhooks`` and ``/_sim/`` come from
``Simulator``. ``contracts/openapi/wms.yaml`` describes every route here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.common import changes
from simulators.common.clock import Clock
from simulators.common.errors import not_found
from simulators.common.feed_faults import feed_view
from simulators.common.http import parse_body, resource, respond, set_ref
from simulators.common.schemas import Address, Body, NonEmpty, Qty
from simulators.common.simulator import Simulator
from simulators.common.sites import DEFAULT_SITE
from simulators.wms.model import FulfilmentOrder, WmsModel

ORDER_FEED = "wms.fulfilment-orders"  # the feed the order list's page tokens belong to
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
CHANGE_PARAMS = ("updated_since", "page_token", "limit")  # any of them: the list in change order

# Every documented path and its methods; any other method gets a 405 with ``Allow``.


class WmsBody(Body):
    """Strict types: ``"3"`` is not a quantity, as the published schema says."""

    model_config = ConfigDict(strict=True)


class OrderLine(WmsBody):
    line: Annotated[int, Field(ge=1, le=9999)]
    sku: NonEmpty
    qty: Qty


class FulfilmentOrderRequest(WmsBody):
    order_ref: NonEmpty
    ship_to: Address
    service_level: Literal["standard", "express"]
    lines: Annotated[list[OrderLine], Field(min_length=1)]
    site: NonEmpty | None = None  # the facility; none: the default site


class TransferRequest(WmsBody):
    transfer_ref: NonEmpty
    from_site: NonEmpty
    to_site: NonEmpty
    lines: Annotated[list[OrderLine], Field(min_length=1)]


class ShipToChange(WmsBody):
    ship_to: Address


class ItemRequest(WmsBody):
    description: NonEmpty
    weight_kg: Annotated[float, Field(gt=0, le=10_000)]
    active: bool
    each_per_case: Annotated[int, Field(ge=1, le=100_000)]


class LabelRequest(WmsBody):
    tracking_number: NonEmpty
    carrier: NonEmpty
    label_id: NonEmpty


def _order(request: Request, model: WmsModel) -> FulfilmentOrder:
    """The order the path names; its ERP ref goes into the journal."""
    fo = model.get(request.path_params["fo_id"])
    set_ref(request, fo.order_ref)
    return fo


def _change_key(fo: FulfilmentOrder) -> changes.Key:
    return (fo.changed_at, fo.id)


def _changed(request: Request, model: WmsModel) -> Response:
    """The list in change order, ``updated_since`` inclusive; the next page is in a ``Link``
    header (``rel="next"``), as Shopify and GitHub page, so the v1 body stays as it was."""
    view = feed_view(request, model.clock)
    query = changes.read_query(
        request,
        ORDER_FEED,
        view,
        filters={"order_ref": request.query_params.get("order_ref")},
        default_limit=DEFAULT_LIMIT,
        max_limit=MAX_LIMIT,
    )
    page = changes.page(
        model.find(query.filters.get("order_ref")), _change_key, query, view, ORDER_FEED
    )
    headers = {}
    if page.next_token is not None:
        params = {"page_token": page.next_token}
        if "limit" in request.query_params:
            params["limit"] = str(query.limit)
        headers["link"] = f'<{request.url.replace_query_params(**params)}>; rel="next"'
    items = [changes.restamp(fo.to_dict(), view, "status_history", -1, "at") for fo in page.items]
    return respond({"items": items}, headers=headers)


def routes(sim: Simulator) -> list[Route]:
    model = cast(WmsModel, sim.model)

    async def create_order(request: Request) -> Response:
        body = await parse_body(request, FulfilmentOrderRequest)
        set_ref(request, body.order_ref)
        lines = [line.model_dump() for line in body.lines]
        fo = model.create_order(
            body.order_ref, body.ship_to.to_dict(), body.service_level, lines, site=body.site
        )
        return respond(fo.to_dict(), 201)

    async def create_transfer(request: Request) -> Response:
        body = await parse_body(request, TransferRequest)
        set_ref(request, body.transfer_ref)
        lines = [line.model_dump() for line in body.lines]
        transfer = model.create_transfer(body.transfer_ref, body.from_site, body.to_site, lines)
        return respond(transfer.to_dict(), 201)

    async def list_transfers(request: Request) -> Response:
        found = model.transfers.find(request.query_params.get("transfer_ref"))
        return respond({"items": [t.to_dict() for t in found]})

    async def get_transfer(request: Request) -> Response:
        transfer = model.transfers.get(request.path_params["transfer_id"])
        set_ref(request, transfer.transfer_ref)
        return respond(transfer.to_dict())

    async def list_orders(request: Request) -> Response:
        if any(name in request.query_params for name in CHANGE_PARAMS):
            return _changed(request, model)
        found = model.find(request.query_params.get("order_ref"))  # v1: all, oldest first
        return respond({"items": [fo.to_dict() for fo in found]})

    async def get_order(request: Request) -> Response:
        return respond(_order(request, model).to_dict())

    async def change_order(request: Request) -> Response:
        fo = _order(request, model)
        body = await parse_body(request, ShipToChange)
        return respond(model.change_ship_to(fo.id, body.ship_to.to_dict()).to_dict())

    async def cancel_order(request: Request) -> Response:
        fo = _order(request, model)
        return respond(model.cancel(fo.id).to_dict())

    async def attach_label(request: Request) -> Response:
        fo = _order(request, model)
        body = await parse_body(request, LabelRequest)
        fo = model.attach_label(fo.id, body.tracking_number, body.carrier, body.label_id)
        return respond(fo.to_dict())

    async def get_return_receipt(request: Request) -> Response:
        receipt = model.return_receipt(request.path_params["receipt_id"])
        set_ref(request, receipt["order_ref"])
        return respond(receipt)

    async def get_item(request: Request) -> Response:
        sku = request.path_params["sku"]
        set_ref(request, sku)
        return respond(model.item(sku))

    async def put_item(request: Request) -> Response:
        sku = request.path_params["sku"]
        set_ref(request, sku)
        body = await parse_body(request, ItemRequest)
        item, created = model.put_item(
            sku, body.description, body.weight_kg, body.active, body.each_per_case
        )
        return respond(item, 201 if created else 200)

    async def list_inventory(request: Request) -> Response:
        _, stock = _site_stock(request, model)
        items = [{"sku": sku, "on_hand": qty} for sku, qty in sorted(stock.items())]
        return respond({"items": items})

    async def get_inventory(request: Request) -> Response:
        sku = request.path_params["sku"]
        set_ref(request, sku)
        _, stock = _site_stock(request, model)
        if sku not in stock:
            model.on_hand(sku)  # the vendor's 404
        return respond({"sku": sku, "on_hand": stock[sku]})

    return [
        resource("/fulfilment-orders", {"POST": sim.idempotent(create_order), "GET": list_orders}),
        resource("/fulfilment-orders/{fo_id}", {"GET": get_order, "PATCH": change_order}),
        resource("/fulfilment-orders/{fo_id}/cancel", {"POST": cancel_order}),
        resource("/fulfilment-orders/{fo_id}/label", {"POST": attach_label}),
        resource("/return-receipts/{receipt_id}", {"GET": get_return_receipt}),
        resource("/items/{sku}", {"GET": get_item, "PUT": put_item}),
        resource("/transfers", {"POST": sim.idempotent(create_transfer), "GET": list_transfers}),
        resource("/transfers/{transfer_id}", {"GET": get_transfer}),
        resource("/inventory", {"GET": list_inventory}),
        resource("/inventory/{sku}", {"GET": get_inventory}),
    ]


def _site_stock(request: Request, model: WmsModel) -> tuple[str, dict[str, int]]:
    """``?site=`` names the facility (none: the default); an unknown one is a 404."""
    site = request.query_params.get("site") or DEFAULT_SITE
    if site not in model.sites.by_site:
        raise not_found("site", site)
    return site, model.sites.by_site[site]


def build(
    clock: Clock, *, stock: dict[str, int] | None = None, dedupe: bool = False, **options: Any
) -> Simulator:
    """A WMS simulator; ``dedupe`` makes it honour Idempotency-Key, as few real WMSs do.

    ``options`` are accepted (and unused) so one option set can be handed to every system.
    """
    return Simulator(WmsModel(clock, stock), routes, honour_idempotency=dedupe)
