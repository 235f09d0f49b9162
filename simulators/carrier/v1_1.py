"""ParcelCo carrier API 1.1 (contracts/openapi/carrier.v1.1.yaml): 1.0 plus additions only.

It accepts 2.0's request fields (``label_format``, ``reference``, ``service: standard``) as
optional, and its labels gain ``label_format``, ``label_url`` and ``reference``: a tolerant
1.0 client keeps working; a strict one meets fields it has never seen.
"""

from __future__ import annotations

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
from simulators.common.http import validate
from simulators.common.schemas import Address, Body, NonEmpty

SERVICES = {"ground": "ground", "standard": "ground", "express": "express"}  # 1.1 -> model


class LabelRequest(Body):
    shipment_ref: NonEmpty
    service: Literal["ground", "standard", "express"]
    label_format: LabelFormat = "pdf"
    reference: Reference | None = None
    ship_to: Address
    packages: Annotated[list[Parcel], Field(min_length=1, max_length=50)]


def purchase(data: dict[str, Any]) -> Purchase:
    body = validate(LabelRequest, data)
    return purchase_of(body, SERVICES[body.service])


def label_answer(label: Label) -> dict[str, Any]:
    """1.0's label with 1.1's additions (1.x answers keep saying ``ground``)."""
    return {
        **label.to_dict(),
        "label_format": label.label_format,
        "label_url": label_url(label),
        "reference": label.reference,
    }


FACE = Face("v1.1", purchase, label_answer, Label.tracking, lists_labels=True)
