"""The TMS's HTTP face: plan a shipment, read it, list what changed, cancel it (settlement
has no public route)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.common import changes
from simulators.common.clock import Clock
from simulators.common.feed_faults import feed_view
from simulators.common.http import parse_body, resource, respond, set_ref
from simulators.common.schemas import Address, Body, NonEmpty
from simulators.common.simulator import Simulator
from simulators.tms.model import Shipment, TmsModel

SHIPMENT_FEED = "tms.shipments"  # the feed the shipment list's page tokens belong to
DEFAULT_LIMIT = 100
MAX_LIMIT = 500

# Strict: a weight sent as the string "2.5" is a client bug the contract must surface.
Kilograms = Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]


class Package(Body):
    weight_kg: Kilograms


class PlanRequest(Body):
    order_ref: NonEmpty
    fulfilment_order_id: NonEmpty
    ship_to: Address
    service_level: Literal["standard", "express"]
    packages: Annotated[list[Package], Field(min_length=1, max_length=50)]


def _change_key(shipment: Shipment) -> changes.Key:
    return (shipment.updated_at or shipment.created_at, shipment.id)


def routes(sim: Simulator) -> list[Route]:
    model: TmsModel = sim.model  # type: ignore[assignment]

    async def plan(request: Request) -> Response:
        body = await parse_body(request, PlanRequest)
        set_ref(request, body.order_ref)
        shipment = model.plan(
            body.order_ref,
            body.fulfilment_order_id,
            body.ship_to.to_dict(),
            body.service_level,
            [p.model_dump() for p in body.packages],
        )
        return respond(shipment.to_dict(), 201)

    async def listed(request: Request) -> Response:
        """In change order, ``updated_since`` inclusive, paged by ``page_token``."""
        view = feed_view(request, model.clock)
        query = changes.read_query(
            request,
            SHIPMENT_FEED,
            view,
            filters={},
            default_limit=DEFAULT_LIMIT,
            max_limit=MAX_LIMIT,
        )
        page = changes.page(model.shipments.values(), _change_key, query, view, SHIPMENT_FEED)
        return respond(
            {
                "items": [changes.restamp(s.listed(), view, "updated_at") for s in page.items],
                "next_page_token": page.next_token,
                "has_more": page.has_more,
            }
        )

    async def read(request: Request) -> Response:
        shipment = model.get(request.path_params["shipment_id"])
        set_ref(request, shipment.order_ref)
        return respond(shipment.to_dict())

    async def cancel(request: Request) -> Response:
        shipment = model.get(request.path_params["shipment_id"])
        set_ref(request, shipment.order_ref)
        return respond(model.cancel(shipment.id).to_dict())

    return [
        resource("/shipments", {"POST": sim.idempotent(plan), "GET": listed}),
        resource("/shipments/{shipment_id}", {"GET": read}),
        resource("/shipments/{shipment_id}/cancel", {"POST": cancel}),
    ]


def build(clock: Clock, **options: Any) -> Simulator:
    """The TMS simulator. TMSs always honour Idempotency-Key, so no option turns it off;
    the options the harness gives every system (such as ``stock``) are not its own: ignored.
    """
    return Simulator(TmsModel(clock), routes, honour_idempotency=True)
