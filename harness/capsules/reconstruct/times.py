"""When the capsule's day happens: its epoch (virtual time zero), start and horizon."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from harness import scenario as scenarios
from harness.capsules.evidence import parse_time
from harness.capsules.reconstruct.builder import Builder
from harness.scripted import DAY_S


def set_epoch(b: Builder) -> None:
    """Virtual time zero. A run's journal is on its own clock: anchored by an order's
    release (state) against its ``order.released`` delivery (journal). Otherwise midnight of
    the first recorded day."""
    ev = b.evidence
    if ev.state is not None:
        released = {
            o.get("id"): parse_time(o.get("released_at"))
            for o in (ev.state.get("erp") or {}).get("orders") or []
        }
        for x in ev.exchanges:
            if x.vt is not None and x.event_type == "order.released" and released.get(x.ref):
                moment = released[x.ref]
                assert moment is not None
                shifted = moment - timedelta(seconds=x.vt)  # a midnight, give or take a second
                b.epoch = _midnight(shifted + timedelta(hours=12))
                return
    if b.original is not None:
        b.epoch = b.original.epoch
        return
    moments: list[datetime] = [x.at for x in ev.exchanges if x.at is not None]
    moments += [e.occurred_at for e in ev.events if e.occurred_at is not None]
    moments += [e.delivered_at for e in ev.events if e.delivered_at is not None]
    if ev.state is not None:
        moments += [
            t
            for o in (ev.state.get("erp") or {}).get("orders") or []
            if (t := parse_time(o.get("created_at"))) is not None
        ]
    if moments:
        b.epoch = _midnight(min(moments))
    elif b.journal_only():
        b.epoch = scenarios.Scenario().epoch
        b.note("the journal does not say the date: the capsule starts on the default day")


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def start(
    b: Builder, orders: list[dict[str, Any]], timeline: list[dict[str, Any]]
) -> datetime | None:
    """The run's own start; otherwise the hour of the first thing that happens (08:00 when
    nothing does)."""
    begins = b.original.start if b.original is not None else None
    if begins is None and b.epoch is not None:
        first = min(_times(orders, timeline), default=8 * 3600.0)
        begins = b.epoch + timedelta(seconds=math.floor(first / 3600) * 3600)
    return begins


def horizon_days(b: Builder, orders: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> float:
    """Days enough for the road after the last thing that happens (a parcel still to
    deliver) and a day after the last scan (for freight to settle); never less than the run's
    own horizon; at most 60."""
    carrier = b.base.get("carrier") or {}
    transit = max(
        int(carrier.get("ground_transit_days", 2)), int(carrier.get("express_transit_days", 1))
    )
    unscanned = [t for t in timeline if "scans" not in t]
    last = max(
        [*_times(orders, unscanned), *(f["at"] + f.get("for", 0) for f in b.faults)],
        default=0.0,
    )
    scanned = max((when for events in b.scans.values() for _, when in events), default=0.0)
    horizon = math.ceil(max(last + (transit + 2) * DAY_S, scanned + DAY_S) / DAY_S)
    if b.original is not None:
        horizon = max(horizon, float(b.base.get("horizon_days") or 0))
    return min(60, horizon)


def _times(orders: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> list[float]:
    """When each order is placed and each timed entry happens."""
    return [o["at"] for o in orders] + [t["_vt"] for t in timeline if t.get("_vt") is not None]


def floor3(value: float) -> float:
    """Down to the millisecond: a fault window opens no later than the first hit."""
    return math.floor(value * 1000) / 1000


def ceil3(value: float) -> float:
    """Up to the millisecond: a fault window closes no earlier than the last hit."""
    return math.ceil(value * 1000) / 1000
