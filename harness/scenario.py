"""Scenario files: the schema, loading, and errors that name file, field and line.

A scenario is YAML validated by pydantic. Unknown keys are errors (a typo must not be
silently ignored); every error is reported as ``file:line: field.path: message``. The file is
read by ``harness.scenario_yaml``, which bounds it and refuses what plain YAML should not
hold (docs/scenario-loading.md); no file, however hostile, ends in a traceback.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from yaml.nodes import ScalarNode

import simulators
from harness import scenario_yaml
from harness.scripted import Capsule, Moment, ScriptedOrder, TimelineEntry
from harness.world.catalogue import sku_name
from harness.world.curves import PROFILES, hourly_weights, parse_curve, segments
from simulators.common.faults import Fault, business_route


class Strict(BaseModel):
    # Every float of every section is finite: .nan slips past bounds, .inf past lower ones.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _time_of_day(value: Any) -> Any:
    # A bare number is ambiguous (seconds? minutes? hours?): refuse it, never guess.
    if isinstance(value, int):
        raise ValueError("write a time of day as HH:MM, like 06:00")
    return value


TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]


def _seconds(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second


class IntRange(Strict):
    min: Annotated[int, Field(ge=1)] = 1
    max: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self


class Section(Strict):
    """A world section: field docstrings become descriptions in ``twinyard schema``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


Headcount = Annotated[int, Field(ge=0, le=100_000)]


class Delay(Section):
    """A delay in minutes: at least ``min``, usually short, now and then long, never over
    ``max`` (a shifted exponential with the given mean, cut at max)."""

    min_minutes: Annotated[float, Field(ge=0, le=10_080)] = 1.0
    """The shortest delay."""
    mean_minutes: Annotated[float, Field(ge=0, le=10_080)] = 20.0
    """The average delay (before cutting at max)."""
    max_minutes: Annotated[float, Field(ge=0, le=10_080)] = 240.0
    """The longest delay."""

    @model_validator(mode="after")
    def _ordered(self) -> Delay:
        if not self.min_minutes <= self.mean_minutes <= self.max_minutes:
            raise ValueError(
                f"need min_minutes <= mean_minutes <= max_minutes, got {self.min_minutes}, "
                f"{self.mean_minutes}, {self.max_minutes}"
            )
        return self


def _curve(value: Any) -> Any:
    return parse_curve(value)


def _curve_out(value: str | tuple[float, ...]) -> str | list[float]:
    """A profile's name or its 24 weights: said plainly, so dumping a scenario (its digest, a
    capsule) warns of nothing (pydantic's own union serializer did, for every weight list)."""
    return value if isinstance(value, str) else list(value)


Curve = Annotated[
    str | tuple[float, ...],
    PlainValidator(_curve),
    PlainSerializer(_curve_out),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": list(PROFILES)},
                {
                    "type": "array",
                    "items": {"type": "number", "minimum": 0},
                    "minItems": 24,
                    "maxItems": 24,
                },
            ]
        }
    ),
]


class Demand(Section):
    """Orders arriving over the business day, and customers who change their minds."""

    orders: Annotated[int, Field(ge=0, le=1_000_000)] = 200
    """Orders arriving on the day."""
    open: TimeOfDay = time(6, 0)
    """The first order can arrive at this time of day."""
    close: TimeOfDay = time(18, 0)
    """No order arrives at or after this time of day."""
    curve: Curve = "flat"
    """Arrivals by hour of day: a profile (flat, peak_monday, evening) or 24 relative
    weights, 00:00 first. Clipped to open..close; no arrivals where the weight is 0."""
    lines_per_order: IntRange = IntRange(min=1, max=3)
    """SKUs per order, distinct unless ``repeat_sku_rate`` (uniform between min and max)."""
    qty_per_line: IntRange = IntRange(min=1, max=3)
    """Units per order line (uniform between min and max)."""
    line_step: Annotated[int, Field(ge=1, le=10)] = 1
    """How the ERP numbers an order's lines: 1, 2, 3 (1), or in steps, as SAP's 10, 20, 30
    (10). A stack that takes a line's number for its position posts picks, goods issues and
    backorders against lines the order does not have."""
    repeat_sku_rate: Rate = 0.0
    """Share of orders of two lines or more whose last line is the first line's SKU again, as
    ERPs allow (a line added later, a free-goods line, a split delivery date): a stack that
    keys an order's lines by SKU merges or loses one."""
    express_share: Rate = 0.2
    """Share of orders shipped express; the rest go standard."""
    abroad_share: Rate = 0.0
    """Share of orders shipped to a customer in another country the carrier serves (AT, DK,
    FR, IT, NL, PL), with that country's names, streets and postal codes; the rest go to
    Germany."""
    cancel_rate: Rate = 0.0
    """Share of released orders whose customer asks to cancel. Customer service accepts
    only while the warehouse has not started on the order; later requests are refused."""
    cancel_after: Delay = Delay()
    """How long after release a cancelling customer calls."""
    address_error_rate: Rate = 0.0
    """Share of orders placed with a ship-to the carrier refuses (no postal code). Customer
    service corrects it in the ERP ``address_fix_after`` the release, while not shipped."""
    address_fix_after: Delay = Delay(min_minutes=30, mean_minutes=180, max_minutes=600)
    """How long after release customer service corrects a refused address."""
    address_change_rate: Rate = 0.0
    """Share of customers who change the delivery address after release. Customer service
    accepts only while the warehouse has not started on the order, as for cancellations."""
    address_change_after: Delay = Delay()
    """How long after release a customer calls to change the address."""
    address_change_again_rate: Rate = 0.0
    """Share of customers who changed the address who call again, as long again later, with
    yet another one (a typo in the first, a change of plan): the order's second
    ``order.updated``, and the one whose address the parcel must carry."""
    only: Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=10_000)] | None = None
    """Play only these orders of the day, by their number in its arrivals (SO-000035 is 35):
    each keeps its id, content, arrival time and fate; the others never arrive. What
    ``twinyard shrink`` writes into a capsule."""

    @model_validator(mode="after")
    def _window(self) -> Demand:
        if self.only is not None and any(n > self.orders for n in self.only):
            raise ValueError(f"only names orders beyond the day's {self.orders} (orders)")
        if self.close <= self.open:
            raise ValueError("close must be after open")
        weights = hourly_weights(self.curve)
        if not segments(weights, _seconds(self.open), _seconds(self.close)):
            raise ValueError(
                "the demand curve has no weight between open and close: no order could arrive"
            )
        return self


