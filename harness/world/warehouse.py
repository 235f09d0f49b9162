"""The warehouse floor: waves, pickers and packers on shifts, the dock and the truck.

A fulfilment order exists only once the stack has created it in the WMS; the floor learns
of it from the WMS and acts only through the WMS model, as a real floor acts through its WMS:

1. **Planning.** An order goes to the floor in the first wave that starts at least
   ``waves.lead_minutes`` after its ERP release (or, without waves, that long after release).
   Membership is decided by the ERP release time, a business fact, not by when the stack
   happened to create the WMS order, so any stack fast enough to create it within the lead
   puts every order in the same wave.
2. **Picking.** Pickers on shift take the most urgent order in the pick queue (earliest
   wave, express first, then the order of arrival), walk the lines, and report what they
   found to the WMS. The queue is a priority queue keyed by business identity: the order in
   which the stack created fulfilment orders never decides who is picked first. A scripted
   pick (docs/capsules.md) says how many units of a line are not found, and may say when
   the picker is done.
3. **Packing.** Packers box what was picked, in the same order of urgency.
4. **The dock.** A packed order waits for the stack's label; at cut-off the truck takes every
   labelled parcel packed at least ``staging_minutes`` before.

People come and go with the rota: at a shift's start its headcount clocks in; at its end the
same number clock off, each after finishing the order in hand. Off shift, no one picks.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import simpy

from harness.world.randomness import Draws
from simulators.common.errors import SimError

if TYPE_CHECKING:
    from harness.scenario import Shift, Site
    from harness.world.stock import Shelves
    from harness.world.world import World

DAY = 86_400.0
MINUTE = 60.0
UNKNOWN_ORDER = 10**12  # rank of an order the world did not place (it sorts last)

Rank = tuple[float, int, int, str]


def seconds_of_day(t: Any) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second


@dataclass(slots=True, eq=False)
class Job:
    """One fulfilment order on its way across the floor."""

    fo: Any  # the WMS's FulfilmentOrder: the floor reads its status, never writes it
    key: str  # the business identity its random draws are keyed by
    rank: Rank  # its place in every queue: (floor time, express first, order number, FO id)
    planned: float  # from this time on it is planned for the floor: too late to cancel
    started: bool = False  # a picker has taken it
    packed_at: float = math.inf


def _by_rank(job: Job) -> Rank:
    return job.rank


class Crew:
    """People doing one kind of work, as a SimPy resource: a priority queue of jobs and the
    workers on shift. Each worker takes the most urgent job waiting, does it, takes the next;
    a clock-off slip outranks every job, so a worker leaves after the job in hand.

    Why not a stock SimPy resource: ``PriorityResource`` re-sorts its whole queue on every
    request (a wave of thousands waiting makes that quadratic), and holding off-duty slots
    needs a request per absent worker; a ``PriorityStore`` does this job with two extra
    events per job. Here one heap holds the jobs, an idle worker is handed its job directly,
    and a busy one takes the next without waiting.
    """

    def __init__(
        self, env: simpy.Environment, work: Callable[[Job], Generator[Any, Any, None]]
    ) -> None:
        self.env = env
        self.work = work
        self.queue: list[tuple[Any, Job | None]] = []  # heap: (rank, job); None = clock off
        self.idle: list[simpy.Event] = []  # workers on shift with nothing to do
        self.present = 0
        self._slips = itertools.count()

    def clock_in(self, headcount: int) -> None:
        for _ in range(headcount):
            self.present += 1
            self.env.process(self._on_shift())

    def clock_off(self, headcount: int) -> None:
        for _ in range(headcount):
            if self.idle:
                self.idle.pop().succeed(None)
            else:
                heapq.heappush(self.queue, ((-1.0, next(self._slips)), None))

    def add(self, job: Job) -> None:
        if self.idle:
            self.idle.pop().succeed(job)
        else:
            heapq.heappush(self.queue, (job.rank, job))

    def _on_shift(self) -> Generator[Any, Any, None]:
        while True:
            if self.queue:
                _, job = heapq.heappop(self.queue)
            else:
                wake = self.env.event()
                self.idle.append(wake)
                job = yield wake
            if job is None:
                self.present -= 1
                return
            yield from self.work(job)


class Floor:
    def __init__(self, world: World, site: Site | None = None, shelves: Shelves | None = None):
        self.world = world
        self.env = env = world.env
        self.wms = world.wms
        self.shelves = shelves or world.shelves
        wh = world.scenario.warehouse
        self.every = wh.waves.every_minutes * MINUTE
        self.lead = wh.waves.lead_minutes * MINUTE
        self.pick_s_per_line = wh.pick_minutes_per_line * MINUTE
        self.pack_s = wh.pack_minutes * MINUTE
        self.cutoff = seconds_of_day(site.cutoff if site else wh.cutoff)
        self.staging = wh.staging_minutes * MINUTE
        self.pickers = Crew(env, self._pick)
        self.packers = Crew(env, self._pack)
        self.jobs: dict[str, Job] = {}  # on the floor: from WMS creation until packed
        self.on_floor = 0
        self.dock: dict[str, Job] = {}  # packed, waiting for the label and the truck
        self._waves: dict[float, list[Job]] = {}
        self._last_wave = -math.inf
        self._work = env.event()  # fires when new work arrives (wakes parked rota and truck)
        if site is not None:  # another site: its own staff, all day
            self.pickers.clock_in(site.pickers)
            self.packers.clock_in(site.packers)
        elif wh.shifts:
            for shift in wh.shifts:
                env.process(self._rota(shift))
        else:
            self.pickers.clock_in(wh.pickers)
            self.packers.clock_in(wh.packers)
        env.process(self._truck())

    # -- planning ------------------------------------------------------------------------
    def schedule(self, released: float) -> tuple[float, float]:
        """``(floor time, planned time)`` of an order released to fulfilment at ``released``."""
        due = released + self.lead
        if not self.every:
            return due, due
        wave = math.ceil(due / self.every) * self.every
        return wave, wave - self.lead

    def arrived(self, fo: Any) -> None:
        """The stack created a fulfilment order in the WMS: plan it for the floor."""
        world, now = self.world, self.env.now
        released = world.customers.released_at.get(fo.order_ref, now)
        due, planned = self.schedule(released)
        if self.every:
            if due < now or due <= self._last_wave:  # its wave has gone: the next one
                due = max(math.ceil(now / self.every) * self.every, self._last_wave + self.every)
                planned = due - self.lead
        else:
            due = max(due, now)
        number = world.customers.place(fo.order_ref)
        rank = (due, 0 if fo.service_level == "express" else 1, number, fo.id)
        job = Job(fo, world.entity_key(fo), rank, planned)
        self.jobs[fo.id] = job
        self.on_floor += 1
        self._wake()
        if self.every:
            wave = self._waves.get(due)
            if wave is None:
                self._waves[due] = wave = []
                self.env.process(self._wave(due))
            wave.append(job)
        elif due <= now:
            self._to_pickers(job)
        else:
            self.env.timeout(due - now).callbacks.append(lambda _: self._to_pickers(job))

    def _wave(self, at: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(at - self.env.now)
        self._last_wave = at
        for job in sorted(self._waves.pop(at), key=_by_rank):  # most urgent first
            self._to_pickers(job)

    def _to_pickers(self, job: Job) -> None:
        if job.fo.status == "accepted":
            self.pickers.add(job)
        else:
            self._leaves(job)  # cancelled before its wave went out

    def planned_at(self, order_ref: str) -> float:
        """When the order is (or will be) planned for the floor: cancellations end there."""
        for fo_id in self.wms.by_ref.get(order_ref, ()):
            job = self.jobs.get(fo_id)
            if job is not None:
                return job.planned
        released = self.world.customers.released_at.get(order_ref)
        return -math.inf if released is None else self.schedule(released)[1]

    def may_cancel(self, order_ref: str) -> bool:
        """Customer service's question: has the warehouse started on this order yet?"""
        for fo in self.wms.find(order_ref):
            if fo.status == "cancelled":
                continue
            job = self.jobs.get(fo.id)
            if fo.status != "accepted" or (job is not None and job.started):
                return False
        return self.env.now < self.planned_at(order_ref)

    def _leaves(self, job: Job) -> None:
        if self.jobs.pop(job.fo.id, None) is not None:
            self.on_floor -= 1

    # -- the rota ------------------------------------------------------------------------
    def _rota(self, shift: Shift) -> Generator[Any, Any, None]:
        """One shift, every day: clock in its headcount at start, clock them off at end."""
        env, world = self.env, self.world
        start = seconds_of_day(shift.start)
        length = (seconds_of_day(shift.end) - start) % DAY
        day = -1  # a night shift that began yesterday is on the floor at midnight
        while day < world.days:
            on = day * DAY + start
            off = on + length
            if off <= env.now:
                day += 1
                continue
            if not world.floor_needed():
                yield self._work  # nobody is needed: wait until work turns up
                continue
            if on > env.now:
                yield env.timeout(on - env.now)
            self.pickers.clock_in(shift.pickers)
            self.packers.clock_in(shift.packers)
            yield env.timeout(off - env.now)
            self.pickers.clock_off(shift.pickers)
            self.packers.clock_off(shift.packers)
            day += 1

    def _wake(self) -> None:
        """Wake whoever parked for lack of work (costs nothing when no one did)."""
        if self._work.callbacks:
            self._work.succeed()
            self._work = self.env.event()

    # -- picking and packing -------------------------------------------------------------
    def _pick(self, job: Job) -> Generator[Any, Any, None]:
        fo, world = job.fo, self.world
        if fo.status != "accepted":
            self._leaves(job)  # cancelled while it waited for a picker
            return
        job.started = True
        draws = Draws(world.seed, job.key, "pick")
        walk = self.pick_s_per_line * len(fo.lines) * draws.uniform(0.7, 1.3)
        script = world.script.picks.get(job.key)  # a duplicate FO's key is its own: unscripted
        if script is not None and script.at is not None:
            walk = max(0.0, script.at - self.env.now)  # the script says when the pick is done
        yield self.env.timeout(walk)
        if fo.status != "accepted":
            self._leaves(job)  # cancelled during the walk: the picker puts the tote back
            return
        if script is None:
            picked = self.shelves.take(fo, draws)
        else:
            picked = self.shelves.take_as_scripted(fo, script.shorts, job.key)
        try:
            self.wms.pick(fo.id, picked)
        except SimError as exc:
            self.shelves.put_back(fo, picked)
            world.incident(f"{fo.id}: the WMS refused the pick: {exc.code}: {exc.message}")
            self._leaves(job)
            return
        if fo.status == "picked":
            self.packers.add(job)
        else:
            world.counts["short_closed"] += 1
            self._leaves(job)

    def _pack(self, job: Job) -> Generator[Any, Any, None]:
        fo = job.fo
        if fo.status == "picked":
            yield self.env.timeout(self.pack_s)
        self._leaves(job)
        if fo.status != "picked":
            return  # cancelled at the packing bench: the stack's cancel put the goods back
        try:
            self.wms.pack(fo.id)
        except SimError as exc:
            self.world.incident(f"{fo.id}: the WMS refused to pack: {exc.code}: {exc.message}")
            return
        job.packed_at = self.env.now
        self.dock[fo.id] = job
        self._wake()

    # -- the dock and the truck ----------------------------------------------------------
    def _truck(self) -> Generator[Any, Any, None]:
        """The carrier's truck, daily at cut-off, while there is anything to take."""
        env, world = self.env, self.world
        day = 0
        while day < world.days:
            leaves = day * DAY + self.cutoff
            if leaves < env.now:
                day += 1
                continue
            if not self.dock and not world.floor_needed():
                yield self._work  # nothing packed and nothing coming: park
                continue
            yield env.timeout(leaves - env.now)
            self.load(leaves - self.staging)
            day += 1

    def load(self, packed_by: float) -> None:
        """Load every labelled parcel packed by ``packed_by``; the rest wait for tomorrow."""
        world, loads = self.world, []
        for fo_id, job in list(self.dock.items()):
            fo = job.fo
            if fo.status not in ("packed", "labelled"):
                del self.dock[fo_id]  # cancelled on the dock
            elif fo.status == "labelled" and job.packed_at <= packed_by:
                del self.dock[fo_id]
                try:
                    self.wms.ship(fo_id)
                except SimError as exc:
                    world.incident(f"{fo_id}: the WMS refused to ship: {exc.code}: {exc.message}")
                    continue
                world.counts["shipped"] += 1
                loads.append((fo.label.tracking_number, fo.service_level, job.key))
        world.road.take(loads)

    def cancelled(self, fo: Any) -> None:
        """The stack cancelled a fulfilment order (the WMS says so)."""
        self.dock.pop(fo.id, None)
