"""The scenario's script (``orders:`` and ``timeline:``), indexed for the parts of the world
that play it: the customers place the orders and make the calls, the floor consults the picks,
the road the scans, the shelves the receipts and adjustments (docs/capsules.md).

What the script names happens as written; the rest is drawn as in any day, keyed by the same
business ids, so the index is only looked up by business identity (an order id, a SKU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.scenario import Scenario
    from harness.scripted import Scan, ScriptedOrder, TimelineEntry

CALLS = frozenset({"cancel", "address"})  # the customers' calls, played by demand.py
STOCK = frozenset({"receipt", "adjustment"})  # the dock's and the counters', by stock.py

Timed = tuple[float, int, "TimelineEntry"]  # (at, place in the timeline, entry)


@dataclass(slots=True)
class ScriptedPick:
    """How the pick of one order comes out: units short per line, and when it is done."""

    shorts: dict[int, int] = field(default_factory=dict)  # line number -> units not found
    at: float | None = None  # when the picker finishes (None: as the floor's pace gives)


class Script:
    """The scenario's orders and timeline, by kind and by order (empty for a generated day)."""

    def __init__(self, scenario: Scenario) -> None:
        # In time order (ties by id), numbered after the day's generated orders: the n-th
        # scripted order ranks in the floor's queues as a generated order of that place would,
        # so a generated day rewritten as scripted orders keeps its queue order.
        self.orders: tuple[ScriptedOrder, ...] = tuple(
            sorted(scenario.orders, key=lambda order: (order.at, order.id))
        )
        first = scenario.demand.orders
        self.places: dict[str, int] = {
            order.id: first + n for n, order in enumerate(self.orders, start=1)
        }
        self.picks: dict[str, ScriptedPick] = {}
        self.scans: dict[str, tuple[Scan, ...]] = {}
        self.calls: list[Timed] = []
        self.stock: list[Timed] = []
        for index, entry in enumerate(scenario.timeline):
            kind = entry.kind
            if kind == "pick" and entry.pick is not None:
                pick = self.picks.setdefault(entry.pick.order, ScriptedPick())
                pick.shorts[entry.pick.line] = entry.pick.short
                if entry.at is not None:  # several times for one order: the latest counts
                    pick.at = entry.at if pick.at is None else max(pick.at, entry.at)
            elif kind == "scans" and entry.scans is not None:
                self.scans[entry.scans.order] = entry.scans.events
            elif entry.at is not None:
                (self.calls if kind in CALLS else self.stock).append((entry.at, index, entry))
        self.calls.sort(key=_timed)
        self.stock.sort(key=_timed)

    def __bool__(self) -> bool:
        return bool(self.orders or self.picks or self.scans or self.calls or self.stock)


def _timed(item: Timed) -> tuple[float, int]:
    return item[0], item[1]