class Catalogue(Section):
    """The SKUs the shop sells and how much of each is on the shelf at the start."""

    skus: Annotated[int, Field(ge=1, le=100_000)] = 40
    """Number of SKUs."""
    initial_stock: Annotated[int, Field(ge=0, le=10_000_000)] = 500
    """Units per SKU at the start (the average per SKU when stocked by popularity)."""
    popularity: Annotated[float, Field(ge=0.0, le=4.0)] = 1.0
    """Zipf exponent of SKU popularity: 0 = all SKUs sell alike, 1 = the classic long tail."""
    stock_by_popularity: bool = False
    """Stock each SKU in proportion to its popularity (at least 1 unit) instead of evenly."""
    sku_style: Literal["plain", "retail"] = "plain"
    """How SKUs are named: ``plain`` (``SKU-00001``) or ``retail``, with the punctuation real
    catalogues carry (``SKU-00001/XL``, ``SKU 00002 2M``, ``SKU #8-00003``,
    ``SKU-00004+B&W``), which a stack must percent-encode in a URL path."""


class Shift(Section):
    """A shift that repeats every day: who is on the floor from start to end."""

    name: Annotated[str, Field(min_length=1, max_length=40)]
    """What the rota calls it (early, late, night ...)."""
    start: TimeOfDay
    """Clock-in time."""
    end: TimeOfDay
    """Clock-off time; before start means the next morning (a night shift)."""
    pickers: Headcount = 0
    """Pickers on this shift."""
    packers: Headcount = 0
    """Packers on this shift."""

    @model_validator(mode="after")
    def _sensible(self) -> Shift:
        if self.start == self.end:
            raise ValueError("a shift cannot start and end at the same time")
        if self.pickers + self.packers == 0:
            raise ValueError(f"shift {self.name!r} has nobody on it")
        return self


class Waves(Section):
    """How orders are released to the floor."""

    every_minutes: Annotated[int, Field(ge=0, le=1440)] = 0
    """A wave goes to the floor every N minutes (from midnight); 0 = no waves: each order
    goes to the floor on its own."""
    lead_minutes: Annotated[float, Field(ge=0, le=1440)] = 5.0
    """An order goes to the floor no earlier than this after its ERP release (in the first
    wave at or after that time): the stack's time to create the WMS order. In wave mode a
    cancellation is accepted only until the wave is planned, this long before it starts."""


class Warehouse(Section):
    """The floor: who picks and packs when, how fast, and when the truck leaves."""

    pickers: Annotated[int, Field(ge=1, le=100_000)] = 8
    """Pickers around the clock (only when no shifts are given)."""
    packers: Annotated[int, Field(ge=1, le=100_000)] = 4
    """Packers around the clock (only when no shifts are given)."""
    shifts: tuple[Shift, ...] = ()
    """The daily rota; empty = pickers and packers work around the clock. Off shift,
    nobody picks or packs (a worker finishes the order in hand, then leaves)."""
    pick_minutes_per_line: Positive = 2.0
    """Average minutes to pick one order line (each order varies 0.7x-1.3x)."""
    pack_minutes: Positive = 3.0
    """Minutes to pack one order."""
    short_pick_rate: Rate = 0.02
    """Share of lines a picker reports short although the shelf had enough (mis-picks)."""
    waves: Waves = Waves()
    """Release of orders to the floor."""
    cutoff: TimeOfDay = time(17, 0)
    """The carrier's truck leaves the dock at this time every day."""
    staging_minutes: Annotated[float, Field(ge=0, le=720)] = 10.0
    """Parcels packed later than this before cut-off wait for the next day's truck; a
    label must be on the parcel by cut-off."""

    @model_validator(mode="after")
    def _rota(self) -> Warehouse:
        if not self.shifts:
            return self
        both = {"pickers", "packers"} & self.model_fields_set
        if both:
            raise ValueError(
                f"give {' and '.join(sorted(both))} or shifts, not both "
                "(with shifts, each shift says who is on it)"
            )
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError("shift names must be unique")
        if not any(s.pickers for s in self.shifts):
            raise ValueError("no shift has pickers: nothing would ever be picked")
        if not any(s.packers for s in self.shifts):
            raise ValueError("no shift has packers: nothing would ever be packed")
        return self


