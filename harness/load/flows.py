"""Business flows as load statistics: how long the stack takes to carry each business event
to the next system, measured live from what the simulators see.

- ``release -> wms order`` (``release_latency``): the ERP releases the order; the WMS answers
  the stack's create.
- ``packed -> label bought`` (``label_latency``): the WMS packs it; the carrier sells the stack
  its label.
- ``shipped -> goods issue`` (``confirmation_latency``): the WMS ships it; the ERP takes the
  stack's goods issue.
- ``scan -> erp tracking`` (``tracking_latency``): the carrier scans the parcel; the ERP holds
  the scan (or a later one: a stack may drop a stale scan).
- ``settlement -> accrual`` (``accrual_latency``): the TMS settles the freight; the ERP takes
  the stack's accrual.

A flow starts at the event the simulator emits (its model's ``emit``, teed here, so a stack
that polls is measured the same as one that takes webhooks) and ends at the journal entry of
the stack's request that completed it (journalled when the simulator answered). Both are
read on the wall clock (``time.time()``), so a flow's time is what the stack really took;
its service-level sample is that time in virtual seconds (x the clock's factor), the unit of
every threshold in ``expect.slos``. A flow still open when the day ends is a failure.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from harness.slos import STATISTICS, ServiceLevel, epoch_seconds, statistic
from simulators.common.journal import JournalEntry
from simulators.common.simulator import Simulator

ROW = "flow: "  # Locust row names: "flow: release -> wms order"
REQUEST_TYPE = "flow"
# measure (expect.slos) -> flow, in the order of the choreography
FLOWS: dict[str, str] = {
    "release_latency": "release -> wms order",
    "label_latency": "packed -> label bought",
    "confirmation_latency": "shipped -> goods issue",
    "tracking_latency": "scan -> erp tracking",
    "accrual_latency": "settlement -> accrual",
}
STARTS = {  # (system, event type) -> measure
    ("erp", "order.released"): "release_latency",
    ("wms", "order.packed"): "label_latency",
    ("wms", "order.shipped"): "confirmation_latency",
    ("carrier", "tracking.updated"): "tracking_latency",
    ("tms", "freight.settled"): "accrual_latency",
}


@dataclass(slots=True)
class Started:
    """A flow under way: what it is about and when it started."""

    measure: str
    key: str  # the order, or for a scan the parcel's scan, or for freight the shipment
    order: str  # the ERP order it concerns
    wall: float  # time.time() at the start
    virtual: float  # the virtual clock then (seconds since the epoch's midnight)
    status: str = ""  # a scan's milestone
    occurred_at: str = ""  # a scan's timestamp, as the carrier sent it


@dataclass(slots=True)
class Record:
    """A flow that ended: completed (``ok``) or, at the day's end, never completed."""

    measure: str
    wall_ms: float
    ok: bool
    order: str

    @property
    def row(self) -> str:
        return ROW + FLOWS[self.measure]

    def to_list(self) -> list[Any]:
        return [self.row, round(self.wall_ms, 3), self.ok, self.order]


