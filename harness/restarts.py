"""A scenario's ``stack_restarts``: the stack the harness launched goes down at a moment of the
day (a crash: SIGKILL; a deploy: SIGTERM) and its supervisor starts it again, at once or after
``for`` virtual seconds, with the same command, environment and files.

Each goes down once the system is quiet at its moment (as the on-call's actions are played), so
the stack holds no request in flight, only what it keeps: queued work, retry timers, dedup
records, feed cursors. While it is down the probe answers idle on its behalf (the harness knows
why it is silent), virtual time goes on, and the vendors' webhooks to it fail and are retried
on their own schedules. Started again, lockstep waits for its health route as at the start.
A stack given by URL, or in a container, is not restarted: the verdict says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

import simpy

from harness import operator
from harness.driving import Driver, moment
from harness.scenario import StackRestart
from harness.stack import ProcessWatch, StackError, StackProbe, StackProcess

SIGNALS = {"crash": "SIGKILL", "deploy": "SIGTERM"}


class Restarts:
    """Plays the restarts on a launched stack and writes what happened into ``notes``."""

    def __init__(
        self,
        process: StackProcess,
        probe: StackProbe,
        ready_timeout_s: float,
        clock_now: Callable[[], float],
        notes: list[str],
    ) -> None:
        self.process = process
        self.probe = probe
        self.ready_timeout_s = ready_timeout_s
        self.now = clock_now
        self.notes = notes
        self.failed = False  # it did not come back: the rest of the day is played without it

    def schedule(
        self, env: simpy.Environment, restarts: tuple[StackRestart, ...], driver: Driver
    ) -> None:
        """Down at ``at``, up ``for`` later: with ``for: 0`` both are queued in the same
        moment, in that order, and the driver runs them one after the other."""
        for restart in restarts:
            down, up = partial(self.take_down, restart), partial(self.bring_up, restart)
            operator.schedule(env, restart.at, down, driver.actions)
            operator.schedule(env, restart.at + restart.for_, up, driver.actions)

    async def take_down(self, restart: StackRestart) -> None:
        if self.failed:
            return
        self.probe.offline, self.probe.process = True, None
        code = await asyncio.to_thread(self.process.halt, restart.kind)
        self.notes.append(
            f"stack restart: {restart.kind} ({SIGNALS[restart.kind]}) at {moment(self.now())}, "
            f"exit code {code}"
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
        if self.process.pid is not None and ProcessWatch.available():
            self.probe.process = ProcessWatch(self.process.pid)
        self.notes.append(f"stack restart: started again at {moment(self.now())}")


def not_played(count: int, why: str) -> str:
    return f"stack_restarts: {count} not played: {why}"