class CycleCount(Section):
    """Counting the shelves: a rotating share of SKUs every day."""

    share_per_day: Rate = 0.1
    """Share of SKUs counted each day (0 = never count); the most popular are counted first."""
    at: TimeOfDay = time(5, 0)
    """When the counters count, ideally before the first shift picks."""


class Replenishment(Section):
    """Purchasing: when a SKU's shelf runs low, a purchase arrives after a lead time."""

    reorder_at: Rate = 0.2
    """Reorder when the units on the shelf fall below this share of the SKU's starting
    stock (0 = never reorder)."""
    order_up_to: Annotated[float, Field(gt=0, le=10)] = 1.0
    """A purchase refills the shelf to this share of the SKU's starting stock."""
    lead_time_hours: Annotated[float, Field(ge=0, le=720)] = 8.0
    """Average hours from reorder to receipt at the dock (each purchase varies 0.75x-1.25x)."""
    combine_hours: Annotated[float, Field(ge=0, le=168)] = 0.0
    """A purchase due at the dock within this many hours after another's truck arrives comes
    on that truck: one receipt with a line per SKU (0: each purchase its own receipt)."""

    @model_validator(mode="after")
    def _above(self) -> Replenishment:
        if self.reorder_at and self.order_up_to <= self.reorder_at:
            raise ValueError("order_up_to must be above reorder_at, or purchases would not help")
        return self


class Stock(Section):
    """What happens to stock besides picking: losses, counts and replenishment."""

    damage_rate: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0
    """Share of the units on a shelf damaged per day; the next picker at that shelf (or a
    count) reports them."""
    shrink_rate: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0
    """Share of the units on a shelf lost per day (theft, misplacement), noticed only when
    the SKU is counted; until then pickers come up short."""
    found_rate: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0
    """Units that turn up on a shelf unbooked per day, as a share of what it holds (a return
    put back without a booking, a carton found behind a rack): the next count books them as
    ``found``, the one adjustment that adds stock."""
    cycle_count: CycleCount = CycleCount()
    """Cycle counts: the only way shrink reaches the books."""
    replenishment: Replenishment = Replenishment()
    """Purchases that refill low shelves."""


class Carrier(Section):
    """The parcel carrier's road: transit times, exceptions, freight settlement."""

    ground_transit_days: Annotated[int, Field(ge=0, le=30)] = 2
    """Days from pickup to delivery for standard orders."""
    express_transit_days: Annotated[int, Field(ge=0, le=30)] = 1
    """Days from pickup to delivery for express orders."""
    delivery_hour: Annotated[int, Field(ge=0, le=23)] = 14
    """Average hour of delivery on the due day (each parcel varies by up to 3 h either way)."""
    settle_after_hours: Annotated[float, Field(ge=0, le=720)] = 6.0
    """Hours after delivery the TMS settles the freight."""
    exception_rate: Rate = 0.0
    """Share of parcels with an exception on the road (an ``exception`` scan); such a
    parcel continues and is delivered later."""
    exception_delay_days: Annotated[int, Field(ge=1, le=14)] = 1
    """Days an exception adds to the parcel's transit."""
    express_capacity_per_day: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    """Express parcels the carrier takes per day (none: no cap). Beyond it the TMS rejects
    express tenders (422 tender_rejected, reason capacity_exhausted, ground available)."""
    scan_time_zone: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """Scans are reported in this zone's local time with its UTC offset (an IANA name, e.g.
    ``Europe/Berlin``: ``2026-11-23T15:02:00+01:00``), as many carriers report a depot's scan;
    none: in UTC (``...Z``). A stack that reads only ``Z`` times, or drops the offset, posts
    the milestone at the wrong instant."""
    scan_time_millis: bool = False
    """Scan times carry milliseconds, as JavaScript's ``toISOString`` writes every time
    (``2026-11-23T14:02:00.000Z``; with ``scan_time_zone``, ``...00.000+01:00``). A stack that
    parses times with a fixed seconds-only format refuses those scans."""

    @field_validator("scan_time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: give an IANA name, e.g. Europe/Berlin"
            ) from None
        return value

    api_version: Literal["v1", "v1.1", "v2"] = "v1"
    """The version of the carrier's API the simulator serves: v1 (carrier.yaml), v1.1
    (carrier.v1.1.yaml: additions only) or v2 (carrier.v2.yaml: breaking changes). Replay a
    stack built on v1 against v2 to see what the upgrade breaks before the vendor ships it
    (docs/api-versions.md)."""


