"""The carrier's HTTP face: buy, read and void labels; look a parcel up by tracking number.

Scans have no public route: the world drives them in process, as the carrier's vans would.
One simulator speaks one version of ParcelCo's API (``api_version``); the versions differ in
words, not in business, so each is a :class:`~simulators.carrier.wire.Face` over one model.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulators.carrier import v1, v1_1, v2
from simulators.carrier.model import CarrierModel
from simulators.carrier.wire import Face, ReturnLabelRequest
from simulators.common.clock import Clock
from simulators.common.errors import SimError
from simulators.common.http import parse_body, read_json, resource, respond, set_ref
from simulators.common.simulator import Simulator

FACES: dict[str, Face] = {face.version: face for face in (v1.FACE, v1_1.FACE, v2.FACE)}
API_VERSIONS = tuple(FACES)


def face_routes(face: Face, sim: Simulator) -> list[Route]:
    model: CarrierModel = sim.model  # type: ignore[assignment]

    async def buy(request: Request) -> Response:
        purchase = face.purchase(await _body(request, face.malformed_status))
        set_ref(request, purchase.shipment_ref)
        label = model.create_label(
            purchase.shipment_ref,
            purchase.service,
            purchase.ship_to,
            purchase.packages,
            label_format=purchase.label_format,
            reference=purchase.reference,
        )
        return respond(face.label(label), 201)

    async def listed(request: Request) -> Response:
        shipment_ref = request.query_params.get("shipment_ref", "")
        if not 1 <= len(shipment_ref) <= 200:
            raise SimError(
                422,
                "validation_failed",
                "the query is invalid",
                errors=[{"field": "shipment_ref", "message": "required, 1 to 200 characters"}],
            )
        set_ref(request, shipment_ref)
        labels = model.labels_for_shipment(shipment_ref)
        return respond({"items": [face.label(label) for label in labels]})

    async def read(request: Request) -> Response:
        label = model.get(request.path_params["label_id"])
        set_ref(request, label.shipment_ref)
        return respond(face.label(label))

    async def void(request: Request) -> Response:
        label = model.get(request.path_params["label_id"])
        set_ref(request, label.shipment_ref)
        return respond(face.label(model.void(label.id)))

    async def track(request: Request) -> Response:
        label = model.track(request.path_params["tracking_number"])
        set_ref(request, label.shipment_ref)
        return respond(face.tracking(label))

    async def buy_return(request: Request) -> Response:
        body = await parse_body(request, ReturnLabelRequest)
        set_ref(request, body.order_ref)
        packages = [p.model_dump() for p in body.packages]
        label = model.create_return_label(
            body.rma_id, body.order_ref, body.ship_from.to_dict(), packages
        )
        return respond(label.to_dict(), 201)

    async def read_return(request: Request) -> Response:
        label = model.return_label(request.path_params["label_id"])
        set_ref(request, label.order_ref)
        return respond(label.to_dict())

    labels = {"POST": sim.idempotent(buy), **({"GET": listed} if face.lists_labels else {})}
    return [
        resource("/returns/labels", {"POST": sim.idempotent(buy_return)}),
        resource("/returns/labels/{label_id}", {"GET": read_return}),
        resource("/labels", labels),
        resource("/labels/{label_id}", {"GET": read}),
        resource("/labels/{label_id}/void", {"POST": void}),
        resource("/tracking/{tracking_number}", {"GET": track}),
    ]


async def _body(request: Request, malformed_status: int) -> dict[str, Any]:
    """The JSON object sent; a version that answers unusable bodies with 422 says so."""
    try:
        return await read_json(request)
    except SimError as refusal:
        if refusal.status == malformed_status:
            raise
        raise SimError(malformed_status, refusal.code, refusal.message, **refusal.details) from None


def build(
    clock: Clock,
    *,
    api_version: str = "v1",
    scan_time_zone: str | None = None,
    scan_time_millis: bool = False,
    **options: Any,
) -> Simulator:
    """The carrier simulator serving ``api_version`` (``v1``, ``v1.1`` or ``v2``), stamping
    its scans in ``scan_time_zone`` (an IANA name; None: UTC), to the millisecond when
    ``scan_time_millis``.

    Carriers always honour Idempotency-Key, so no option turns it off; the options the
    harness gives every system (such as ``stock``) are not its own: ignored.
    """
    face = FACES.get(api_version)
    if face is None:
        raise ValueError(
            f"carrier has no API version {api_version!r}; known: {', '.join(API_VERSIONS)}"
        )
    model = CarrierModel(clock, scan_time_zone, scan_time_millis)
    return Simulator(model, partial(face_routes, face), api_version=face.version)
