"""A scenario's ``stack_restarts``: the stack the harness launched goes down at a moment of the
day (a crash: SIGKILL; a deploy: SIGTERM) and its supervisor starts it again, at once or after
``for`` virtual seconds, with the same command, environment and files.

Each goes down once the system is quiet at its moment (as the on-call's actions are played), so
the stack holds no request in flight, only what it keeps: queued work, retry timers, dedup
records, feed cursors. While it is down the probe answers idle on its behalf (the harness knows
why it is silent), virtual time goes on, and the vendors' webhooks to it fail and are retried
on their own schedules. Started again, lockstep waits for its health route as at the start.
A stack given by URL is not restarted: the verdict says so. A stack in a container is: the
container is killed (or stopped) and started again, its ``TWINYARD_RUN_DIR`` kept in a folder
of this machine's for the day (``harness.containers``).

A crash ``during`` a call is not taken at a quiet moment: from ``at`` on, the first call of the
stack that fits is held at the vendor (``simulators.common.simulator.AnswerGate``) once the
vendor has done what it was asked, the stack is killed, and only then is the answer sent, to
a stack that is gone. That is the crash between sending and recording: a create the vendor
made that the stack never learnt of, a posting made that it will make again.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Protocol

import simpy

from harness import operator
from harness.containers import ContainerStack
from harness.driving import Driver, moment
from harness.operator import Action
from harness.scenario import StackRestart
from harness.stack import ProcessWatch, StackError, StackProbe, StackProcess
from simulators.common.clock import Clock
from simulators.common.faults import route_fits
from simulators.common.simulator import Release, Simulator

SIGNALS = {"crash": "SIGKILL", "deploy": "SIGTERM"}


class Restartable(Protocol):
    """What a restart needs of a launched stack: a process, or a container."""

    @property
    def pid(self) -> int | None: ...

    def halt(self, kind: str, timeout_s: float = ...) -> int | None: ...

    def start_again(self) -> None: ...


def restartable(process: StackProcess | ContainerStack) -> bool:
    """A launched process always is; a container when its files are kept across a restart."""
    return isinstance(process, StackProcess) or process.restartable


class Restarts:
    """Plays the restarts on a launched stack and writes what happened into ``notes``."""

    def __init__(
        self,
        process: Restartable,
        probe: StackProbe,
        ready_timeout_s: float,
        clock: Clock,
        notes: list[str],
    ) -> None:
        self.process = process
        self.probe = probe
        self.ready_timeout_s = ready_timeout_s
        self.clock = clock
        self.notes = notes
        self.failed = False  # it did not come back: the rest of the day is played without it
        self.traps: list[CallTrap] = []
        self._down_since: float | None = None
        self.windows: list[tuple[float, float]] = []  # virtual [down, up) of each restart

    def now(self) -> float:
        return self.clock.now()

    @property
    def downtime(self) -> list[tuple[float, float]]:
        """When the stack was down on purpose, virtual [from, to); one still down (it did not
        come back) runs to the end of time."""
        still = [] if self._down_since is None else [(self._down_since, float("inf"))]
        return self.windows + still

    def schedule(
        self,
        env: simpy.Environment,
        restarts: tuple[StackRestart, ...],
        driver: Driver,
        sims: dict[str, Simulator],
    ) -> None:
        """Down at ``at``, up ``for`` later: with ``for: 0`` both are queued in the same
        moment, in that order, and the driver runs them one after the other. A crash
        ``during`` a call is armed on its vendor instead, and comes back ``for`` after it."""
        gates: dict[str, CallTraps] = {}
        for restart in restarts:
            if restart.during is not None:
                trap = CallTrap(self, restart, driver.actions)
                self.traps.append(trap)
                system = restart.during.system
                if system not in gates:
                    gates[system] = CallTraps()
                    sims[system].answer_gate = gates[system]
                gates[system].traps.append(trap)
                continue
            down, up = partial(self.take_down, restart), partial(self.bring_up, restart)
            operator.schedule(env, restart.at, down, driver.actions)
            operator.schedule(env, restart.at + restart.for_, up, driver.actions)

    def unsprung(self) -> None:
        """At the end of the day: say which crashes found no call to cut off."""
        for trap in self.traps:
            if trap.cut_off is None:
                call = trap.restart.during
                assert call is not None
                self.notes.append(
                    f"stack restart: crash during {call.describe()} from "
                    f"{moment(trap.restart.at)} not played: the stack made no such call"
                )

    async def take_down(self, restart: StackRestart, cut_off: str | None = None) -> None:
        if self.failed:
            return
        self.probe.offline, self.probe.process = True, None
        self._down_since = self.now()
        try:
            code = await asyncio.to_thread(self.process.halt, restart.kind)
        except StackError as exc:  # a container its engine would not stop
            self.failed = True
            self.notes.append(f"stack restart: not taken down at {moment(self.now())}: {exc}")
            return
        during = f" during {cut_off} (the vendor did it; its answer never reached the stack)"
        self.notes.append(
            f"stack restart: {restart.kind} ({SIGNALS[restart.kind]}) at {moment(self.now())}"
            f"{during if cut_off else ''}, exit code {code}"
        )

    async def bring_up(self, restart: StackRestart) -> None:
        if self.failed:
            return
        try:
            await asyncio.to_thread(self.process.start_again)
            self.probe.offline = False
            await self.probe.wait_ready(self.ready_timeout_s, self.process)
        except StackError as exc:
            self.failed = True
            self.probe.offline = True  # judged as it stands: nothing more of it to wait for
            self.notes.append(f"stack restart: not started again at {moment(self.now())}: {exc}")
            return
        if self._down_since is not None:
            self.windows.append((self._down_since, self.now()))
            self._down_since = None
        if self.process.pid is not None and ProcessWatch.available():
            self.probe.process = ProcessWatch(self.process.pid)
        self.notes.append(f"stack restart: started again at {moment(self.now())}")


def not_played(count: int, why: str) -> str:
    return f"stack_restarts: {count} not played: {why}"


class CallTrap:
    """One crash ``during`` a call: springs on the first call that fits from ``at`` on."""

    def __init__(self, restarts: Restarts, restart: StackRestart, queue: list[Action]) -> None:
        assert restart.during is not None
        self.restarts = restarts
        self.restart = restart
        self.call = restart.during
        self.queue = queue
        self.cut_off: str | None = None  # the call it cut off, once sprung

    def fits(self, method: str, path: str, body: bytes, now: float) -> bool:
        if self.cut_off is not None or now < self.restart.at or self.restarts.probe.offline:
            return False
        if not route_fits(self.call.route, method, path):
            return False
        return self.call.match is None or self.call.match.encode() in body

    async def spring(self, method: str, path: str) -> None:
        """Kill the stack while the vendor holds its answer; start it again ``for`` later."""
        self.cut_off = f"{self.call.system} {method} {path}"
        await self.restarts.take_down(self.restart, cut_off=self.cut_off)
        up = partial(self.restarts.bring_up, self.restart)
        clock = self.restarts.clock
        clock.call_at(clock.now() + self.restart.for_, lambda: self.queue.append(up))


class CallTraps:
    """The ``AnswerGate`` of one vendor: holds the answer to a call a trap springs on."""

    def __init__(self) -> None:
        self.traps: list[CallTrap] = []

    def hold(self, method: str, path: str, body: bytes, now: float) -> Release | None:
        for trap in self.traps:
            if trap.fits(method, path, body, now):
                trap.cut_off = ""  # taken: no other call springs it meanwhile
                return partial(trap.spring, method, path)
        return None
