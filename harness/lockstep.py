"""Lockstep: advance virtual time to the next thing due, but only once the system is quiet.

Quiet means no request in flight at any simulator, no webhook delivery queued or on the
wire, and the stack idle by its probe (or, without a probe, silent for a settle window).
Stretches with nothing scheduled cost no wall time: the clock jumps straight over them.

Except one: a stack waiting on retry timers of its own lives on the wall clock, and jumping
would let the world run past an outage, a cut-off or the end of the day before the stack
tried again. While it may be waiting, virtual time moves at the clock's ``pace`` (virtual
seconds per wall second), the same rate the simulators use to turn a virtual wait into the
wall-second Retry-After they send; so a stack that honours Retry-After comes back just as the
window it was told about has passed. Lockstep infers the wait from what it sees
(``harness.timers``: a refused call not yet retried, a simulator down or just back up); a
probe that reports ``scheduled`` work only adds what cannot be seen.

A stack with no probe is quiet when it has been silent for a settle window after the last
exchange. The window is learnt: it starts at ``stack.settle_ms`` and shrinks to a few times the
longest reaction the stack has shown (a webhook delivered, then its next call), never below
``MIN_SETTLE_S``; and a step that sent the stack nothing needs no settle at all.

Watchdogs (wall clock): a request in flight at a simulator for longer than
``request_watchdog_s`` is named in the notes and no longer waited for (``harness.driving``);
a step that cannot get quiet within ``stall_timeout_s`` says in one note what held it (requests
in flight, deliveries on the wire or queued, the stack's probe saying busy, a stack that kept
calling) and goes on. A probe that said busy through a whole watchdog with nothing on the
wire is not asked again: it cannot become idle, and the run goes on as for a stack without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence

import simpy

from harness.clock import LockstepClock
from harness.driving import REQUEST_WATCHDOG_S, Driver, moment
from harness.polling import PollWatch
from harness.stack import Idle, StackProbe
from harness.timers import RetryWatch
from simulators.common.simulator import Simulator

PACE_TICK_S = 0.02  # wall seconds between paced steps while the stack waits on its timers
MIN_SETTLE_S = 0.004  # the shortest learnt settle window
PROCESS_REST_S = 0.001  # a launched stack that has not run for this long is at rest
REST_PATIENCE_S = 2.0  # how long a stack once seen at rest is waited for while it computes
SETTLE_MARGIN = 3.0  # learnt window = this x the longest reaction seen
LEARN_AFTER = 20  # settles observed before the window is learnt
BUSY_BUT_WAITING_S = 0.5  # a probe saying busy this long with nothing but refusals on the
# wire and a retry due is a stack waiting on its own timer (it counts the wait as work)
WATCHDOG_S = 10.0  # a wait this long (wall) is reported with its reason
STEP_WATCHDOG_S = 60.0  # wall seconds a step may wait to get quiet before it goes on anyway
NAMED_AT_MOST = 3  # requests or deliveries a step watchdog's note names (then: "+N more")
POLL_TIMEOUT_S = 30.0  # wall seconds a polling stack has to read what it owes at a tick
POLL_TICK_S = 0.005  # wall seconds between looks at the journals while a read is owed


class Lockstep(Driver):
    def __init__(
        self,
        env: simpy.Environment,
        clock: LockstepClock,
        sims: Sequence[Simulator],
        probe: StackProbe,
        *,
        horizon_s: float,
        resolution_s: float = 0.0,
        settle_s: float = 0.05,
        stall_timeout_s: float = STEP_WATCHDOG_S,
        drain_timeout_s: float = 60.0,
        on_step: Callable[[], None] | None = None,
        polls: PollWatch | None = None,
        request_watchdog_s: float = REQUEST_WATCHDOG_S,
    ) -> None:
        super().__init__(
            env,
            sims,
            probe,
            horizon_s=horizon_s,
            drain_timeout_s=drain_timeout_s,
            on_step=on_step,
            request_watchdog_s=request_watchdog_s,
        )
        self.clock = clock
        self.resolution_s = resolution_s
        self.settle_s = settle_s
        self.stall_timeout_s = stall_timeout_s
        self._settled = asyncio.Event()
        self._paced_from: float | None = None  # wall time of the last paced step
        self._draining_since: float | None = None  # wall time the world ended, retries held
        self.watch = RetryWatch(sims)
        self.polls = polls  # a stack that polls: virtual time moves in step with its reads
        self.waiting_reason: str | None = None  # why virtual time is paced now (progress view)
        self.paced_wall_s = 0.0
        self._first_wait_reason: str | None = None
        self._quiet_mark = -1  # the wire's mark when the system was last found quiet
        self._reactions: list[float] = []  # wall s from a quiet wire to the stack's next call
        self._settle_samples = 0
        self._seen_at_rest = False  # its processes have rested once: they do rest when done
        self._wait_started: float | None = None
        self._busy_progress, self._busy_since = -1, time.monotonic()  # a probe saying busy
        self._last_idle: Idle | None = None  # the probe's last answer in this wait
        self._kept_calling = False  # a settle window of this wait ended with the wire moved
        for sim in sims:
            sim.on_settle = self._settled.set

    async def run(self) -> None:
        env, clock = self.env, self.clock
        self._paced_from = None
        self._draining_since = None
        while True:
            await self.wait_quiet()
            if self.actions:
                await self.run_actions()
                continue
            timer = clock.next_timer()
            t = min(env.peek(), math.inf if timer is None else timer)
            owed = None
            if self.polls is not None and not self.probe.offline:  # a stack down owes no read
                self.polls.observe(clock.now())
                if self.polls.owing(clock.now()):
                    await self._await_reads()
                    continue
                owed = self.polls.owed_at(world_goes_on=t < math.inf)
                t = min(t, math.inf if owed is None else owed)
            reason = None if self.stack_down else self._waiting_on_timer()
            if reason is not None:
                paced = await self._pace(t)
                if paced is None:
                    return  # the world has ended and the stack's retries never drained
                if paced:
                    continue
            else:
                self._stop_pacing()
            if t == math.inf:
                # Nothing left in the world; the stack may still hold work for a retry timer
                # of its own (wall clock). Wait for it, or its outcome would be judged early.
                if reason is None or self._drain_expired():
                    return
                await asyncio.sleep(0.05)
                continue
            if t > self.horizon_s:
                self.horizon_reached()
                return
            self._draining_since = None
            # With a resolution, everything due within the window is played before the system
            # is asked to be quiet again: fewer, larger steps, and the stack sees the world
            # at most resolution_s late. Zero: one step per distinct moment.
            window_end = min(t + self.resolution_s, self.horizon_s, owed or math.inf)
            while t <= window_end:
                self._play_until(t)
                timer = clock.next_timer()
                t = min(env.peek(), math.inf if timer is None else timer)
            if self.polls is not None:
                self.polls.reached(clock.now())
            self.stepped()

    async def _await_reads(self) -> None:
        """Virtual time stands at a tick by which the stack owes reads of its feeds: wait
        (wall) until it has made them, or say it did not and go on."""
        polls, clock = self.polls, self.clock
        assert polls is not None
        started = time.monotonic()
        while late := polls.owing(clock.now()):
            if time.monotonic() - started > POLL_TIMEOUT_S:
                self.stalls.append(
                    f"the stack did not read {', '.join(late)} within {POLL_TIMEOUT_S:.0f} s "
                    f"wall at {clock.iso()}; advanced anyway"
                )
                polls.forgive(clock.now())
                break
            self.waiting_reason = f"the stack's next poll ({late[0]})"
            await asyncio.sleep(POLL_TICK_S)
            polls.observe(clock.now())
        self.waiting_reason = None

    def polling_note(self) -> str | None:
        """How lockstep followed a stack that polls."""
        polls = self.polls
        if polls is None or not polls.active:
            return None
        feeds = (
            ", ".join(f"{f.system} every {f.every_s:g} s" for f in polls.feeds.values()) or "none"
        )
        return f"the stack polls ({polls.reads} reads); lockstep kept step with: {feeds}"

    def _waiting_on_timer(self) -> str | None:
        """Why the stack may be waiting on a wall-clock timer of its own, or None."""
        if self.probe.reports_scheduled:  # the stack says what it holds: no need to infer
            n = self.probe.scheduled
            seen = f"the stack's probe reports {n} scheduled retries" if n else None
        else:
            seen = self.watch.waiting(self.clock.now())
        if seen is not None:
            if self.waiting_reason is None:
                self._wait_started = time.monotonic()
            self._first_wait_reason = self._first_wait_reason or seen
            self._watchdog(seen)
        self.waiting_reason = seen
        return seen

    def _watchdog(self, reason: str) -> None:
        """A long wait is said once, with its reason, in the verdict's notes."""
        started = self._wait_started
        if started is not None and time.monotonic() - started > WATCHDOG_S:
            self.stalls.append(
                f"lockstep waited {WATCHDOG_S:.0f}+ s wall at {self.clock.iso()} for the stack's "
                f"own retry timers: {reason}"
            )
            self._wait_started = None  # said; the next long wait is said again

    def _stop_pacing(self) -> None:
        if self._paced_from is not None:
            self.paced_wall_s += time.monotonic() - self._paced_from
        self._paced_from = None
        self._wait_started = None
        self.waiting_reason = None

    def pacing_note(self) -> str | None:
        """How long virtual time was paced for the stack's own timers, and why first."""
        if self.paced_wall_s < 0.5 or self._first_wait_reason is None:
            return None
        return (
            f"lockstep paced virtual time for {self.paced_wall_s:.1f} s wall while the stack "
            f"could be waiting on retry timers of its own (first: {self._first_wait_reason})"
        )

    async def _pace(self, t: float) -> bool | None:
        """The stack waits on wall-clock timers: let virtual time flow at the clock's pace
        towards ``t`` (the next thing due). True: paced, look again; False: ``t`` is due (or
        the horizon reached), step as usual; None: stop, the drain timed out."""
        clock, wall = self.clock, time.monotonic()
        if self._paced_from is None:
            self._paced_from = wall
            await asyncio.sleep(PACE_TICK_S)
            return True
        target = min(clock.now() + (wall - self._paced_from) * clock.pace, self.horizon_s)
        self.paced_wall_s += wall - self._paced_from
        self._paced_from = wall
        if clock.now() < target < t:
            self._play_until(target)
        if target >= t or target >= self.horizon_s:
            return False
        if t == math.inf and self._drain_expired():
            return None
        await asyncio.sleep(PACE_TICK_S)
        return True

    def _drain_expired(self) -> bool:
        """The world has ended and the stack still holds retries: give it drain_timeout_s."""
        now = time.monotonic()
        if self._draining_since is None:
            self._draining_since = now
        if now - self._draining_since <= self.drain_timeout_s:
            return False
        self.stalls.append(
            f"the stack still held {self.probe.scheduled} retries "
            f"{self.drain_timeout_s:.0f} s after the world ended"
        )
        return True

    def _play_until(self, t: float) -> None:
        """Move the clock and the world to ``t`` and play everything due at ``t``."""
        env = self.env
        if t > env.now:
            env.run(until=t)
        self.clock.advance_to(t)
        while env.peek() <= t:
            env.step()

    def _sims_quiet(self) -> bool:
        return all(sim.quiet() for sim in self.sims)

    def _mark(self) -> int:
        return sum(sim.activity + len(sim.journal.entries) for sim in self.sims)

    async def _process_rests(self, mark: int) -> None:
        """A launched stack without a probe: wait until its processes have not run for
        ``PROCESS_REST_S`` (or until the wire moves). How long it may keep running first:
        ``settle_s`` until it has been seen at rest once (a stack that never rests is busy in
        the background and is judged by silence instead), then ``REST_PATIENCE_S``: a stack
        that rests when done is still working while it runs, however slow a loaded machine
        makes it (a poller preparing forty writes on two shared cores)."""
        watch = self.probe.process
        assert watch is not None
        patience = max(self.settle_s, PROCESS_REST_S)
        if self._seen_at_rest:
            patience = max(patience, REST_PATIENCE_S)
        deadline = time.monotonic() + patience
        before = watch.sample()
        while time.monotonic() < deadline:
            await asyncio.sleep(PROCESS_REST_S)
            now = watch.sample()
            if now[0] == before[0] and not now[1]:
                self._seen_at_rest = True
                return
            if self._mark() != mark or not self._sims_quiet():
                return
            before = now

    def _settle_window(self) -> float:
        """The silence that means a probe-less stack is done: learnt from its reactions."""
        if self._settle_samples < LEARN_AFTER:
            return self.settle_s
        longest = max(self._reactions, default=0.0)
        return min(self.settle_s, max(MIN_SETTLE_S, SETTLE_MARGIN * longest))

    def _learn(self, mark: int, settled_at: float) -> None:
        """How long after a quiet wire the stack's next call came, when one came within the
        window; the window follows the longest of the last 200 such reactions."""
        self._settle_samples += 1
        if self._mark() == mark:
            return
        first = min(
            (
                entry.wall_time - entry.duration_ms / 1000
                for sim in self.sims
                for entry in sim.journal.entries[-50:]
                if entry.direction == "in" and entry.wall_time >= settled_at
            ),
            default=None,
        )
        if first is not None:
            self._reactions.append(max(0.0, first - settled_at))
            self._reactions = self._reactions[-200:]

    def _what_holds(self) -> str:
        """Why the system is not quiet, in a few words naming what it waits for."""
        now, reasons = time.monotonic(), []
        requests = [
            f"{sim.system} {r.call()} for {now - r.since:.1f} s{r.body_state()}"
            + (f" (delayed {r.held_s:g} s by a latency fault)" if r.held_s else "")
            for sim in self.sims
            if not sim.quiet()
            for r in sim.requests.values()
            if not r.excused
        ]
        deliveries = [
            f"{sim.system} {d.event_type} {d.id} (attempt {d.attempts}) to "
            f"{d.subscription.url} since {moment(at)}, {now - since:.1f} s on the wire"
            for sim in self.sims
            if not sim.quiet()
            for d, since, at in sim.webhooks.on_wire.values()
        ]
        queued = [
            f"{sim.system} {sim.webhooks.queued}"
            for sim in self.sims
            if not sim.quiet() and sim.webhooks.queued
        ]
        for label, named in (
            ("requests in flight", requests),
            ("deliveries on the wire", deliveries),
        ):
            if named:
                more = len(named) - NAMED_AT_MOST
                reasons.append(
                    f"{label}: {', '.join(named[:NAMED_AT_MOST])}"
                    + (f" (+{more} more)" if more > 0 else "")
                )
        if queued:
            reasons.append(f"deliveries queued: {', '.join(queued)}")
        if not reasons and not self._sims_quiet():
            reasons.append("deliveries due on the simulators' clocks")
        if self._last_idle is Idle.NO:
            reasons.append(f"the stack's probe (GET {self.probe.idle_path}) said busy")
        elif self._kept_calling:
            reasons.append("the stack kept calling the simulators (no settle window was silent)")
        return "; ".join(reasons) or "nothing the harness can name"

    def _probe_stuck(self, started_mark: int, journalled: list[int]) -> bool:
        """A probe that said busy through a whole watchdog with the simulators quiet and the
        stack not calling them: nothing it does can ever make it idle. Kept, it would cost a
        watchdog per step (a day of hours); a busy stack that waits on a retry timer is told
        apart earlier (``BUSY_BUT_WAITING_S``). Deliveries the stack refused meanwhile do not
        count as its work: a wedged stack answers every webhook 500 and says busy for ever."""
        if self._last_idle is not Idle.NO or not self._sims_quiet():
            return False
        return self._mark() == started_mark or not self._stack_called_since(journalled)

    def _stack_called_since(self, journalled: list[int]) -> bool:
        """Whether any request of the stack's reached a simulator since the journals had
        these lengths (``direction == "out"`` entries are the simulators' own deliveries)."""
        return any(
            entry.direction == "in"
            for sim, start in zip(self.sims, journalled, strict=True)
            for entry in sim.journal.entries[start:]
        )

    async def wait_quiet(self) -> None:
        started, started_mark = time.monotonic(), self._mark()
        journalled = [len(sim.journal.entries) for sim in self.sims]
        pause = 0.0005
        self._last_idle, self._kept_calling = None, False
        while True:
            await asyncio.sleep(0)
            if time.monotonic() - started > self.stall_timeout_s:
                self.stalls.append(
                    f"not quiet within the step watchdog ({self.stall_timeout_s:g} s wall) at "
                    f"{moment(self.clock.now())}: {self._what_holds()}; advanced anyway"
                )
                if self._probe_stuck(started_mark, journalled):
                    self.probe.distrust()
                    self.stalls.append(
                        f"the stack's probe (GET {self.probe.idle_path}) said busy for a whole "
                        f"step watchdog while it called no simulator: from "
                        f"{moment(self.clock.now())} on, quiet is judged without it, as for a "
                        f"stack with no probe"
                    )
                return
            if not self._sims_quiet():
                if self.let_go_of_stuck_requests(self.clock.now()) and self._sims_quiet():
                    continue
                self._settled.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), 0.05)
                continue
            mark = self._mark()
            state = self._last_idle = await self.probe.idle()
            if state is Idle.NO:
                # Kept across calls: once a "busy" stack is known to wait on a timer, each
                # paced tick goes on at once until something other than a refusal happens.
                moved = self.watch.moved()
                if moved != self._busy_progress:
                    self._busy_progress, self._busy_since = moved, time.monotonic()
                elif (
                    time.monotonic() - self._busy_since > BUSY_BUT_WAITING_S
                    and self.watch.waiting(self.clock.now()) is not None
                ):
                    return  # busy by its probe, nothing but refusals, a retry due: a timer
                if not self.probe.held:  # a long-poll already waited for it
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.005)
                continue
            if state is Idle.DOWN:
                self.stack_down = True
            elif state is Idle.UNKNOWN and mark != self._quiet_mark:
                # Something crossed the wire since the system was last quiet: give the stack
                # time to react. Nothing did: it has nothing new to react to.
                if self.probe.process is not None:
                    await self._process_rests(mark)
                else:
                    settled_at = time.time()
                    await asyncio.sleep(self._settle_window())
                    self._learn(mark, settled_at)
            if self._sims_quiet() and self._mark() == mark:
                self._quiet_mark = mark
                return
            self._kept_calling = True
