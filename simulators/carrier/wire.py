"""What every version of the carrier's HTTP face shares: request pieces and the face itself.

A :class:`Face` is one version of ParcelCo's API over the one model: how it reads a label
request and how it writes labels and tracking. ``api.py`` serves whichever face it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from simulators.carrier.model import Label
from simulators.common.schemas import Address, Body, NonEmpty

# Strict: a weight or qty sent as a string is a client bug the contract must surface.
Kilograms = Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1, le=1_000_000, strict=True)]
LabelFormat = Literal["pdf", "zpl"]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=35)]  # printed on the label

LABEL_DOCUMENTS = "https://labels.parcelco.example"


class Item(Body):
    sku: NonEmpty
    qty: Count


class Parcel(Body):
    weight_kg: Kilograms
    contents: Annotated[list[Item], Field(max_length=100)]


class ReturnParcel(Body):
    weight_kg: Kilograms


class ReturnLabelRequest(Body):
    """A return label (every API version alike: returns came after the versions split)."""

    rma_id: Reference
    order_ref: NonEmpty
    ship_from: Address
    packages: Annotated[list[ReturnParcel], Field(min_length=1, max_length=20)]


@dataclass(frozen=True, slots=True)
class Purchase:
    """A label request in the model's words, whatever version it came in."""

    shipment_ref: str
    service: str  # the model's name: ground or express
    ship_to: dict[str, Any]
    packages: list[dict[str, Any]]
    label_format: str = "pdf"
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Face:
    """One version of the API: its request reading and its answers; the routes are shared."""

    version: str
    purchase: Callable[[dict[str, Any]], Purchase]  # validates; raises the version's 422
    label: Callable[[Label], dict[str, Any]]
    tracking: Callable[[Label], dict[str, Any]]
    lists_labels: bool = False  # GET /labels?shipment_ref= (from 1.1)
    malformed_status: int = 400  # 2.0 answers a body that is not a JSON object with 422


def purchase_of(body: Any, service: str) -> Purchase:
    """A validated label request of any version (its pydantic model) in the model's words;
    ``service`` already translated to the model's name."""
    return Purchase(
        body.shipment_ref,
        service,
        body.ship_to.to_dict(),
        [p.model_dump() for p in body.packages],
        getattr(body, "label_format", "pdf"),  # 1.0 has no label formats: PDF
        getattr(body, "reference", None),
    )


def label_url(label: Label) -> str:
    """Where the label document would be downloaded (1.1 and later name it)."""
    return f"{LABEL_DOCUMENTS}/{label.id}.{label.label_format}"
