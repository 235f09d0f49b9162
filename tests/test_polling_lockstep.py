"""Lockstep for a stack that polls: virtual time waits at the tick of the stack's schedule
until it has read what changed, so a change is read one interval late at most (never hours
late), a feed nobody changed costs no wait, and a nightly job runs at its time."""

from __future__ import annotations

import asyncio
from datetime import time as time_of_day

import simpy
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.clock import LockstepClock
from harness.lockstep import Lockstep
from harness.polling import PollWatch
from harness.scenario import ScheduledRead, parse
from harness.stack import StackProbe
from simulators.common.clock import DEFAULT_EPOCH
from simulators.common.fault_injection import FaultPlan
from simulators.common.feed import EventFeed
from simulators.common.journal import Journal
from tests.support import serving

HOUR = 3600.0


class Webhooks:
    def __init__(self) -> None:
        self.feed = EventFeed()


class FakeSim:
    """What lockstep and the poll watch read of a simulator: its journal and its feed."""

    def __init__(self, system: str = "erp") -> None:
        self.system = system
        self.journal = Journal(system)
        self.webhooks = Webhooks()
        self.faults = FaultPlan()
        self.activity = 0
        self.on_settle = None

    def quiet(self) -> bool:
        return True

    def publish(self, at: float) -> None:
        self.webhooks.feed.append("order.released", b"{}", at)

    def read(self, path: str = "/events", query: str = "", at: float = 0.0) -> None:
        self.journal.record("in", "GET", path, 200, virtual_time=at, query=query)


# -- the poll watch ----------------------------------------------------------------------------
def test_a_feed_read_once_is_learnt_and_a_change_is_owed_at_the_next_tick():
    erp = FakeSim()
    polls = PollWatch([erp], [], poll_every=300.0)
    polls.observe(0.0)
    assert not polls.active
    erp.read("/orders", "order_ref=SO-1")  # a lookup, not a feed read
    polls.observe(0.0)
    assert not polls.active
    erp.read("/events", "after=abc")
    polls.observe(0.0)
    assert polls.active and polls.owed_at() is None  # nothing changed since
    erp.publish(610.0)
    polls.observe(610.0)
    assert polls.owed_at() == 900.0  # the poll every 5 minutes after 10:10
    assert polls.owing(899.0) == []
    assert polls.owing(900.0) == ["erp changes since day 0 00:10"]
    erp.read("/events", "after=def", at=900.0)
    polls.observe(900.0)
    assert polls.owing(900.0) == [] and polls.owed_at() is None


def test_a_list_read_with_a_change_filter_is_a_feed_read_too():
    wms = FakeSim("wms")
    polls = PollWatch([wms], [], poll_every=60.0)
    wms.read("/fulfilment-orders", "updated_since=2026-05-04T10:00:00Z&limit=100")
    polls.observe(0.0)
    assert list(polls.feeds) == ["wms"]


def test_a_declared_schedule_counts_only_its_routes_and_its_interval():
    erp = FakeSim()
    schedule = [ScheduledRead(system="erp", route="/orders", every=120)]
    polls = PollWatch([erp], schedule, poll_every=300.0)
    assert polls.active  # declared: owed from the start, before any read is seen
    erp.publish(10.0)
    polls.observe(10.0)
    assert polls.owed_at() == 120.0
    erp.read("/events")  # not the declared route
    polls.observe(120.0)
    assert polls.owing(120.0)
    erp.read("/orders", "updated_since=x")
    polls.observe(120.0)
    assert polls.owing(120.0) == []


def test_a_nightly_job_is_owed_at_its_time_each_day_but_does_not_keep_an_ended_world_going():
    wms = FakeSim("wms")
    schedule = [ScheduledRead(system="wms", route="/inventory", at=time_of_day(2, 0))]
    polls = PollWatch([wms], schedule, poll_every=300.0)
    assert polls.owed_at() == 2 * HOUR
    assert polls.owed_at(world_goes_on=False) is None
    polls.reached(2 * HOUR)
    assert polls.owing(2 * HOUR) == ["wms /inventory due at day 0 02:00"]
    wms.read("/inventory", at=2 * HOUR)
    polls.observe(2 * HOUR)
    assert polls.owing(2 * HOUR) == [] and polls.owed_at() == 26 * HOUR


def test_a_learnt_feed_the_stack_stops_reading_is_dropped_a_declared_one_is_not():
    erp, wms = FakeSim("erp"), FakeSim("wms")
    schedule = [ScheduledRead(system="wms", every=60)]
    polls = PollWatch([erp, wms], schedule, poll_every=60.0)
    erp.read("/events")  # e.g. a catch-up read at start-up by a stack that takes webhooks
    polls.observe(0.0)
    erp.publish(5.0)
    wms.publish(5.0)
    polls.observe(5.0)
    polls.forgive(60.0)
    assert list(polls.feeds) == ["wms"] and polls.owed_at() is None


