"""Scenario files: the schema, loading, and errors that name file, field and line.

A scenario is YAML validated by pydantic. Unknown keys are errors (a typo must not be
silently ignored); every error is reported as ``file:line: field.path: message``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

import simulators
from harness.world.curves import PROFILES, hourly_weights, parse_curve, segments
from simulators.common.faults import Fault


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


Curve = Annotated[
    str | tuple[float, ...],
    PlainValidator(_curve),
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
    """Distinct SKUs per order (uniform between min and max)."""
    qty_per_line: IntRange = IntRange(min=1, max=3)
    """Units per order line (uniform between min and max)."""
    express_share: Rate = 0.2
    """Share of orders shipped express; the rest go standard."""
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

    @model_validator(mode="after")
    def _window(self) -> Demand:
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
    api_version: Literal["v1", "v1.1", "v2"] = "v1"
    """The version of the carrier's API the simulator serves: v1 (carrier.yaml), v1.1
    (carrier.v1.1.yaml: additions only) or v2 (carrier.v2.yaml: breaking changes). Replay a
    stack built on v1 against v2 to see what the upgrade breaks before the vendor ships it
    (docs/api-versions.md)."""


class ClockSettings(Strict):
    """How virtual time moves: lockstep for CI and replays, realtime for load and timers."""

    mode: Literal["lockstep", "realtime"] = "lockstep"
    factor: Annotated[float, Field(gt=0, le=100_000)] = 60.0  # realtime: virtual s per wall s
    resolution_s: Annotated[float, Field(ge=0, le=3600)] = 0.0  # lockstep: step granularity
    # lockstep: virtual s per wall s while the stack waits on its own retry timers
    pace: Annotated[float, Field(gt=0, le=100_000)] = 300.0


SloName = Literal["release_latency", "confirmation_latency", "tracking_latency"]
SloStatistic = Literal["p50", "p95", "p99", "max"]


class Expect(Strict):
    """Which oracles judge this scenario (default: all of them)."""

    oracles: list[str] | None = None
    catches: list[str] = []
    """Reference-stack defects (docs/defects.md) this scenario is built to catch: ``twinyard
    selftest`` fails when one of them gets through."""
    slos: dict[SloName, dict[SloStatistic, Annotated[float, Field(ge=0)]]] = {}
    """Service-level thresholds in virtual seconds, e.g. ``{release_latency: {p95: 300}}``:
    release_latency, confirmation_latency, tracking_latency; p50, p95, p99, max. A measure
    over its threshold fails the run like an oracle."""


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

    replay_dead_letters_at: tuple[TimeOfDay, ...] = ()
    """Times of day 0 when every dead letter is replayed (after the vendor's fix)."""


def _known_event(fault: Fault) -> Fault:
    """An event fault must name an event its system sends, or it would never apply."""
    if fault.is_event and fault.event:
        sent = simulators.event_types(fault.system)
        if fault.event not in sent:
            raise ValueError(
                f"{fault.system} sends no event {fault.event!r}; it sends {', '.join(sent)}"
            )
    return fault


class Scenario(Strict):
    name: str = "unnamed"
    description: str = ""
    seed: int = 1
    start: datetime = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    horizon_days: Annotated[float, Field(gt=0, le=60)] = 7.0
    demand: Demand = Demand()
    catalogue: Catalogue = Catalogue()
    warehouse: Warehouse = Warehouse()
    carrier: Carrier = Carrier()
    stock: Stock = Stock()
    stack: Stack = Stack()
    clock: ClockSettings = ClockSettings()
    expect: Expect = Expect()
    on_call: OnCall = OnCall()
    faults: tuple[Annotated[Fault, AfterValidator(_known_event)], ...] = ()

    """Faults the simulators inject into their answers (see docs/choreography.md#faults)."""

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def epoch(self) -> datetime:
        """Virtual time zero: midnight of the start day, so hours of day read naturally."""
        return self.start.replace(hour=0, minute=0, second=0, microsecond=0)

    def with_seed(self, seed: int | None) -> Scenario:
        return self if seed is None else self.model_copy(update={"seed": seed})


class ScenarioError(Exception):
    """A scenario file that cannot be used; ``lines`` are ``file:line: field: message``."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class ScenarioLoader(yaml.SafeLoader):
    """Reads ``17:00`` as the text "17:00", as YAML 1.2 does.

    PyYAML follows YAML 1.1, where an unquoted 17:00 is the base-60 integer 1020: a cut-off
    or a fault window would silently move to 00:17. Times work quoted or not here.
    """


_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
ScenarioLoader.yaml_implicit_resolvers = {
    first: [("tag:yaml.org,2002:str", _SEXAGESIMAL), *resolvers]
    if first in "+-0123456789"
    else list(resolvers)
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: str | Path) -> Scenario:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([f"{file}: no such scenario file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([f"{file}: cannot read: {exc}"]) from None
    return parse(text, str(file))


def parse(text: str, filename: str = "<scenario>") -> Scenario:
    try:
        root = yaml.compose(text, Loader=ScenarioLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{where}: not valid YAML: {problem}"]) from None
    if root is None:
        data: Any = {}
        lines: dict[tuple[Any, ...], int] = {}
    else:
        lines = {}
        data = _to_python(root, (), lines)
    if not isinstance(data, dict):
        raise ScenarioError([f"{filename}:1: the scenario must be a mapping of fields"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            [_describe(err, filename, lines) for err in exc.errors(include_url=False)]
        ) from None


def _to_python(node: Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> Any:
    """Build plain data from YAML nodes, remembering the line of every field path."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = SafeConstructor().construct_object(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, SequenceNode):
        return [_to_python(item, (*path, i), lines) for i, item in enumerate(node.value)]
    assert isinstance(node, ScalarNode)
    return SafeConstructor().construct_object(node)


def _describe(err: dict[str, Any], filename: str, lines: dict[tuple[Any, ...], int]) -> str:
    loc = tuple(err["loc"])
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = None
    for depth in range(len(loc), -1, -1):  # the deepest part of the path that exists
        line = lines.get(loc[:depth])
        if line is not None:
            break
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown field (check its spelling)"
    return f"{filename}:{line or 1}: {field}: {message}"