class ConditionMix(Section):
    """How returned units are graded at the returns bench (weights; they need not add to 1)."""

    restock: Annotated[float, Field(ge=0, le=1_000)] = 0.7
    """Units as good as new: back on the shelf, sellable again."""
    damaged: Annotated[float, Field(ge=0, le=1_000)] = 0.2
    """Units damaged (by the customer or on the way): quarantined, not stock."""
    scrap: Annotated[float, Field(ge=0, le=1_000)] = 0.1
    """Units fit only for disposal."""

    @model_validator(mode="after")
    def _some(self) -> ConditionMix:
        if self.restock + self.damaged + self.scrap <= 0:
            raise ValueError("at least one condition needs a weight above 0")
        return self


class Returns(Section):
    """Customer returns: a delivered order comes back (part or whole) on an RMA the ERP
    authorises, in a parcel with a prepaid return label, graded at the returns bench."""

    return_rate: Rate = 0.0
    """Share of delivered orders the customer returns (0: nobody returns anything)."""
    return_after: Delay = Delay(min_minutes=120, mean_minutes=1_440, max_minutes=4_320)
    """From delivery to the customer asking for a return (the RMA)."""
    drop_off_after: Delay = Delay(min_minutes=30, mean_minutes=240, max_minutes=1_440)
    """From the RMA (and its label) to the parcel handed to the carrier."""
    transit_days: Annotated[int, Field(ge=0, le=30)] = 1
    """Days the return parcel travels back to the warehouse (delivered around
    ``carrier.delivery_hour``)."""
    receive_minutes: Annotated[float, Field(ge=0, le=1_440)] = 60.0
    """From the parcel's delivery at the dock to its receipt at the returns bench."""
    whole_order_share: Rate = 0.5
    """Share of returns that send back every unit issued; the others send back part of
    one or more lines."""
    refund_share: Rate = 0.8
    """Share of returns refunded; the others are made good with store credit."""
    conditions: ConditionMix = ConditionMix()
    """How each returned unit is graded."""


class MasterData(Section):
    """The item master during the day: items sold in cases, new SKUs the product team
    launches (with orders right behind them) and edits to existing items. The ERP owns the
    master; the stack carries it to the WMS. All zero: the catalogue as loaded at cutover."""

    case_share: Rate = 0.0
    """Share of catalogue items (and of new ones) sold in cases; the others sell eaches."""
    each_per_case: Annotated[
        list[Annotated[int, Field(ge=2, le=1_000)]], Field(min_length=1, max_length=20)
    ] = [6, 12, 24]
    """Case sizes a case item is drawn from (eaches per case)."""
    new_items_per_day: Annotated[int, Field(ge=0, le=10_000)] = 0
    """New SKUs launched on the business day (the day the orders arrive), between
    ``demand.open`` and ``demand.close``."""
    new_item_stock: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    """Eaches of a new item's first delivery, in both books when it is launched."""
    orders_per_new_item: Annotated[int, Field(ge=0, le=1_000)] = 2
    """Orders placed for each new item, each ``first_order_after`` its launch."""
    first_order_after: Delay = Delay(min_minutes=0, mean_minutes=5, max_minutes=60)
    """From a new item's creation in the ERP to an order for it: short, so an order races
    its item's way to the WMS."""
    changes_per_day: Annotated[int, Field(ge=0, le=10_000)] = 0
    """Edits to items on the business day (a new description or a re-weighed each)."""
    refused_edit_share: Rate = 0.0
    """Share of the new descriptions that are longer than the WMS takes (a pasted marketing
    text of 240 characters: the ERP has no limit, the WMS holds 200), so the WMS refuses that
    version (422); the product team shortens it 30 minutes later, a new version."""


class Site(Section):
    """A site beyond the default one (``DC1``, whose floor is the ``warehouse`` section): its
    share of the orders, its own stock, staff and cut-off."""

    name: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9_-]{0,15}$")]
    """Its code, as ERP and WMS spell it (``DC2``)."""
    share: Rate = 0.3
    """Share of the orders the ERP assigns to this site (keyed per order)."""
    initial_stock: Rate = 0.3
    """Its opening stock, as a share of each SKU's catalogue stock (``DC1`` keeps all of its)."""
    pickers: Annotated[int, Field(ge=1, le=100_000)] = 3
    packers: Annotated[int, Field(ge=1, le=100_000)] = 2
    cutoff: TimeOfDay = time(16, 0)
    """When its carrier truck leaves."""
    refilled_by: Literal["transfers", "suppliers"] = "transfers"
    """How its low shelves are refilled: by transfers from ``DC1`` (``sites.transfers``), or by
    its own purchases from suppliers (``stock.replenishment``), received at its own dock."""


class Transfers(Section):
    """Replenishment of the other sites from ``DC1`` by stock transfer orders."""

    reorder_at: Rate = 0.5
    """A site's shelf below this share of its opening stock asks for a transfer."""
    order_up_to: Annotated[float, Field(ge=0, le=100)] = 1.0
    """The transfer refills the shelf to this share of its opening stock."""
    ship_after_minutes: Annotated[float, Field(ge=0, le=1_440)] = 60.0
    """From the WMS transfer's creation to its truck leaving ``DC1``."""
    transit_hours: Annotated[float, Field(ge=0, le=240)] = 4.0
    """Truck time between the sites; the receiving site counts it in on arrival."""
    loss_rate: Rate = 0.0
    """Share of units that go missing on the truck (received short)."""


