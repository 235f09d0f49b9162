"""The carrier's HTTP face: buy, read and void labels; look a parcel up by tracking number.

Scans have no public route: the world drives them in process, as the carrier's vans would.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.carrier.model import CarrierModel
from simulators.common.clock import Clock
from simulators.common.http import parse_body, resource, respond, set_ref
from simulators.common.schemas import Address, Body, NonEmpty
from simulators.common.simulator import Simulator

# Strict: a weight or qty sent as a string is a client bug the contract must surface.
Kilograms = Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1, le=1_000_000, strict=True)]


class Item(Body):
    sku: NonEmpty
    qty: Count


class Parcel(Body):
    weight_kg: Kilograms
    contents: Annotated[list[Item], Field(max_length=100)]


class LabelRequest(Body):
    shipment_ref: NonEmpty
    service: Literal["ground", "express"]
    ship_to: Address
    packages: Annotated[list[Parcel], Field(min_length=1, max_length=50)]


def routes(sim: Simulator) -> list[Route]:
    model: CarrierModel = sim.model  # type: ignore[assignment]

    async def buy(request: Request) -> Response:
        body = await parse_body(request, LabelRequest)
        set_ref(request, body.shipment_ref)
        label = model.create_label(
            body.shipment_ref,
            body.service,
            body.ship_to.to_dict(),
            [p.model_dump() for p in body.packages],
        )
        return respond(label.to_dict(), 201)

    async def read(request: Request) -> Response:
        label = model.get(request.path_params["label_id"])
        set_ref(request, label.shipment_ref)
        return respond(label.to_dict())

    async def void(request: Request) -> Response:
        label = model.get(request.path_params["label_id"])
        set_ref(request, label.shipment_ref)
        return respond(model.void(label.id).to_dict())

    async def track(request: Request) -> Response:
        label = model.track(request.path_params["tracking_number"])
        set_ref(request, label.shipment_ref)
        return respond(label.tracking())

    return [
        resource("/labels", {"POST": sim.idempotent(buy)}),
        resource("/labels/{label_id}", {"GET": read}),
        resource("/labels/{label_id}/void", {"POST": void}),
        resource("/tracking/{tracking_number}", {"GET": track}),
    ]


def build(clock: Clock, **options: Any) -> Simulator:
    """The carrier simulator. Carriers always honour Idempotency-Key, so no option turns it off;
    the options the harness gives every system (such as ``stock``) are not its own: ignored.
    """
    return Simulator(CarrierModel(clock), routes, honour_idempotency=True)