def test_schedule_in_a_scenario_is_validated_with_its_field():
    day = parse(
        "name: poll\nstack:\n  schedule:\n    - {system: erp, every: 300}\n"
        "    - {system: wms, route: /inventory, at: '02:00'}\n"
    )
    assert [r.system for r in day.stack.schedule] == ["erp", "wms"]
    for bad in (
        "{system: erp}",
        "{system: erp, every: 60, at: '02:00'}",
        "{system: crm, every: 9}",
    ):
        try:
            parse(f"name: poll\nstack:\n  schedule:\n    - {bad}\n")
        except Exception as exc:  # the loader's ScenarioError names the field
            assert "schedule" in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


# -- lockstep with a polling stack ---------------------------------------------------------------
class Poller:
    """A stack that polls ``erp /events`` every ``every_wall`` seconds, and has no probe."""

    def __init__(self, sim: FakeSim, clock: LockstepClock, every_wall: float) -> None:
        self.sim, self.clock, self.every_wall = sim, clock, every_wall
        self.read_at: list[float] = []  # virtual times of its reads
        self.app = Starlette(routes=[Route("/_stack/idle", self._no_probe)])

    async def _no_probe(self, request) -> JSONResponse:
        return JSONResponse({"error": "not found"}, 404)

    async def run(self) -> None:
        while True:
            self.read_at.append(self.clock.now())
            self.sim.read("/events", "after=x", at=self.clock.now())
            await asyncio.sleep(self.every_wall)


def releases(env: simpy.Environment, sim: FakeSim, at: list[float], log: list[float]) -> None:
    def release(t: float):
        yield env.timeout(t)
        sim.publish(env.now)
        log.append(env.now)

    for t in at:
        env.process(release(t))


async def test_virtual_time_waits_at_each_tick_for_the_stacks_poll_of_what_changed():
    sim = FakeSim()
    env, clock = simpy.Environment(), LockstepClock(DEFAULT_EPOCH)
    changes = [6 * HOUR + 70, 6 * HOUR + 130, 9 * HOUR + 10, 20 * HOUR]
    log: list[float] = []
    releases(env, sim, changes, log)
    stack = Poller(sim, clock, every_wall=0.02)
    polls = PollWatch([sim], [ScheduledRead(system="erp", every=300)], poll_every=60.0)
    async with serving(stack.app) as url:
        probe = StackProbe(url, "/_stack/idle")
        driver = Lockstep(env, clock, [sim], probe, horizon_s=86_400, settle_s=0.0, polls=polls)
        poller = asyncio.create_task(stack.run())
        await asyncio.wait_for(driver.run(), 30)
        poller.cancel()
        await probe.close()
    assert log == changes
    for changed in changes:  # each change read by the next 5-minute tick, never later
        first_read = min(t for t in stack.read_at if t >= changed)
        assert first_read <= (changed // 300 + 1) * 300, (changed, first_read)
    assert not driver.stalls
    assert "lockstep kept step with: erp every 300 s" in (driver.polling_note() or "")


async def test_a_stack_that_never_reads_what_it_owes_is_named_and_the_day_goes_on(monkeypatch):
    monkeypatch.setattr("harness.lockstep.POLL_TIMEOUT_S", 0.2)
    sim = FakeSim()
    env, clock = simpy.Environment(), LockstepClock(DEFAULT_EPOCH)
    log: list[float] = []
    releases(env, sim, [HOUR, 2 * HOUR], log)
    polls = PollWatch([sim], [ScheduledRead(system="erp", every=600)], poll_every=60.0)
    stack = Poller(sim, clock, every_wall=1.0)
    async with serving(stack.app) as url:
        probe = StackProbe(url, "/_stack/idle")
        driver = Lockstep(env, clock, [sim], probe, horizon_s=86_400, settle_s=0.0, polls=polls)
        await asyncio.wait_for(driver.run(), 10)  # the stack never polls at all
        await probe.close()
    assert log == [HOUR, 2 * HOUR]
    assert any("did not read erp changes since day 0 01:00" in s for s in driver.stalls)


def test_a_stack_config_file_replaces_every_scenarios_stack_section(tmp_path, capsys):
    from harness import scenario
    from harness.cli import main

    good = tmp_path / "stack.yaml"
    good.write_text("schedule:\n  - {system: erp, every: 300}\npoll_every: 120\n")
    day = scenario.parse("name: d\nstack: {settle_ms: 7}\n").with_stack(scenario.load_stack(good))
    assert day.stack.poll_every == 120 and day.stack.schedule[0].every == 300
    assert day.stack.settle_ms == 50  # the whole section is the stack's, not merged
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule:\n  - {system: erp}\n")
    assert main(["run", "--stack-config", str(bad), "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}:2: schedule.0" in err[0] and "every" in err[0]