class Sites(Section):
    """More than one warehouse (docs/choreography.md#sites-and-transfers). Absent: one site,
    ``DC1``, no transfers, and the day exactly as before."""

    others: Annotated[list[Site], Field(max_length=8)] = []
    transfers: Transfers = Transfers()

    @model_validator(mode="after")
    def _distinct(self) -> Sites:
        names = [site.name for site in self.others]
        if "DC1" in names or len(set(names)) != len(names):
            raise ValueError("site names must differ from each other and from DC1")
        if sum(site.share for site in self.others) > 1:
            raise ValueError("the sites' shares add up to more than 1")
        return self


class ClockSettings(Strict):
    """How virtual time moves: lockstep for CI and replays, realtime for load and timers."""

    mode: Literal["lockstep", "realtime"] = "lockstep"
    factor: Annotated[float, Field(gt=0, le=100_000)] = 60.0  # realtime: virtual s per wall s
    resolution_s: Annotated[float, Field(ge=0, le=3600)] = 0.0  # lockstep: step granularity
    # lockstep: virtual s per wall s while the stack waits on its own retry timers
    pace: Annotated[float, Field(gt=0, le=100_000)] = 300.0


SloName = Literal[
    "release_latency",
    "label_latency",
    "confirmation_latency",
    "tracking_latency",
    "accrual_latency",
]
SloStatistic = Literal["p50", "p95", "p99", "max"]


class Expect(Strict):
    """Which oracles judge this scenario (default: all of them)."""

    oracles: list[str] | None = None
    catches: list[str] = []
    """Reference-stack defects (docs/defects.md) this scenario is built to catch: ``twinyard
    selftest`` fails when one of them gets through."""
    slos: dict[SloName, dict[SloStatistic, Annotated[float, Field(ge=0)]]] = {}
    """Service-level thresholds in virtual seconds, e.g. ``{release_latency: {p95: 300}}``:
    release_latency, label_latency, confirmation_latency, tracking_latency, accrual_latency;
    p50, p95, p99, max. A measure over its threshold fails the run like an oracle."""


class ScheduledRead(Strict):
    """One feed or job of a stack that polls: what it reads, and how often in virtual time.

    ``{system: erp, route: /events, every: 300}``: the ERP's event feed every 5 minutes;
    ``{system: wms, route: /inventory, at: "02:00"}``: the WMS stock list nightly at 02:00."""

    system: Literal["erp", "wms", "tms", "carrier"]
    route: str = "/events"
    """Path prefix of the GET requests that are this read (``/events``, ``/orders``)."""
    every: Annotated[float, Field(gt=0, le=7 * 86_400)] | None = None
    """Virtual seconds between two reads."""
    at: TimeOfDay | None = None
    """Or a time of day when the read runs, every day."""

    @model_validator(mode="after")
    def _one_of_every_or_at(self) -> ScheduledRead:
        if (self.every is None) == (self.at is None):
            raise ValueError("give every (seconds) or at (a time of day), not both or neither")
        if not self.route.startswith("/"):
            raise ValueError("route is a path and starts with /")
        return self


class Stack(Strict):
    """How the harness waits for the stack in lockstep."""

    idle_path: str = "/_stack/idle"
    settle_ms: Annotated[int, Field(ge=0, le=60_000)] = 50
    schedule: list[ScheduledRead] = []
    """A stack that polls: its reads and their intervals in virtual time. Lockstep then moves
    in step with them (docs/polling.md); a stack that declares one is not subscribed to
    webhooks by the harness."""
    poll_every: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    """Virtual seconds one poll cycle stands for, for feeds the stack reads that the schedule
    does not name (learnt from its requests)."""
    dead_letters_path: str = "/_stack/dead-letters"
    """Where the on-call lists dead letters (GET) and replays one (POST {path}/{id}/replay)."""


class OnCall(Strict):
    """What the stack's on-call engineer does during the day."""

    replay_dead_letters_at: tuple[Moment, ...] = ()
    """When every dead letter is replayed (after the vendor's fix): "19:00" on day 0, or
    "day 1 18:00" (a replay after the vendors have forgotten the idempotency keys)."""


class StackCall(Strict):
    """A call the stack makes to a vendor: which system, which route, optionally which body."""

    system: Literal["erp", "wms", "tms", "carrier"]
    route: Annotated[str, Field(min_length=1, max_length=200)]
    """``"POST /fulfilment-orders"``, or a path prefix without a method (``/labels``): the
    same form as a fault's route."""
    match: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """A substring the request body must contain (an order id, a transfer id)."""

    @field_validator("route")
    @classmethod
    def _route(cls, value: str) -> str:
        route = business_route(value, "the control plane (/_sim/) and /webhooks are not calls")
        if not route:
            raise ValueError("name the route of the call: 'POST /fulfilment-orders'")
        return route

    def describe(self) -> str:
        matching = f" with {self.match!r}" if self.match else ""
        return f"{self.system} {self.route}{matching}"


