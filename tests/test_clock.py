"""The one clock: lockstep waits for a quiet system, realtime keeps its ratio."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import simpy
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.clock import LockstepClock, RealtimeClock
from harness.lockstep import Lockstep
from harness.realtime import Realtime
from harness.stack import StackProbe
from simulators.common.clock import DEFAULT_EPOCH, IsoFormatter
from tests.support import serving, until, world_events


class FakeStack:
    """A stack whose idle probe says what the test wants, and counts how often it was asked."""

    def __init__(self) -> None:
        self.busy = True
        self.scheduled = 0  # jobs waiting on a retry timer of the stack's own
        self.asked = 0
        self.app = Starlette(routes=[Route("/_stack/idle", self._idle)])

    async def _idle(self, request) -> JSONResponse:
        self.asked += 1
        return JSONResponse({"idle": not self.busy, "scheduled": self.scheduled})


def test_lockstep_timers_wake_in_order_and_time_never_goes_back():
    async def scenario():
        clock = LockstepClock(DEFAULT_EPOCH)
        woke: list[str] = []

        async def sleeper(name: str, t: float) -> None:
            await clock.sleep_until(t)
            woke.append(name)

        tasks = [asyncio.create_task(sleeper(n, t)) for n, t in (("b", 20), ("a", 10))]
        await asyncio.sleep(0)
        assert clock.next_timer() == 10
        clock.advance_to(15)
        await asyncio.sleep(0)
        assert woke == ["a"] and clock.next_timer() == 20
        clock.advance_to(20)
        await asyncio.gather(*tasks)
        assert woke == ["a", "b"] and clock.iso() == "2026-11-23T00:00:20Z"
        with pytest.raises(ValueError):
            clock.advance_to(5)

    asyncio.run(scenario())


async def test_lockstep_holds_the_clock_while_the_stack_is_busy():
    stack = FakeStack()
    async with serving(stack.app) as url:
        env, clock, log = simpy.Environment(), LockstepClock(DEFAULT_EPOCH), []
        world_events(env, [100.0], log)
        probe = StackProbe(url, "/_stack/idle")
        driver = Lockstep(env, clock, [], probe, horizon_s=1000)
        running = asyncio.create_task(driver.run())
        await until(lambda: stack.asked >= 5)  # asked again and again while busy...
        assert clock.now() == 0 and log == []  # ...and the world did not move
        stack.busy = False
        await asyncio.wait_for(running, 10)
        await probe.close()
    assert log == [100.0] and clock.now() == 100.0


async def test_lockstep_skips_empty_stretches_and_groups_by_resolution():
    stack = FakeStack()
    stack.busy = False
    async with serving(stack.app) as url:
        # processes start at t=0 (one step), then one step per distinct moment, or per window
        for resolution, steps in ((0.0, 5), (60.0, 2)):
            env, clock, log = simpy.Environment(), LockstepClock(DEFAULT_EPOCH), []
            world_events(env, [10, 20, 50, 86_000], log)
            probe = StackProbe(url, "/_stack/idle")
            driver = Lockstep(env, clock, [], probe, horizon_s=90_000, resolution_s=resolution)
            await driver.run()
            await probe.close()
            assert log == [10, 20, 50, 86_000]  # every event at its own virtual time
            assert driver.steps == steps


def test_realtime_clock_runs_at_its_factor():
    wall = [1000.0]
    clock = RealtimeClock(DEFAULT_EPOCH, factor=60, start=3600, wall=lambda: wall[0])
    assert clock.now() == 3600
    wall[0] += 2.5
    assert clock.now() == 3600 + 150
    assert clock.iso() == "2026-11-23T01:02:30Z"
    with pytest.raises(ValueError):
        RealtimeClock(DEFAULT_EPOCH, factor=0)


async def test_realtime_driver_plays_events_when_the_clock_reaches_them():
    stack = FakeStack()
    stack.busy = False
    async with serving(stack.app) as url:
        factor = 3600.0  # an hour a second
        env, clock = simpy.Environment(), RealtimeClock(DEFAULT_EPOCH, factor)
        seen: list[tuple[float, float]] = []

        def world():
            for t in (600.0, 1200.0):
                yield env.timeout(t - env.now)
                seen.append((t, clock.now()))

        env.process(world())
        probe = StackProbe(url, "/_stack/idle")
        await Realtime(env, clock, [], probe, horizon_s=5000).run()
        await probe.close()
    assert [t for t, _ in seen] == [600.0, 1200.0]
    for scheduled, played in seen:
        assert played >= scheduled  # never early
        assert played - scheduled < 0.5 * factor  # late by at most half a wall second


async def test_a_stack_without_idle_probe_gets_a_settle_window_of_silence():
    silent = Starlette(routes=[])  # answers 404 to the idle probe: it has none
    async with serving(silent) as url:
        env, clock, log = simpy.Environment(), LockstepClock(DEFAULT_EPOCH), []
        world_events(env, [10.0, 20.0], log)
        probe = StackProbe(url, "/_stack/idle")
        driver = Lockstep(env, clock, [], probe, horizon_s=100, settle_s=0.01)
        await driver.run()
        await probe.close()
    assert probe.has_probe is False  # learnt once, then the settle window is used
    assert log == [10.0, 20.0]


async def test_a_run_cut_off_by_the_horizon_says_so():
    stack = FakeStack()
    stack.busy = False
    async with serving(stack.app) as url:
        env, clock, log = simpy.Environment(), LockstepClock(DEFAULT_EPOCH), []
        world_events(env, [10.0, 5_000.0], log)  # the second event lies beyond the horizon
        probe = StackProbe(url, "/_stack/idle")
        driver = Lockstep(env, clock, [], probe, horizon_s=1_000)
        await driver.run()
        await probe.close()
    assert log == [10.0]
    assert any("horizon" in note for note in driver.stalls)


async def test_lockstep_paces_virtual_time_while_the_stack_waits_on_its_own_timers():
    stack = FakeStack()
    stack.busy, stack.scheduled = False, 1
    async with serving(stack.app) as url:
        env, clock, log = simpy.Environment(), LockstepClock(DEFAULT_EPOCH, pace=100.0), []
        world_events(env, [10_000.0], log)
        probe = StackProbe(url, "/_stack/idle")
        driver = Lockstep(env, clock, [], probe, horizon_s=20_000)
        task = asyncio.create_task(driver.run())
        await until(lambda: clock.now() > 0)
        # A retry timer is pending: no jump to 10,000; time flows at about 100 s per wall s.
        assert clock.now() < 1_000 and not log
        moved = clock.now()
        await until(lambda: clock.now() > moved)
        stack.scheduled = 0  # the retry ran: nothing held, so the clock may jump again
        await asyncio.wait_for(task, 10)
        await probe.close()
    assert log == [10_000.0]


async def test_lockstep_lets_virtual_time_pass_for_retries_after_the_world_has_ended():
    stack = FakeStack()
    stack.busy, stack.scheduled = False, 1
    async with serving(stack.app) as url:
        env, clock = simpy.Environment(), LockstepClock(DEFAULT_EPOCH, pace=1_000.0)
        probe = StackProbe(url, "/_stack/idle")
        driver = Lockstep(env, clock, [], probe, horizon_s=50_000)
        task = asyncio.create_task(driver.run())
        await until(lambda: clock.now() > 100)  # an outage window can close meanwhile
        stack.scheduled = 0
        await asyncio.wait_for(task, 10)
        await probe.close()
    assert driver.stalls == []


def test_each_clock_converts_a_virtual_wait_to_the_wall_seconds_a_client_waits():
    assert LockstepClock(DEFAULT_EPOCH, pace=300.0).wall_seconds(1800) == 6.0
    assert RealtimeClock(DEFAULT_EPOCH, factor=60.0).wall_seconds(1800) == 30.0
    with pytest.raises(ValueError):
        LockstepClock(DEFAULT_EPOCH, pace=0)


@given(
    epoch=st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2090, 1, 1),
        timezones=st.sampled_from([None, UTC, ZoneInfo("Europe/Berlin")]),
    ),
    times=st.lists(st.floats(min_value=-1e6, max_value=1e9), min_size=1, max_size=20),
)
@example(epoch=datetime(2000, 1, 1), times=[-1.0])  # a second before the epoch, first
def test_iso_timestamps_are_the_epoch_plus_whole_seconds(
    epoch: datetime, times: list[float]
) -> None:
    iso = IsoFormatter(epoch)
    for t in times:
        assert iso(t) == (epoch + timedelta(seconds=int(t))).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_probe_that_answers_500_is_taken_as_busy_and_the_verdict_is_told():
    """A crashing idle route does not stop the day (each answer is taken as busy), but the
    run says so: nothing else would show that lockstep judged quiet without the probe."""
    from starlette.responses import PlainTextResponse

    answers = iter([500, 500, 200])

    async def idle(request):
        status = next(answers, 200)
        if status == 500:
            return PlainTextResponse("Internal Server Error", 500)
        return JSONResponse({"idle": True})

    app = Starlette(routes=[Route("/_stack/idle", idle)])
    async with serving(app) as url:
        probe = StackProbe(url, "/_stack/idle")
        probe.long_poll = False
        states = [await probe.idle() for _ in range(3)]
        await probe.close()
    assert [s.name for s in states] == ["NO", "NO", "YES"]
    assert (probe.asked, probe.broken) == (3, 2)
    said = probe.note()
    assert said is not None and "2 of 3 times" in said and "HTTP 500" in said
    assert "Internal Server Error" in said
    assert StackProbe(url, "/_stack/idle").note() is None  # a probe never asked says nothing


async def test_a_probe_that_keeps_failing_is_no_longer_asked():
    """Three answers in a row that are not a probe's: judged as a stack without one from then
    on (silence, the process at rest), which is faster than waiting on a broken probe."""

    async def idle(request):
        return JSONResponse({"error": "boom"}, 500)

    async with serving(Starlette(routes=[Route("/_stack/idle", idle)])) as url:
        probe = StackProbe(url, "/_stack/idle")
        probe.long_poll = False
        states = [await probe.idle() for _ in range(4)]
        await probe.close()
    assert [s.name for s in states] == ["NO", "NO", "UNKNOWN", "UNKNOWN"]
    assert not probe.has_probe and probe.asked == 3
    assert "no longer asked" in (probe.note() or "")
