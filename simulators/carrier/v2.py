"""ParcelCo carrier API 2.0 (contracts/openapi/carrier.v2.yaml): the same carrier, new words.

The model is untouched by the upgrade; this module translates 2.0 requests into its calls
and its labels into 2.0 answers. What 2.0 breaks for a 1.x client, and how:

- ``label_format`` is required and ``service: ground`` is called ``standard``: a 1.x request
  is refused with ``422 validation_failed``, each field named with what 2.0 wants instead;
- labels say ``tracking_id`` (not ``tracking_number``), no longer embed ``events``, and give
  ``cost.amount`` as an integer in minor units;
- a body that is not a JSON object is ``422 malformed_json`` (1.x answered 400).

``tracking.updated`` webhooks are unchanged in 2.0 (the model emits them as 1.0 did).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field

from simulators.carrier.model import Label
from simulators.carrier.wire import (
    Face,
    LabelFormat,
    Parcel,
    Purchase,
    Reference,
    label_url,
    purchase_of,
)
from simulators.common.errors import SimError
from simulators.common.http import validate
from simulators.common.schemas import Address, Body, NonEmpty

SERVICES = {"standard": "ground", "express": "express"}  # 2.0 -> model
SERVICE_NAMES = {model: name for name, model in SERVICES.items()}  # model -> 2.0
MINOR_UNITS = Decimal(100)  # every ParcelCo price is in EUR: two decimals


class LabelRequest(Body):
    shipment_ref: NonEmpty
    service: Literal["standard", "express"]
    label_format: LabelFormat
    reference: Reference | None = None
    ship_to: Address
    packages: Annotated[list[Parcel], Field(min_length=1, max_length=50)]


def purchase(data: dict[str, Any]) -> Purchase:
    try:
        body = validate(LabelRequest, data)
    except SimError as refusal:
        _explain_upgrade(refusal, data)
        raise
    return purchase_of(body, SERVICES[body.service])


def _explain_upgrade(refusal: SimError, data: dict[str, Any]) -> None:
    """Say what 2.0 wants where a 1.x request differs, as a vendor's migration errors do."""
    for error in refusal.details.get("errors", ()):
        if error["field"] == "label_format" and "label_format" not in data:
            error["message"] = "required since API 2.0: pdf or zpl"
        elif error["field"] == "service" and data.get("service") == "ground":
            error["message"] = "ground is called standard since API 2.0"


def minor_units(cost: dict[str, str]) -> dict[str, Any]:
    """``{"amount": "5.40", "currency": "EUR"}`` -> ``{"amount": 540, "currency": "EUR"}``."""
    amount = Decimal(cost["amount"]) * MINOR_UNITS
    return {"amount": int(amount.to_integral_value()), "currency": cost["currency"]}


def label_answer(label: Label) -> dict[str, Any]:
    full = label.to_dict()
    return {
        "id": label.id,
        "tracking_id": label.tracking_number,
        "shipment_ref": label.shipment_ref,
        "service": SERVICE_NAMES[label.service],
        "label_format": label.label_format,
        "label_url": label_url(label),
        "reference": label.reference,
        "ship_to": full["ship_to"],
        "packages": full["packages"],
        "cost": minor_units(label.cost),
        "status": label.status,
        "created_at": label.created_at,
    }


def tracking_answer(label: Label) -> dict[str, Any]:
    page = label.tracking()
    return {"tracking_id": label.tracking_number, "status": label.status, "events": page["events"]}


FACE = Face("v2", purchase, label_answer, tracking_answer, lists_labels=True, malformed_status=422)