class StackRestart(Strict):
    """The stack goes down at a moment of the day and its supervisor starts it again, with the
    same command, environment and files: a crash, or a deploy. What a stack that keeps its
    work in memory, or acknowledges an event before it is safe, loses then is what the oracles
    see missing at the end of the day."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True
    )

    at: Moment
    """When it goes down: "10:30" on day 0, or "day 1 09:00" (played once the system is quiet
    at that moment, as the on-call's actions are)."""
    kind: Literal["crash", "deploy"] = "crash"
    """crash: SIGKILL, nothing flushed, no shutdown code runs; deploy: SIGTERM, a graceful
    stop (SIGKILL after 10 s wall), as a rolling deploy does."""
    for_: Annotated[float, Field(alias="for", ge=0, le=86_400)] = 0.0
    """Virtual seconds it stays down; the vendors' webhooks to it fail meanwhile and are
    retried on their schedules. 0: started again at once."""
    during: StackCall | None = None
    """A crash in the middle of a call: from ``at`` on, the first call the stack makes that
    fits is carried out by the vendor, and the stack is killed before the answer reaches it
    (the vendor did the work; the stack never learnt it). Absent: at a quiet moment."""

    @model_validator(mode="after")
    def _cut_off_by_a_crash(self) -> StackRestart:
        if self.during is not None and self.kind != "crash":
            raise ValueError(
                "only a crash cuts a call off (during): a deploy lets the calls in flight end"
            )
        return self


def _known_event(fault: Fault) -> Fault:
    """An event fault must name an event its system sends, or it would never apply."""
    if fault.is_event and fault.event:
        sent = simulators.event_types(fault.system)
        if fault.event not in sent:
            raise ValueError(
                f"{fault.system} sends no event {fault.event!r}; it sends {', '.join(sent)}"
            )
    return fault


MAX_SEED = 2**63 - 1  # a seed is written into verdict.json and journals as a 64-bit integer
DAY_S = 86_400


def _moment(seconds: float) -> str:
    """Virtual seconds as a scenario author reads them: ``90000 s (day 1, 01:00)``."""
    if seconds >= 1_000 * DAY_S:
        return f"{seconds:g} s"
    day, rest = divmod(int(seconds), DAY_S)
    return f"{seconds:g} s (day {day}, {rest // 3600:02d}:{rest % 3600 // 60:02d})"


class Scenario(Strict):
    name: str = "unnamed"
    description: str = ""
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 1
    start: datetime = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    horizon_days: Annotated[float, Field(gt=0, le=60)] = 7.0
    demand: Demand = Demand()
    catalogue: Catalogue = Catalogue()
    warehouse: Warehouse = Warehouse()
    carrier: Carrier = Carrier()
    stock: Stock = Stock()
    returns: Returns = Returns()
    master_data: MasterData = MasterData()
    sites: Sites = Sites()
    stack: Stack = Stack()
    clock: ClockSettings = ClockSettings()
    expect: Expect = Expect()
    on_call: OnCall = OnCall()
    stack_restarts: Annotated[tuple[StackRestart, ...], Field(max_length=100)] = ()
    """When the stack a harness launched goes down and is started again (a crash, a deploy)."""
    faults: tuple[Annotated[Fault, AfterValidator(_known_event)], ...] = ()

    """Faults the simulators inject into their answers (see docs/choreography.md#faults)."""
    orders: Annotated[tuple[ScriptedOrder, ...], Field(max_length=100_000)] = ()
    """Explicit orders, beside or instead of ``demand.orders`` (docs/capsules.md)."""
    timeline: Annotated[tuple[TimelineEntry, ...], Field(max_length=100_000)] = ()
    """Explicit things that happen: picks, cancel calls, address changes, scans, receipts."""
    capsule: Capsule | None = None
    """Set by ``twinyard import``: where this day came from and what it does not replay."""

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        try:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            value = datetime.min.replace(tzinfo=UTC)  # below the calendar: refused just below
        if not 1970 <= value.year <= 9998:  # the run's dates must fit the calendar
            raise ValueError("give a date from 1970 to 9998 (the run's days must fit the calendar)")
        return value

    @model_validator(mode="after")
    def _within_horizon(self) -> Scenario:
        """Anything timed at or after the end of the run would silently never happen."""
        end = self.horizon_days * DAY_S
        ends = f"the run ends at {end:g} s (horizon_days: {self.horizon_days:g})"
        late = [
            (("faults", i, "at"), f"opens at {_moment(fault.at)}, but {ends}: it would never apply")
            for i, fault in enumerate(self.faults)
            if fault.at >= end
        ]
        late += [
            (
                ("on_call", "replay_dead_letters_at", i),
                f"at {_moment(t)}, but {ends}: it would never run",
            )
            for i, t in enumerate(self.on_call.replay_dead_letters_at)
            if t >= end
        ]
        late += [
            (("stack_restarts", i, "at"), f"at {_moment(r.at)}, but {ends}: it would never happen")
            for i, r in enumerate(self.stack_restarts)
            if r.at >= end
        ]
        late += [
            (("orders", i, "at"), f"released at {_moment(order.at)}, but {ends}: never placed")
            for i, order in enumerate(self.orders)
            if order.at >= end
        ]
        late += [
            (("timeline", i, "at"), f"at {_moment(entry.at)}, but {ends}: it would never happen")
            for i, entry in enumerate(self.timeline)
            if entry.at is not None and entry.at >= end
        ]
        late += [
            (
                ("timeline", i, "scans", "events", j, "at"),
                f"at {_moment(event.at)}, but {ends}: it would never be scanned",
            )
            for i, entry in enumerate(self.timeline)
            if entry.scans is not None
            for j, event in enumerate(entry.scans.events)
            if event.at >= end
        ]
        late += self._script_errors()
        if late:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("after_horizon", "{why}", {"why": why}),
                        loc=loc,
                        input=None,
                    )
                    for loc, why in late
                ],
            )
        return self

    def _script_errors(self) -> list[tuple[tuple[Any, ...], str]]:
        """A script must name SKUs the catalogue holds and orders it places, once each, and
        say each thing once: one pick per order line, one journey of scans per order."""
        skus, style = self.catalogue.skus, self.catalogue.sku_style
        errors: list[tuple[tuple[Any, ...], str]] = []
        placed: dict[str, ScriptedOrder] = {}
        picks: dict[tuple[str, int], int] = {}  # (order, line) -> its entry
        scans: dict[str, int] = {}  # order -> its entry
        for i, order in enumerate(self.orders):
            if order.id in placed:
                errors.append((("orders", i, "id"), f"{order.id} is placed twice"))
            elif re.fullmatch(r"SO-\d{6}", order.id) and self.demand.orders:
                errors.append(
                    (
                        ("orders", i, "id"),
                        f"{order.id} is the form of a generated order's id; with demand.orders "
                        "above 0 give scripted orders ids of another form",
                    )
                )
            placed[order.id] = order
            for j, line in enumerate(order.lines):
                if not _catalogue_sku(line.sku, skus, style):
                    problem = _no_sku(line.sku, skus, style)
                    errors.append((("orders", i, "lines", j, "sku"), problem))
        for i, entry in enumerate(self.timeline):
            kind, order_id = entry.kind, entry.order
            thing = getattr(entry, kind)
            if order_id is not None and order_id not in placed and not self._generates(order_id):
                errors.append((("timeline", i, kind), f"no order {order_id} is placed"))
            if kind == "pick":
                first = picks.setdefault((thing.order, thing.line), i)
                if first != i:
                    errors.append(
                        (
                            ("timeline", i, "pick"),
                            f"line {thing.line} of {thing.order} is picked in timeline.{first} "
                            "already: give each line one pick",
                        )
                    )
            if kind == "scans":
                first = scans.setdefault(thing.order, i)
                if first != i:
                    errors.append(
                        (
                            ("timeline", i, "scans"),
                            f"the scans of {thing.order} are in timeline.{first} already: give "
                            "one parcel journey per order",
                        )
                    )
            if kind == "pick" and order_id in placed:
                lines = len(placed[order_id].lines)
                if thing.line > lines:
                    errors.append(
                        (("timeline", i, "pick", "line"), f"{order_id} has {lines} line(s)")
                    )
                elif thing.short > placed[order_id].lines[thing.line - 1].qty:
                    errors.append(
                        (("timeline", i, "pick", "short"), "short is more than the line's qty")
                    )
            if kind in ("receipt", "adjustment") and not _catalogue_sku(thing.sku, skus, style):
                errors.append((("timeline", i, kind, "sku"), _no_sku(thing.sku, skus, style)))
        return errors

    def _generates(self, order_id: str) -> bool:
        """Is ``order_id`` one of the day's generated orders (``SO-000012``)?"""
        found = re.fullmatch(r"SO-(\d{6})", order_id)
        if found is None:
            return False
        number = int(found.group(1))
        only = self.demand.only
        return 1 <= number <= self.demand.orders and (only is None or number in only)

    @property
    def epoch(self) -> datetime:
        """Virtual time zero: midnight of the start day, so hours of day read naturally."""
        return self.start.replace(hour=0, minute=0, second=0, microsecond=0)

    def with_stack(self, stack: Stack | None) -> Scenario:
        """This day played by a stack described on its own (``--stack-config``)."""
        return self if stack is None else self.model_copy(update={"stack": stack})

    def with_seed(self, seed: int | None) -> Scenario:
        if seed is None:
            return self
        if not 0 <= seed <= MAX_SEED:
            raise ValueError(f"a seed is a whole number from 0 to {MAX_SEED}, not {seed}")
        return self.model_copy(update={"seed": seed})