class FlowWatch:
    """Follows the simulators during a load run: flows started, completed and still open."""

    def __init__(self, sims: dict[str, Simulator], clock: Any, epoch_s: float) -> None:
        self.sims = sims
        self.clock = clock
        self.epoch_s = epoch_s  # the scenario's epoch as Unix seconds (for sample times)
        self.open: dict[str, dict[str, Started]] = {m: {} for m in FLOWS}
        self.seen: dict[str, set[str]] = {m: set() for m in FLOWS}  # keys ever started
        self.scans: dict[str, dict[str, Started]] = defaultdict(dict)  # order -> open scans
        self.freight: dict[str, set[str]] = defaultdict(set)  # order -> open settlements
        self.records: list[Record] = []
        self.samples: dict[str, list[tuple[float, float]]] = {m: [] for m in FLOWS}
        self.backlog: list[tuple[float, dict[str, int]]] = []  # (virtual s, open per measure)
        self._cursors = dict.fromkeys(sims, 0)
        for system, sim in sims.items():
            self._tee(system, sim)

    # -- starts: the events the simulators emit ---------------------------------------------
    def _tee(self, system: str, sim: Simulator) -> None:
        """Hear every event the model emits before the simulator publishes it."""
        publish = sim.webhooks.publish

        def emit(event_type: str, data: dict[str, Any], ref: str | None) -> None:
            measure = STARTS.get((system, event_type))
            if measure is not None:
                self._started(measure, data, ref)
            publish(event_type, data, ref)

        sim.model.bind(emit)

    def _started(self, measure: str, data: dict[str, Any], ref: str | None) -> None:
        order = ref or ""
        key = order
        status = occurred_at = ""
        if measure == "tracking_latency":
            order = self._order_of_shipment(ref)
            key = f"{data.get('tracking_number')}#{data.get('sequence')}"
            status, occurred_at = str(data.get("status")), str(data.get("occurred_at"))
        elif measure == "accrual_latency":
            key = str(data.get("shipment_id") or ref)
        if not key or key in self.seen[measure]:
            return  # a second WMS order of the same order: the flow is the order's, once
        self.seen[measure].add(key)
        started = Started(measure, key, order, time.time(), self.clock.now(), status, occurred_at)
        self.open[measure][key] = started
        if measure == "tracking_latency":
            self.scans[order][key] = started
        elif measure == "accrual_latency":
            self.freight[order].add(key)

    def _order_of_shipment(self, shipment_ref: str | None) -> str:
        shipment = self.sims["tms"].model.shipments.get(shipment_ref)  # type: ignore[attr-defined]
        return shipment.order_ref if shipment is not None else (shipment_ref or "")

    # -- ends: the stack's requests, as the simulators journalled them ----------------------
    def poll(self) -> None:
        """Read what the simulators journalled since the last poll and close the flows the
        stack's requests completed."""
        for system, sim in self.sims.items():
            cursor = self._cursors[system]
            if len(sim.journal) <= cursor:
                continue
            entries = sim.journal.entries[cursor:]
            self._cursors[system] = cursor + len(entries)
            for entry in entries:
                if entry.direction == "in" and entry.method == "POST" and 200 <= entry.status < 300:
                    self._ended(system, entry)

    def _ended(self, system: str, entry: JournalEntry) -> None:
        path, ref = entry.path, entry.ref or ""
        if system == "wms" and path == "/fulfilment-orders":
            self._close("release_latency", ref, entry.wall_time)
        elif system == "carrier" and path == "/labels":
            self._close("label_latency", self._order_of_shipment(ref), entry.wall_time)
        elif system == "erp" and path.endswith("/goods-issue"):
            self._close("confirmation_latency", ref, entry.wall_time)
        elif system == "erp" and path.endswith("/tracking"):
            self._tracked(ref, entry.wall_time)
        elif system == "erp" and path == "/freight-accruals":
            for key in self.freight.pop(ref, ()):
                self._close("accrual_latency", key, entry.wall_time)

    def _tracked(self, order_id: str, wall: float) -> None:
        """The ERP took a scan for this order: every open scan it now holds, or that a later
        scan it holds supersedes (a stack may drop a stale scan), is done."""
        waiting = self.scans.get(order_id)
        order = self.sims["erp"].model.orders.get(order_id)  # type: ignore[attr-defined]
        if not waiting or order is None:
            return
        held = {(h["status"], _instant(h["occurred_at"])) for h in order.tracking_history}
        latest = max((at for _, at in held), default=-math.inf)
        for key, started in list(waiting.items()):
            at = _instant(started.occurred_at)
            if (started.status, at) in held or at < latest:
                del waiting[key]
                self._close("tracking_latency", key, wall)

    def _close(self, measure: str, key: str, wall: float) -> None:
        started = self.open[measure].pop(key, None)
        if started is None:
            return
        seconds = max(0.0, wall - started.wall)
        self.records.append(Record(measure, seconds * 1000, True, started.order))
        self.samples[measure].append((self.epoch_s + started.virtual, seconds * self.clock.factor))

    # -- the day's end -----------------------------------------------------------------------
    def sample_backlog(self) -> None:
        """How many flows of each kind are open now: the stack's backlog per stage."""
        self.backlog.append((self.clock.now(), {m: len(self.open[m]) for m in FLOWS}))

    def times(self) -> dict[str, list[tuple[float, float, bool]]]:
        """Every flow so far as ``(virtual start, virtual seconds, completed)``; a flow still
        open counts with its age now (a lower bound on its time). Read before ``finish``."""
        now = time.time()
        found: dict[str, list[tuple[float, float, bool]]] = {}
        for measure in FLOWS:
            done = [(at - self.epoch_s, v, True) for at, v in self.samples[measure]]
            still = [
                (s.virtual, max(0.0, now - s.wall) * self.clock.factor, False)
                for s in self.open[measure].values()
            ]
            found[measure] = done + still
        return found

    def finish(self) -> dict[str, list[str]]:
        """The day is over: every flow still open never completed. Each becomes a failed
        record (its age as its time); returns the orders left open, per measure."""
        self.poll()
        now = time.time()
        never: dict[str, list[str]] = {}
        for measure, still in self.open.items():
            for started in still.values():
                self.records.append(
                    Record(measure, max(0.0, now - started.wall) * 1000, False, started.order)
                )
            if still:
                never[measure] = sorted({s.order for s in still.values()})
            still.clear()
        self.scans.clear()
        self.freight.clear()
        return never

    def service_levels(self, thresholds: dict[str, dict[str, float]]) -> list[ServiceLevel]:
        """One service level per flow, in virtual seconds, judged against ``expect.slos``."""
        return [
            ServiceLevel(
                measure,
                [latency for _, latency in self.samples[measure]],
                dict(thresholds.get(measure, {})),
                [at for at, _ in self.samples[measure]],
            )
            for measure in FLOWS
        ]

    def counts(self) -> dict[str, dict[str, int]]:
        """Completed and never-completed flows per measure."""
        done: dict[str, dict[str, int]] = {m: {"completed": 0, "never": 0} for m in FLOWS}
        for record in self.records:
            done[record.measure]["completed" if record.ok else "never"] += 1
        return done

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per flow: its Locust row, how many completed and never did, and the wall
        milliseconds of those that completed (p50, p95, p99, max), as Locust shows them."""
        wall: dict[str, list[float]] = {m: [] for m in FLOWS}
        for record in self.records:
            if record.ok:
                wall[record.measure].append(record.wall_ms)
        found: dict[str, dict[str, Any]] = {}
        for measure, counts in self.counts().items():
            ordered = sorted(wall[measure])
            found[measure] = {
                "row": ROW + FLOWS[measure],
                **counts,
                **{f"{name}_ms": statistic(ordered, name) for name in STATISTICS},
            }
        return found


def _instant(stamp: str) -> float:
    """A timestamp as Unix seconds, however the stack wrote it (``Z`` or ``+00:00``)."""
    try:
        return epoch_seconds(stamp)
    except (TypeError, ValueError):
        return -math.inf
