"""The load's arrival rate: a scenario's demand curve, times a multiplier, on the run's clock.

The harness (which plays the world) and the Locust process (whose shape and users follow the
curve) both read the rate from here, so they agree on it at every virtual moment. Pure
Python with no asyncio in it: the Locust process imports it under gevent.

Rates follow the world's own demand model (``harness.world.demand.arrival_times``): each hour's
weight, clipped to the shop's opening hours, gets its share of the day's orders, spread evenly
over the hour. ``--rate-multiplier`` scales the day's orders; the clock's factor plays the day
faster, so the wall rate the stack sees is the real rate x multiplier x factor.

Locust controls users, not rates. The shape asks ``users(v)`` for the number of users; each
user sends ``user_rate(v)`` orders per wall second, so the users together send exactly the
curve's rate whatever the rounding of the user count.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from harness.world.curves import hourly_weights, segments

if TYPE_CHECKING:
    from harness.scenario import Scenario

FEED_ENV = "TWINYARD_LOAD_FEED"  # the harness's load feed, for the Locust process
MIN_USERS = 3  # one per order source while orders arrive (web shop, EDI, B2B portal)
PER_USER = 2.0  # orders per wall second one Locust user sends, by default
HOUR = 3600.0


def seconds_of_day(t: Any) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second


@dataclass(frozen=True)
class LoadCurve:
    """Orders per virtual second along the day, at a multiple of the scenario's real rate."""

    weights: tuple[float, ...]  # 24 hourly weights, 00:00 first
    open_s: float  # the first order can arrive at this virtual second of day 0
    close_s: float  # and none at or after this one: the load window is [open_s, close_s)
    orders: int  # the day's orders at the real rate (the scenario's demand.orders)
    multiplier: float = 1.0
    factor: float = 60.0  # virtual seconds per wall second
    per_user: float = PER_USER  # orders per wall second one user sends
    _stretches: tuple[tuple[float, float, float], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        stretches = tuple(segments(self.weights, self.open_s, self.close_s))
        object.__setattr__(self, "_stretches", stretches)

    @property
    def mass(self) -> float:
        return sum(mass for _, _, mass in self._stretches)

    @property
    def total(self) -> float:
        """Orders the whole window brings at this multiplier."""
        return self.orders * self.multiplier

    @property
    def wall_seconds(self) -> float:
        """How long the load window lasts on the wall clock."""
        return (self.close_s - self.open_s) / self.factor

    def rate(self, v: float) -> float:
        """Orders per virtual second at virtual time ``v`` (0 outside the window)."""
        mass = self.mass
        if mass <= 0 or not self.open_s <= v < self.close_s:
            return 0.0
        hour = int(v // HOUR)
        if not 0 <= hour < len(self.weights):
            return 0.0
        return self.total * self.weights[hour] / mass

    def per_hour(self, v: float) -> float:
        """Orders per virtual hour at ``v``: what a planner reads off the curve."""
        return self.rate(v) * HOUR

    def wall_rate(self, v: float) -> float:
        """Orders per wall second at ``v``: what the stack sees."""
        return self.rate(v) * self.factor

    def users(self, v: float) -> int:
        """Locust users at ``v``: enough that none sends more than ``per_user`` a second."""
        wall = self.wall_rate(v)
        if wall <= 0:
            return 0
        return max(MIN_USERS, math.ceil(wall / self.per_user - 1e-9))

    def user_rate(self, v: float) -> float:
        """Orders per wall second each of the ``users(v)`` users sends at ``v``."""
        users = self.users(v)
        return self.wall_rate(v) / users if users else 0.0

    def peak_per_hour(self) -> float:
        return max((self.per_hour(start) for start, _, _ in self._stretches), default=0.0)


@dataclass(frozen=True)
class Plan:
    """Everything the Locust process needs to release the day's orders: the curve, what the
    shop sells, and (once the harness's clock runs) where virtual time stands."""

    curve: LoadCurve
    seed: int = 1
    skus: int = 40
    popularity: float = 1.0
    lines: tuple[int, int] = (1, 3)
    qty: tuple[int, int] = (1, 3)
    express_share: float = 0.2
    # The clock: virtual time ``virtual_at`` was wall time ``wall_at`` (time.time()); None
    # until the harness's clock runs (it waits for Locust, so no window is lost to start-up).
    virtual_at: float | None = None
    wall_at: float | None = None

    @property
    def started(self) -> bool:
        return self.virtual_at is not None and self.wall_at is not None

    def virtual_now(self, wall: float | None = None) -> float:
        """The harness's virtual time now (before the clock runs: the window's open)."""
        if self.virtual_at is None or self.wall_at is None:
            return self.curve.open_s
        now = time.time() if wall is None else wall
        return self.virtual_at + (now - self.wall_at) * self.curve.factor

    def anchored(self, virtual_at: float, wall_at: float) -> Plan:
        return replace(self, virtual_at=virtual_at, wall_at=wall_at)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["curve"] = {k: v for k, v in data["curve"].items() if not k.startswith("_")}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        curve = dict(data["curve"])
        curve["weights"] = tuple(curve["weights"])
        rest = {k: v for k, v in data.items() if k != "curve"}
        rest["lines"] = tuple(rest.get("lines", (1, 3)))
        rest["qty"] = tuple(rest.get("qty", (1, 3)))
        return cls(curve=LoadCurve(**curve), **rest)


def plan_of(
    scenario: Scenario,
    multiplier: float = 1.0,
    factor: float | None = None,
    per_user: float = PER_USER,
) -> Plan:
    """The load a scenario's day brings at ``multiplier`` x its real rate, played at
    ``factor`` (default: the scenario's clock factor)."""
    demand = scenario.demand
    curve = LoadCurve(
        weights=hourly_weights(demand.curve),
        open_s=seconds_of_day(demand.open),
        close_s=seconds_of_day(demand.close),
        orders=demand.orders,
        multiplier=multiplier,
        factor=factor if factor is not None else scenario.clock.factor,
        per_user=per_user,
    )
    return Plan(
        curve=curve,
        seed=scenario.seed,
        skus=scenario.catalogue.skus,
        popularity=scenario.catalogue.popularity,
        lines=(demand.lines_per_order.min, demand.lines_per_order.max),
        qty=(demand.qty_per_line.min, demand.qty_per_line.max),
        express_share=demand.express_share,
    )