def _catalogue_sku(sku: str, count: int, style: str = "plain") -> bool:
    found = re.search(r"(\d{5})", sku)
    return (
        found is not None
        and 1 <= int(found.group(1)) <= count
        and sku == sku_name(int(found.group(1)), style)
    )


def _no_sku(sku: str, count: int, style: str = "plain") -> str:
    first, last = sku_name(1, style), sku_name(count, style)
    return f"{sku} is not in the catalogue ({first} to {last}; catalogue.skus: {count})"


class ScenarioError(Exception):
    """A scenario file that cannot be used; ``lines`` are ``file:line: field: message``."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load(path: str | Path, overrides: tuple[str, ...] = ()) -> Scenario:
    """The scenario in the file, with ``overrides`` (``a.b.c=value``, ``--set``) applied."""
    file = Path(path)
    try:
        text = scenario_yaml.read(file)
    except scenario_yaml.Problem as problem:
        raise ScenarioError([_located(str(file), problem)]) from None
    return parse(text, str(file), overrides)


def load_stack(path: str | Path) -> Stack:
    """How a stack runs (a scenario's ``stack:`` section in a file of its own: probe, settle
    window, poll schedule), so one stack plays every scenario of a library the way it runs."""
    file = Path(path)
    try:
        root = scenario_yaml.compose(scenario_yaml.read(file))
        if root is None or (isinstance(root, ScalarNode) and root.tag == scenario_yaml.NULL):
            raise scenario_yaml.Problem("empty stack file: give at least one field of stack", 1)
        data, lines = scenario_yaml.to_data(root)
    except scenario_yaml.Problem as problem:
        raise ScenarioError([_located(str(file), problem)]) from None
    if not isinstance(data, dict):
        raise ScenarioError([_clean(f"{file}:1: a stack file is a mapping of stack fields")])
    try:
        return Stack.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            [_describe(err, str(file), lines) for err in exc.errors(include_url=False)]
        ) from None


def parse(text: str, filename: str = "<scenario>", overrides: tuple[str, ...] = ()) -> Scenario:
    """The scenario in ``text``; every problem is a ``file:line: field: message`` line (or
    ``--set KEY=VALUE: field: message`` for a value an override gave)."""
    try:
        root = scenario_yaml.compose(text)
        if root is None or (isinstance(root, ScalarNode) and root.tag == scenario_yaml.NULL):
            line = 1 if root is None else root.start_mark.line + 1
            raise scenario_yaml.Problem(
                "empty scenario: give at least a name (every other field has a default)", line
            )
        data, lines = scenario_yaml.to_data(root)
    except scenario_yaml.Problem as problem:
        raise ScenarioError([_located(filename, problem)]) from None
    if not isinstance(data, dict):
        line = root.start_mark.line + 1
        raise ScenarioError(
            [_clean(f"{filename}:{line}: the scenario must be a mapping of fields")]
        )
    given = {}
    for override in overrides:
        path, value = _override(override)
        _apply(data, path, value, override)
        given[path] = override
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            [_describe(err, filename, lines, given) for err in exc.errors(include_url=False)]
        ) from None
    except RecursionError:  # pydantic on values nested deeper than scenario_yaml lets through
        message = f"values nested too deep (at most {scenario_yaml.MAX_DEPTH})"
        raise ScenarioError([_clean(f"{filename}:{root.start_mark.line + 1}: {message}")]) from None


def _located(filename: str, problem: scenario_yaml.Problem) -> str:
    """``file: message`` for the file as a whole, ``file:line: [field: ]message`` inside it."""
    if problem.line is None:
        return _clean(f"{filename}: {problem.message}")
    field = "" if problem.field is None else f"{_field(problem.field)}: "
    return _clean(f"{filename}:{problem.line}: {field}{_clip(problem.message)}")


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(scenario_yaml.clip(str(p)) for p in loc) or "(top level)"


def _clip(message: str, limit: int = 300) -> str:
    return scenario_yaml.clip(message, limit)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _clean(line: str) -> str:
    """One line whatever the file held: control characters (a newline in a key, a file
    name) are written as escapes."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], line)


