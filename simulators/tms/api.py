"""The TMS's HTTP face: plan a shipment, read it, cancel it (settlement has no public route)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.common.clock import Clock
from simulators.common.http import parse_body, resource, respond, set_ref
from simulators.common.schemas import Address, Body, NonEmpty
from simulators.common.simulator import Simulator
from simulators.tms.model import TmsModel

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

    async def read(request: Request) -> Response:
        shipment = model.get(request.path_params["shipment_id"])
        set_ref(request, shipment.order_ref)
        return respond(shipment.to_dict())

    async def cancel(request: Request) -> Response:
        shipment = model.get(request.path_params["shipment_id"])
        set_ref(request, shipment.order_ref)
        return respond(model.cancel(shipment.id).to_dict())

    return [
        resource("/shipments", {"POST": sim.idempotent(plan)}),
        resource("/shipments/{shipment_id}", {"GET": read}),
        resource("/shipments/{shipment_id}/cancel", {"POST": cancel}),
    ]


def build(clock: Clock, **options: Any) -> Simulator:
    """The TMS simulator. TMSs always honour Idempotency-Key, so no option turns it off;
    the options the harness gives every system (such as ``stock``) are not its own: ignored.
    """
    return Simulator(TmsModel(clock), routes, honour_idempotency=True)
