"""The carrier's API versions, translated at the boundary: the rest of the stack speaks 1.0.

The stack was written against ParcelCo's API 1.0 (contracts/openapi/carrier.yaml). Its jobs
keep 1.0's words (service ``ground``, ``tracking_number``, decimal costs), and so does what it
posts to the ERP and WMS. Speaking 2.0 (contracts/openapi/carrier.v2.yaml) is two functions,
applied by the vendor client around ``POST /labels`` and nowhere else:

- ``label_request``: a 1.0 label request in the version's words (2.0 requires
  ``label_format`` and calls ``ground`` ``standard``);
- ``label_answer``: the version's label in 1.0's words (``tracking_id`` back to
  ``tracking_number``, ``standard`` back to ``ground``, minor units back to a decimal string).

So a day on 2.0 has the business outcome of a day on 1.0. 1.1 only adds fields, which a
tolerant reader ignores: it is spoken as 1.0. What 2.0 leaves unchanged needs nothing here:
the ``tracking.updated`` webhook still says ``tracking_number``, and 2.0 labels no longer
embed ``events``, which the stack never read (it takes scans from the webhook).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

VERSIONS = ("v1", "v1.1", "v2")
DEFAULT = "v1"
V2 = "v2"

LABEL_FORMAT = "pdf"  # what 1.0 printed without being asked; 2.0 makes us say it
SERVICES_V2 = {"ground": "standard"}  # 1.0 -> 2.0; express is express in both
SERVICES_V1 = {new: old for old, new in SERVICES_V2.items()}  # 2.0 -> 1.0
CENTS = Decimal("0.01")  # every ParcelCo price is in EUR: two decimals, as 1.0 wrote them

# The fields of a 2.0 label (carrier.v2.yaml, components.schemas.Label), for the
# strict-parsing defect: a client generated from the 2.0 contract knows these, not 1.0's.
LABEL_FIELDS_V2 = frozenset(
    {
        "id",
        "tracking_id",
        "shipment_ref",
        "service",
        "label_format",
        "label_url",
        "reference",
        "ship_to",
        "packages",
        "cost",
        "status",
        "created_at",
    }
)


def check(version: str) -> str:
    """The version, if the stack can speak it (config.py refuses others with a message)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown carrier API version {version!r}: one of {', '.join(VERSIONS)}")
    return version


def label_request(version: str, body: dict[str, Any]) -> dict[str, Any]:
    """The job's 1.0 label request as ``version`` wants it; the same object for 1.x, so the
    1.0 path sends exactly what it always sent. Pure: every retry sends the same bytes under
    the same Idempotency-Key."""
    if version != V2:
        return body
    request = {
        name: SERVICES_V2.get(value, value) if name == "service" else value
        for name, value in body.items()
    }
    request.setdefault("label_format", LABEL_FORMAT)
    return request


def label_answer(version: str, label: Any) -> Any:
    """A ``version`` label answer in 1.0's words; 1.x answers, and anything that is not a JSON
    object, unchanged. Fields 1.0 did not have are kept (the stack is a tolerant reader);
    missing ones stay missing, as they would on 1.0."""
    if version != V2 or not isinstance(label, dict):
        return label
    return {_V1_NAMES.get(name, name): _v1_value(name, value) for name, value in label.items()}


_V1_NAMES = {"tracking_id": "tracking_number"}


def _v1_value(name: str, value: Any) -> Any:
    if name == "service" and isinstance(value, str):
        return SERVICES_V1.get(value, value)
    if name == "cost" and isinstance(value, dict):
        return {**value, "amount": decimal_amount(value.get("amount"))}
    return value


def decimal_amount(minor: Any) -> Any:
    """2.0's ``540`` as 1.0's ``"5.40"``; an amount that is not an integer is left as it came."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        return minor
    return str((Decimal(minor) * CENTS).quantize(CENTS))