def _override(text: str) -> tuple[tuple[str | int, ...], Any]:
    """``a.b.0.c=value`` as its path and its value, read as YAML (``3``, ``true``, ``[a]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ScenarioError([_clean(f"--set {text}: give KEY=VALUE, KEY a dotted field path")])
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ScenarioError([_clean(f"--set {text}: the value is not valid YAML")]) from None
    path = tuple(int(p) if p.isdigit() else p for p in key.strip().split("."))
    return path, value


def _apply(data: dict[str, Any], path: tuple[str | int, ...], value: Any, text: str) -> None:
    """Set ``path`` in the scenario's data, creating sections on the way."""
    here: Any = data
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(here, list) and isinstance(part, int) and part < len(here):
            if last:
                here[part] = value
            here = here[part]
        elif isinstance(here, dict) and not isinstance(part, int):
            if last:
                here[part] = value
            elif here.get(part) is None:  # a section left empty (``carrier:``) or not given
                here[part] = {}
            here = here[part]
        else:
            where = ".".join(map(str, path[:depth])) or "the scenario"
            raise ScenarioError([_clean(f"--set {text}: {where} has no field {part}")])


def _describe(
    err: dict[str, Any],
    filename: str,
    lines: dict[tuple[Any, ...], int],
    given: dict[tuple[Any, ...], str] | None = None,
) -> str:
    loc = tuple(err["loc"])
    for path, text in (given or {}).items():
        if loc[: len(path)] == path:
            return _clean(f"--set {text}: {_field(loc)}: {_clip(err['msg'])}")
    field = _field(loc)
    line = None
    for depth in range(len(loc), -1, -1):  # the deepest part of the path that exists
        line = lines.get(loc[:depth])
        if line is not None:
            break
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown field (check its spelling)"
    return _clean(f"{filename}:{line or 1}: {field}: {_clip(message)}")
