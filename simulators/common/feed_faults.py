"""One request's view of a change feed, as the feed faults that hit it bend it.

``FaultInjection`` puts a ``FeedView`` in the request's scope state when feed faults hit it
(``feed_lag``, ``feed_overlap``, ``token_expiry``); the feed and list handlers build their page
from ``feed_view(request, clock)`` and ``mark`` what the view actually changed, so that only
answers a fault changed are counted and journalled. Without feed faults a handler gets a view
that bends nothing: the handlers have one code path, faulted or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from starlette.requests import Request

from simulators.common.clock import Clock
from simulators.common.cursors import Token
from simulators.common.errors import SimError
from simulators.common.faults import DEFAULT_LAG_S, DEFAULT_TTL_S, Fault

STATE_KEY = "feed_view"


@dataclass(slots=True)
class FeedView:
    clock: Clock
    faults: dict[str, Fault] = field(default_factory=dict)  # feed kind -> the fault that hit
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


def feed_view(request: Request, clock: Clock) -> FeedView:
    """The view ``FaultInjection`` left for this request, or one that bends nothing."""
    view = request.scope.get("state", {}).get(STATE_KEY)
    return view if isinstance(view, FeedView) else FeedView(clock)


def expired(field_name: str, message: str, **details: object) -> SimError:
    """The vendor's answer to a cursor it no longer honours: start again from a commit."""
    return SimError(410, "cursor_expired", message, field=field_name, **details)
