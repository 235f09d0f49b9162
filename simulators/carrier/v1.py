"""ParcelCo carrier API 1.0 (contracts/openapi/carrier.yaml): the model's own words.

A 1.0 label is the model's label as it is (``Label.to_dict``); nothing is translated.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from simulators.carrier.model import Label
from simulators.carrier.wire import Face, Parcel, Purchase, purchase_of
from simulators.common.http import validate
from simulators.common.schemas import Address, Body, NonEmpty


class LabelRequest(Body):
    shipment_ref: NonEmpty
    service: Literal["ground", "express"]
    ship_to: Address
    packages: Annotated[list[Parcel], Field(min_length=1, max_length=50)]


def purchase(data: dict[str, Any]) -> Purchase:
    body = validate(LabelRequest, data)
    return purchase_of(body, body.service)


FACE = Face("v1", purchase, Label.to_dict, Label.tracking)
