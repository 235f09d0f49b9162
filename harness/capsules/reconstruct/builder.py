"""What a reconstruction gathers from the evidence before it writes the scenario data.

The readers (``state``, ``recorded``) fill a ``Builder`` with facts, the better source first;
the writers (``orders``, ``timeline``, ``world``, ``times``, ``faults``) turn it into the
capsule's sections. Anything that cannot be mapped goes to ``Builder.unmapped`` with why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness import scenario as scenarios
from harness.capsules.evidence import Event, Evidence, Exchange, parse_time

FAR = datetime(9999, 1, 1, tzinfo=UTC)  # sorts what has no time after everything that has
CLUSTER_GAP_S = 600.0  # fault hits further apart than this are separate windows


@dataclass
class Reconstruction:
    """The scenario data of a capsule, and what it is made of."""

    data: dict[str, Any]
    orders: int
    timeline: int
    faults: int
    unmapped: list[str]
    sources: list[str]
    kinds: list[str]
    original: str | None = None  # the scenario file a run was played from, when read


@dataclass
class Order:
    """What is known of one order so far (a field stays None until a source gives it)."""

    id: str
    at: float | None = None
    lines: list[dict[str, Any]] | None = None
    service_level: str | None = None
    ship_to: dict[str, Any] | None = None
    customer: dict[str, Any] | None = None
    where: str = ""


@dataclass
class Hit:
    """One exchange a fault hit (or seemed to), for grouping into windows."""

    vt: float
    system: str
    spec: tuple[tuple[str, Any], ...]  # kind and its parameters
    method: str
    path: str
    ref: str | None
    event: str | None = None
    match: str | None = None
    ms: int = 0  # latency: the delay it added (kept out of ``spec``: one window, the longest)


@dataclass
class Builder:
    evidence: Evidence
    epoch: datetime | None = None
    orders: dict[str, Order] = field(default_factory=dict)
    picks: dict[str, tuple[float | None, dict[int, int]]] = field(default_factory=dict)
    cancels: dict[str, float] = field(default_factory=dict)
    addresses: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    scans: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    receipts: list[tuple[float, str, int]] = field(default_factory=list)
    adjustments: list[tuple[float, str, int, str]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    tracking: dict[str, str] = field(default_factory=dict)  # tracking number -> order
    shipments: dict[str, str] = field(default_factory=dict)  # shipment -> order
    fulfilment: dict[str, str] = field(default_factory=dict)  # WMS order -> order
    base: dict[str, Any] = field(default_factory=dict)  # the original scenario's data
    original: scenarios.Scenario | None = None
    original_file: str | None = None
    generated: int = 0  # a journal without state, seed known: keep the day's generated orders
    sku_map: dict[str, str] = field(default_factory=dict)
    # picks and scans read before the orders (or parcels) they belong to are known
    pending_picks: list[tuple[str, float | None, list[Any], str]] = field(default_factory=list)
    pending_scans: list[tuple[str, str, float | None, str]] = field(default_factory=list)

    def vt(self, moment: datetime | str | None) -> float | None:
        """Virtual seconds since the capsule's epoch (None: no moment, or no epoch yet)."""
        if isinstance(moment, str):
            moment = parse_time(moment)
        if moment is None or self.epoch is None:
            return None
        return (moment - self.epoch).total_seconds()

    def when(self, exchange: Exchange) -> float | None:
        """A journal line is on the run's clock already; a HAR entry is on the wall's."""
        return exchange.vt if exchange.vt is not None else self.vt(exchange.at)

    def journal_only(self) -> bool:
        """Whether the exchanges are a journal's (virtual times, no bodies)."""
        return any(x.vt is not None for x in self.evidence.exchanges)

    def note(self, text: str) -> None:
        self.unmapped.append(text)


def event_ref(e: Event) -> str | None:
    """The business id an event is about: faults match it, never the event id (the replay's
    events get new ones)."""
    d = e.data
    for key in ("order_ref", "order_id", "id", "tracking_number", "sku", "receipt_id"):
        if isinstance(d.get(key), str):
            return d[key]
    return None


def line_no(line: dict[str, Any]) -> int:
    return int(line.get("line") or 0)
