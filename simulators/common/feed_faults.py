"""One request's view of a change feed, as the feed faults that hit it bend it.

``FaultInjection`` puts a ``FeedView`` in the request's scope state when feed faults hit it
(``feed_lag``, ``feed_overlap``, ``token_expiry``, ``feed_torn_second``, ``feed_clock_skew``);
the feed and list handlers build their page from ``feed_view(request, clock)`` and ``mark``
what the view actually changed, so that only answers a fault changed are counted and
journalled. Without feed faults a handler gets a view that bends nothing: the handlers have one
code path, faulted or not.

``feed_torn_second`` is the one feed fault with a memory: which second of which feed it tore,
and when. A torn second must stay torn for every read at that virtual moment (the other pages
of the sweep, the client's next cycle while lockstep holds time) and be whole for every read
after it, and each second is torn once. The memory is the simulator's fault plan's
(``FaultPlan.feed_memory``), so it goes with the plan and never leaks from one run to another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.requests import Request

from simulators.common.clock import Clock
from simulators.common.cursors import Token
from simulators.common.errors import SimError
from simulators.common.faults import DEFAULT_LAG_S, DEFAULT_TTL_S, Fault
from simulators.common.query import shift_second

STATE_KEY = "feed_view"

Key = tuple[str, str]  # (a record's second as whole-second ISO text, its id or position)


@dataclass(frozen=True, slots=True)
class Tear:
    """A feed's newest second, shown in part: the records held back, and when it was read."""

    second: str  # whole-second ISO stamp
    hidden: frozenset[Key]
    at: float  # virtual time of the read that tore it


FeedMemory = dict[str, Tear]  # feed name -> the newest second torn on it


@dataclass(slots=True)
class FeedView:
    clock: Clock
    faults: dict[str, Fault] = field(default_factory=dict)  # feed kind -> the fault that hit
    memory: FeedMemory = field(default_factory=dict)  # the fault plan's: tears outlive requests
    applied: list[str] = field(default_factory=list)  # kinds that changed this answer
    now: float = field(init=False)

    def __post_init__(self) -> None:
        self.now = self.clock.now()

    @property
    def lag_s(self) -> float:
        fault = self.faults.get("feed_lag")
        return 0.0 if fault is None else fault.lag_s or DEFAULT_LAG_S

    @property
    def visible_until(self) -> float:
        """Virtual time of the newest change this answer may show."""
        return self.now - self.lag_s

    def visible_until_iso(self) -> str:
        """The same as a whole-second timestamp, comparable with ``updated_at``."""
        return self.clock.iso(math.floor(self.visible_until))

    @property
    def overlaps(self) -> bool:
        return "feed_overlap" in self.faults

    @property
    def tears(self) -> bool:
        """Whether a ``feed_torn_second`` fault hit this read."""
        return "feed_torn_second" in self.faults

    @property
    def skew_s(self) -> int:
        """Seconds the feed's clock runs ahead of the true clock (``feed_clock_skew``)."""
        fault = self.faults.get("feed_clock_skew")
        return 0 if fault is None else fault.skew_s or 0

    def shown_stamp(self, stamp: str) -> str:
        """A true whole-second stamp as the (skewed) feed clock writes it."""
        return shift_second(stamp, self.skew_s) if self.skew_s else stamp

    def true_stamp(self, shown: str) -> str:
        """A stamp in the feed clock's terms (an ``updated_since``) as true virtual time."""
        return shift_second(shown, -self.skew_s) if self.skew_s else shown

    def torn(self, feed: str, newest: Sequence[Key]) -> frozenset[Key]:
        """Which records of the answer's newest second this read does not see yet.

        ``newest``: the records stamped in the newest second the answer may show, in the order
        the feed shows them. The first read that meets a second of two or more records tears it:
        it sees the first half (rounded down) and the rest stays hidden for every read at that
        virtual moment; any later read sees the second whole, with its original stamps. A
        second older than one already torn is whole: it was committed before it."""
        if "feed_torn_second" not in self.faults or not newest:
            return frozenset()
        second = newest[0][0]
        tear = self.memory.get(feed)
        if tear is not None and tear.at > self.now:
            tear = None  # the clock went back (a reset, a test's clock): start afresh
        if tear is not None and tear.second >= second:
            same_moment = tear.second == second and self.now <= tear.at
            return tear.hidden if same_moment else frozenset()
        if len(newest) < 2:
            return frozenset()
        hidden = frozenset(newest[len(newest) // 2 :])
        self.memory[feed] = Tear(second, hidden, self.now)
        return hidden

    def mark(self, kind: str) -> None:
        """The fault of ``kind`` changed this answer: count and journal it."""
        if kind in self.faults and kind not in self.applied:
            self.applied.append(kind)

    def check_age(self, token: Token, field_name: str) -> None:
        """``410 cursor_expired`` for a token older than a ``token_expiry`` fault allows."""
        fault = self.faults.get("token_expiry")
        if fault is None:
            return
        ttl = fault.ttl_s or DEFAULT_TTL_S
        age = self.now - token.issued_at
        if age > ttl:
            self.mark("token_expiry")
            raise expired(
                field_name,
                f"{field_name} expired: it was issued {age:g} s ago and lives {ttl:g} s",
                reason="ttl",
                age_s=age,
                ttl_s=ttl,
            )


def newest_second(keys: Sequence[Key]) -> Sequence[Key]:
    """The keys of the newest second of an answer in feed order (its tail)."""
    if not keys:
        return keys
    second = keys[-1][0]
    start = len(keys)
    while start and keys[start - 1][0] == second:
        start -= 1
    return keys[start:]


def feed_view(request: Request, clock: Clock) -> FeedView:
    """The view ``FaultInjection`` left for this request, or one that bends nothing."""
    view = request.scope.get("state", {}).get(STATE_KEY)
    return view if isinstance(view, FeedView) else FeedView(clock)


def expired(field_name: str, message: str, **details: object) -> SimError:
    """The vendor's answer to a cursor it no longer honours: start again from a commit."""
    return SimError(410, "cursor_expired", message, field=field_name, **details)
