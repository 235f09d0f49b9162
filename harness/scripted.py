"""Scripted worlds: explicit orders and an explicit vendor timeline in a scenario.

An incident is a story about particular orders: SO-4711 released at 10:30, its line 2 picked
one short, the customer's cancel call at 10:45, these carrier scans at these times. A scenario
may tell that story directly (``orders:`` and ``timeline:``), beside or instead of generated
demand; ``twinyard import`` writes such scenarios from recorded evidence (docs/capsules.md).

What the script names happens as written; what it leaves out is drawn from the scenario's seed
as in any day (ARCHITECTURE principle 3), keyed by the same business ids, so a scripted order
with the id it had in a generated day keeps that day's fate.

This module is only the schema; ``harness.world`` plays it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from simulators.common.faults import MOMENT_PATTERN, virtual_seconds

DAY_S = 86_400
# ``at`` reads as a fault's does: virtual seconds, "HH:MM[:SS]" (day 0) or "day N HH:MM[:SS]".
moment_seconds = virtual_seconds


def moment_text(seconds: float) -> str:
    """The inverse of ``moment_seconds`` for whole seconds: ``"day 1 10:42:05"``."""
    day, rest = divmod(int(seconds), DAY_S)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}" + (
        f":{rest % 60:02d}" if rest % 60 else ""
    )
    return clock if day == 0 else f"day {day} {clock}"


Moment = Annotated[
    float,
    BeforeValidator(moment_seconds),
    Field(ge=0),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": MOMENT_PATTERN}]}
    ),
]
OrderId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]
Sku = Annotated[str, Field(min_length=1, max_length=64)]
Text = Annotated[str, Field(max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=200)]  # what the vendors' APIs require
ScanStatus = Literal["picked_up", "in_transit", "exception", "out_for_delivery", "delivered"]


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Address(Script):
    name: Name
    street: Name
    city: Name
    postal_code: Annotated[str, Field(max_length=20)]
    """Empty is a typo the carrier refuses (a 422 on the label); customer service does not
    know the right one, so only a scripted ``address`` fixes it."""
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    """ISO 3166 alpha-2, upper case (``DE``)."""


class Customer(Script):
    name: Name
    email: Text = ""
    """Empty: one drawn from the seed for this order id."""


class OrderLine(Script):
    sku: Sku
    qty: Annotated[int, Field(ge=1, le=1_000_000)]


class ScriptedOrder(Script):
    """An order the customer places at ``at``; the ERP releases it at once."""

    id: OrderId
    at: Moment
    lines: Annotated[tuple[OrderLine, ...], Field(min_length=1, max_length=500)]
    service_level: Literal["standard", "express"] = "standard"
    ship_to: Address | None = None
    """Absent: drawn from the seed for this order id."""
    customer: Customer | None = None
    """Absent: the ship-to's name, or one drawn from the seed."""


class Pick(Script):
    """How the pick of one line of an order comes out (instead of what the shelves give)."""

    order: OrderId
    line: Annotated[int, Field(ge=1)]
    short: Annotated[int, Field(ge=0)]
    """Units of the line not found; 0 is a full pick."""


class AddressChange(Script):
    """The customer (or customer service) gives the order a new ship-to."""

    order: OrderId
    ship_to: Address
    correction: bool = False
    """True: customer service corrects a typo (accepted until the order leaves); false: the
    customer moves the delivery (accepted only before the warehouse starts on it)."""


class Scan(Script):
    status: ScanStatus
    at: Moment


class Scans(Script):
    """The carrier scans of an order's parcel, in this order, at these times (each no
    earlier than the truck takes the parcel)."""

    order: OrderId
    events: Annotated[tuple[Scan, ...], Field(min_length=1, max_length=50)]


class Receipt(Script):
    """Purchased stock arrives at the dock and the WMS receives it."""

    sku: Sku
    qty: Annotated[int, Field(ge=1, le=10_000_000)]


class Adjustment(Script):
    """The WMS finds stock it did not expect (cycle count, damage): a signed change."""

    sku: Sku
    delta: Annotated[int, Field(ge=-10_000_000, le=10_000_000)]
    reason: Literal["cycle_count", "damage", "shrinkage", "found"] = "cycle_count"


KINDS = ("pick", "cancel", "address", "scans", "receipt", "adjustment")
TIMED = frozenset({"cancel", "address", "receipt", "adjustment"})  # need ``at``


class TimelineEntry(Script):
    """One thing that happens in the world, with exactly one of: ``pick``, ``cancel``,
    ``address``, ``scans``, ``receipt``, ``adjustment``."""

    at: Moment | None = None
    """When it happens. For a ``pick``: when the picker finishes the order (no earlier than
    the order reaches the floor); absent, as the floor's pace gives. ``scans`` time each
    event instead."""
    pick: Pick | None = None
    cancel: OrderId | None = None
    """The customer calls to cancel this order (customer service's rules still apply)."""
    address: AddressChange | None = None
    scans: Scans | None = None
    receipt: Receipt | None = None
    adjustment: Adjustment | None = None

    @model_validator(mode="after")
    def _one_thing(self) -> TimelineEntry:
        given = [kind for kind in KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a timeline entry is exactly one of {', '.join(KINDS)}; "
                f"this one has {', '.join(given) or 'none'}"
            )
        kind = given[0]
        if kind in TIMED and self.at is None:
            raise ValueError(f"a {kind} needs at: when it happens")
        if kind == "scans" and self.at is not None:
            raise ValueError("scans carry their own times: give at on each event, not here")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in KINDS if getattr(self, kind) is not None)

    @property
    def order(self) -> str | None:
        """The order this entry is about, if any."""
        thing = getattr(self, self.kind)
        return thing if isinstance(thing, str) else getattr(thing, "order", None)


class Capsule(Script):
    """Where a scripted day came from, and what of its recording it does not replay."""

    source: Annotated[str, Field(max_length=2_000)] = ""
    unmapped: Annotated[
        tuple[Annotated[str, Field(max_length=2_000)], ...], Field(max_length=10_000)
    ] = ()
    """What the recording held that this day does not play; every verdict says so."""
