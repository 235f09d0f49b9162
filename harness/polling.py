"""What lockstep can see of a stack that polls: which feeds it reads, and what it still owes.

A stack that never takes webhooks asks each vendor what changed on a schedule of its own
(every few minutes, nightly at 02:00). Lockstep jumps virtual time whenever the system is
quiet, and a polling stack is quiet between its polls: jumping then lets hours of world pass
before it reads once, and every truck leaves without it. So virtual time moves in step with
the stack's cycles instead. One observed read of a feed stands for one declared interval:

- a feed is *stale* once its system published an event the stack has not read yet (the
  simulators append every event to their feed, ``docs/feeds.md``; a read is a GET of the
  feed's route that began after the event);
- a stale feed is *owed* at the first tick of its interval after the change (ticks are the
  multiples of ``every`` counted from midnight of day 0: a poll every 5 minutes reads at
  10:05 what happened at 10:01);
- lockstep may play the world up to that tick, then waits there (virtual time frozen) until
  the stack has read the feed and gone quiet. A day job (``at: "02:00"``) is owed at its time
  every day, whether anything changed or not.

Which feeds a stack reads comes from ``stack.schedule`` or is learnt from its requests: a GET
of ``/events``, or of any list with ``updated_since``, ``after`` or ``page_token``.
Latencies then measure the schedule, and a run is as fast as the stack's cycles allow.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

from harness.scenario import ScheduledRead
from simulators.common.simulator import Simulator

DAY = 86_400.0
FEED_PATH = "/events"
CHANGE_PARAMETERS = frozenset({"updated_since", "after", "page_token", "since", "cursor"})


@dataclass
class Feed:
    """One system's changes as one stack reads them."""

    system: str
    every_s: float
    read_started: float = -math.inf  # wall time the newest read began
    seen: int = 0  # the feed's newest position when the system was last found read
    changed_at: float | None = None  # virtual time of the oldest change not read yet
    changed_wall: float = -math.inf  # wall time that change was first seen

    @property
    def owed_at(self, world_goes_on: bool = True) -> float | None:
        """The first tick of the interval after the oldest unread change (None: all read)."""
        if self.changed_at is None:
            return None
        return (math.floor(self.changed_at / self.every_s) + 1) * self.every_s


@dataclass
class DayJob:
    """A read the stack runs at a time of day (a nightly stock sync)."""

    system: str
    route: str
    at_s: float  # seconds after midnight
    next_due: float  # virtual time of the next run owed
    reached_wall: float | None = None  # wall time virtual time reached ``next_due``


class PollWatch:
    """Reads the simulators' journals and feeds as they grow; says what the stack owes."""

    def __init__(
        self, sims: Sequence[Simulator], schedule: Sequence[ScheduledRead], poll_every: float
    ) -> None:
        self.sims = {sim.system: sim for sim in sims}
        self.poll_every = poll_every
        self.routes: dict[str, list[str]] = {}  # system -> route prefixes the schedule names
        self.intervals: dict[str, float] = {}
        self.jobs: list[DayJob] = []
        for read in schedule:
            self.routes.setdefault(read.system, []).append(read.route)
            if read.every is not None:
                every = min(self.intervals.get(read.system, math.inf), read.every)
                self.intervals[read.system] = every
            else:
                assert read.at is not None
                at_s = read.at.hour * 3600 + read.at.minute * 60 + read.at.second
                self.jobs.append(DayJob(read.system, read.route, at_s, at_s))
        self.feeds: dict[str, Feed] = {
            system: Feed(system, every) for system, every in self.intervals.items()
        }
        self._journal_read = dict.fromkeys(self.sims, 0)
        self.reads = 0

    @property
    def active(self) -> bool:
        """Whether the stack polls: declared, or seen reading a feed."""
        return bool(self.feeds or self.jobs)

    def observe(self, now: float) -> None:
        """Take in new reads from the journals and new events from the feeds."""
        for system, sim in self.sims.items():
            entries = sim.journal.entries
            for entry in entries[self._journal_read[system] :]:
                if entry.direction == "in" and entry.method == "GET" and entry.status:
                    self._read(system, entry.path, entry.query, entry.wall_time, entry.duration_ms)
            self._journal_read[system] = len(entries)
        wall = time.time()
        for feed in self.feeds.values():
            newest = self.sims[feed.system].webhooks.feed.newest
            if newest == feed.seen:
                continue
            if feed.read_started > feed.changed_wall and feed.changed_at is not None:
                # read since the last change was noted: everything noted then is read
                feed.changed_at = None
            if feed.changed_at is None:
                feed.changed_at, feed.changed_wall = now, wall
            feed.seen = newest
        for feed in self.feeds.values():
            if feed.changed_at is not None and feed.read_started > feed.changed_wall:
                feed.changed_at = None

    def _read(self, system: str, path: str, query: str, wall: float, duration_ms: float) -> None:
        declared = self.routes.get(system)
        if declared is not None:
            if not any(path == r or path.startswith(r.rstrip("/") + "/") for r in declared):
                return
        elif path != FEED_PATH and not CHANGE_PARAMETERS & parse_qs(query).keys():
            return
        started = wall - duration_ms / 1000
        feed = self.feeds.get(system)
        if feed is None:  # learnt: the stack reads this system's changes
            feed = self.feeds[system] = Feed(system, self.poll_every)
            feed.seen = self.sims[system].webhooks.feed.newest
        feed.read_started = max(feed.read_started, started)
        for job in self.jobs:
            ran = job.reached_wall is not None and started >= job.reached_wall
            if ran and job.system == system and path.startswith(job.route):
                job.next_due += DAY  # today's run is done; tomorrow's is owed
                job.reached_wall = None
        self.reads += 1

    def owed_at(self, world_goes_on: bool = True) -> float | None:
        """The earliest virtual time by which the stack owes a read, or None."""
        ticks = [feed.owed_at for feed in self.feeds.values() if feed.owed_at is not None]
        if world_goes_on:  # a day job alone does not keep an ended world running
            ticks += [job.next_due for job in self.jobs]
        return min(ticks, default=None)

    def reached(self, t: float) -> None:
        """Virtual time stands at ``t``: day jobs due by then are owed from this wall moment."""
        wall = time.time()
        for job in self.jobs:
            if job.next_due <= t and job.reached_wall is None:
                job.reached_wall = wall

    def owing(self, now: float) -> list[str]:
        """What the stack has not read yet that it owes by ``now`` (empty: nothing)."""
        late = [
            f"{feed.system} changes since {_clock(feed.changed_at)}"
            for feed in self.feeds.values()
            if feed.changed_at is not None and feed.owed_at is not None and feed.owed_at <= now
        ]
        late += [
            f"{job.system} {job.route} due at {_clock(job.next_due)}"
            for job in self.jobs
            if job.next_due <= now
        ]
        return late

    def forgive(self, now: float) -> None:
        """The stack did not read in time: stop owing what was due by ``now``. A feed that was
        only learnt (read once, say at start-up, by a stack that takes webhooks) is dropped:
        the stack does not poll it."""
        for system, feed in list(self.feeds.items()):
            owed = feed.owed_at
            if owed is not None and owed <= now:
                feed.changed_at = None
                if system not in self.intervals:
                    del self.feeds[system]
        for job in self.jobs:
            if job.next_due <= now:
                job.next_due += DAY
                job.reached_wall = None


def _clock(t: float) -> str:
    day, rest = divmod(int(t), int(DAY))
    hours, rest = divmod(rest, 3600)
    return f"day {day} {hours:02d}:{rest // 60:02d}"
