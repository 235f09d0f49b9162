"""Lockstep for stacks that cannot tell it anything: no probe, or a probe that says only
``idle``. It infers a pending retry from the journals, a resting process from the kernel, and
never jumps virtual time past a retry the stack still owes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import simpy
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.clock import LockstepClock
from harness.lockstep import Lockstep
from harness.stack import ProcessWatch, StackProbe
from harness.timers import RetryWatch
from simulators.common.clock import DEFAULT_EPOCH
from simulators.common.fault_injection import FaultPlan
from simulators.common.faults import Fault
from simulators.common.journal import Journal
from tests.support import serving, until, world_events


class FakeSim:
    """What lockstep and the retry watch read of a simulator: a journal, a fault plan."""

    def __init__(self, system: str = "carrier") -> None:
        self.system = system
        self.journal = Journal(system)
        self.faults = FaultPlan()
        self.activity = 0
        self.on_settle = None

    def quiet(self) -> bool:
        return True

    def call(
        self,
        path: str,
        status: int,
        *,
        ref=None,
        digest="d1",
        retry_after=None,
        error=None,
        method="POST",
        query="",
        fault=None,
    ) -> None:
        self.journal.record(
            "in",
            method,
            path,
            status,
            virtual_time=0.0,
            digest=digest,
            ref=ref,
            error=error,
            retry_after=retry_after,
            query=query,
            fault=fault,
        )


class IdleOnly:
    """A probe that says only what the README asks: ``{"idle": ...}``."""

    def __init__(self, busy: bool = False) -> None:
        self.busy = busy
        self.app = Starlette(routes=[Route("/_stack/idle", self._idle)])

    async def _idle(self, request) -> JSONResponse:
        return JSONResponse({"idle": not self.busy})


# -- the retry watch ---------------------------------------------------------------------------
def test_a_refused_call_is_owed_a_retry_until_the_same_call_is_answered():
    sim = FakeSim()
    watch = RetryWatch([sim])
    assert watch.waiting(0.0) is None
    sim.call("/labels", 429, ref="SH-1", retry_after=2.0)
    reason = watch.waiting(0.0)
    assert (
        reason is not None and "carrier POST /labels for SH-1 (HTTP 429, Retry-After 2 s)" in reason
    )
    sim.call("/labels", 201, ref="SH-2", digest="other")  # another shipment's label
    assert watch.waiting(0.0) is not None
    sim.call("/labels", 201, ref="SH-1")  # the retry, same body
    assert watch.waiting(0.0) is None
    assert len(watch.retried) == 1


def test_a_refusal_answered_before_its_body_was_read_is_closed_by_its_resource():
    sim = FakeSim("wms")
    watch = RetryWatch([sim])
    sim.call("/fulfilment-orders/FO-000003/label", 502, digest="a")  # no ref: refused early
    sim.call("/fulfilment-orders", 502, digest="b")  # a collection: could be any order
    sim.call("/fulfilment-orders/FO-000003/label", 200, ref="SO-3", digest="a2")
    sim.call("/fulfilment-orders", 201, ref="SO-9", digest="c")  # another order's create
    reason = watch.waiting(0.0)
    assert reason is not None and "POST /fulfilment-orders (HTTP 502)" in reason
    sim.call("/fulfilment-orders", 201, ref="SO-4", digest="b")  # the same body: the retry
    assert watch.waiting(0.0) is None


def test_an_order_refused_for_an_item_in_flight_is_owed_a_retry_like_a_throttle():
    sim = FakeSim("wms")
    watch = RetryWatch([sim])
    sim.call("/fulfilment-orders", 422, ref="SO-1", digest="a", error="validation_failed")
    assert watch.waiting(0.0) is None  # a bad request: retrying it would get the same
    sim.call("/fulfilment-orders", 422, ref="SO-2", digest="b", error="unknown_item")
    reason = watch.waiting(0.0)
    assert reason is not None and "POST /fulfilment-orders for SO-2 (HTTP 422)" in reason
    sim.call("/fulfilment-orders", 201, ref="SO-2", digest="b")  # the item arrived: retried
    assert watch.waiting(0.0) is None


def test_a_lookup_of_the_refused_reference_closes_the_create_it_retries():
    # The WMS does not dedupe: after a lost answer a stack looks first and, finding the
    # transfer, never sends the create again. Its lookup is the retry.
    sim = FakeSim("wms")
    watch = RetryWatch([sim])
    sim.call("/transfers", 201, ref="TO-1", digest="t", fault="lost_response")
    sim.call("/transfers", 200, method="GET", query="transfer_ref=TO-2", digest="")
    sim.call("/fulfilment-orders", 200, method="GET", query="order_ref=TO-1", digest="")
    reason = watch.waiting(0.0)
    assert reason is not None and "wms POST /transfers for TO-1 (HTTP 201)" in reason
    sim.call("/transfers", 200, method="GET", query="transfer_ref=TO-1", digest="")
    assert watch.waiting(0.0) is None
    sim.call("/transfers", 429, ref="TO-3", digest="t3", retry_after=1.0)  # nothing was done
    sim.call("/transfers", 200, method="GET", query="transfer_ref=TO-3", digest="")
    assert watch.waiting(0.0) is not None  # a throttled create is still owed


def later_by(monkeypatch, seconds: float) -> None:
    """The wall clock the retry watch reads, moved on (no sleeping in tests)."""
    now = time.time() + seconds
    monkeypatch.setattr("harness.timers.time.time", lambda: now)


def test_a_refusal_never_retried_stops_counting_after_the_stacks_patience(monkeypatch):
    sim = FakeSim()
    watch = RetryWatch([sim], give_up_after_s=30.0)
    sim.call("/labels", 503, ref="SH-1")
    assert watch.waiting(0.0) is not None
    later_by(monkeypatch, 31.0)
    assert watch.waiting(0.0) is None  # dead-lettered, or never to be retried


def test_the_stacks_patience_is_learnt_from_how_soon_it_retries():
    sim = FakeSim()
    watch = RetryWatch([sim], give_up_after_s=30.0)
    for n in range(12):
        sim.call("/labels", 503, ref=f"SH-{n}", digest=str(n))
        sim.call("/labels", 201, ref=f"SH-{n}", digest=str(n))
    watch.waiting(0.0)
    assert 1.0 <= watch.patience() < 30.0


def test_a_simulator_down_means_waiting_and_a_moment_after_it_comes_back(monkeypatch):
    sim = FakeSim("wms")
    sim.faults.add(Fault(system="wms", kind="outage", mode="down", at=100.0, **{"for": 50.0}))
    watch = RetryWatch([sim], after_down_s=5.0)
    assert watch.waiting(50.0) is None
    assert "wms down" in (watch.waiting(120.0) or "")
    assert "came back up" in (watch.waiting(160.0) or "")
    later_by(monkeypatch, 6.0)
    assert watch.waiting(160.0) is None


# -- lockstep with an idle-only probe ----------------------------------------------------------
async def test_an_idle_only_stack_with_a_retry_owed_gets_paced_time_not_a_jump():
    stack, sim = IdleOnly(), FakeSim()
    sim.call("/labels", 429, ref="SH-1", retry_after=1.0)
    async with serving(stack.app) as url:
        env, clock, log = simpy.Environment(), LockstepClock(DEFAULT_EPOCH, pace=100.0), []
        world_events(env, [10_000.0], log)
        probe = StackProbe(url, "/_stack/idle")
        driver = Lockstep(env, clock, [sim], probe, horizon_s=20_000)
        task = asyncio.create_task(driver.run())
        await until(lambda: clock.now() > 0)
        assert clock.now() < 2_000 and not log  # paced at ~100 virtual s per wall s
        assert driver.waiting_reason is not None and "POST /labels" in driver.waiting_reason
        sim.call("/labels", 201, ref="SH-1")  # the stack's retry came and was answered
        await asyncio.wait_for(task, 10)
        await probe.close()
    assert log == [10_000.0]
    assert driver.pacing_note() is None or "POST /labels" in driver.pacing_note()


async def test_a_probe_that_counts_a_timer_wait_as_busy_does_not_hang_the_run():
    stack, sim = IdleOnly(busy=True), FakeSim()
    sim.call("/labels", 503, ref="SH-1")
    async with serving(stack.app) as url:
        env, clock, log = simpy.Environment(), LockstepClock(DEFAULT_EPOCH, pace=1_000.0), []
        world_events(env, [3_000.0], log)
        probe = StackProbe(url, "/_stack/idle")
        driver = Lockstep(env, clock, [sim], probe, horizon_s=20_000, stall_timeout_s=30)
        task = asyncio.create_task(driver.run())
        await until(lambda: clock.now() > 0, timeout=5)  # paced, not stuck waiting for idle
        stack.busy = False
        sim.call("/labels", 201, ref="SH-1")
        await asyncio.wait_for(task, 10)
        await probe.close()
    assert log == [3_000.0]
    assert not [s for s in driver.stalls if "not quiet" in s]


async def test_a_probe_that_reports_scheduled_is_trusted_over_the_journal():
    stack, sim = IdleOnly(), FakeSim()
    stack.app = Starlette(
        routes=[Route("/_stack/idle", lambda r: JSONResponse({"idle": True, "scheduled": 0}))]
    )
    sim.call("/labels", 503, ref="SH-1")  # dead-lettered by the stack: it holds nothing
    async with serving(stack.app) as url:
        env, clock, log = simpy.Environment(), LockstepClock(DEFAULT_EPOCH, pace=1.0), []
        world_events(env, [10_000.0], log)
        probe = StackProbe(url, "/_stack/idle")
        driver = Lockstep(env, clock, [sim], probe, horizon_s=20_000)
        await asyncio.wait_for(driver.run(), 10)  # at pace 1 a paced run would take hours
        await probe.close()
    assert log == [10_000.0]


# -- a stack with no probe at all --------------------------------------------------------------
def test_the_kernel_says_whether_a_launched_process_is_running():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        resting = ProcessWatch(sleeper.pid)
        first = resting.sample()
        time.sleep(0.05)
        assert resting.sample() == (first[0], False)
        busy = ProcessWatch(spinner.pid)
        used = busy.sample()[0]
        time.sleep(0.05)
        assert busy.sample()[0] > used
    finally:
        sleeper.kill()
        spinner.kill()
        sleeper.wait()
        spinner.wait()


async def test_a_resting_probeless_stack_is_quiet_without_a_settle_window():
    silent = Starlette(routes=[])  # no probe: 404
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sim = FakeSim()
    env, clock, log = simpy.Environment(), LockstepClock(DEFAULT_EPOCH), []

    def exchange_each_step(env: simpy.Environment):
        for t in range(1, 51):
            yield env.timeout(1)
            log.append(t)
            sim.call("/labels", 201, ref=f"SH-{t}")  # the wire moved: the stack may react

    env.process(exchange_each_step(env))
    try:
        async with serving(silent) as url:
            probe = StackProbe(url, "/_stack/idle")
            probe.process = ProcessWatch(sleeper.pid)
            # A settle window of 1,000 s a step would never end: the kernel says at once that
            # the stack's process is at rest, so each step is quiet within milliseconds.
            driver = Lockstep(env, clock, [sim], probe, horizon_s=1_000, settle_s=1_000.0)
            await asyncio.wait_for(driver.run(), 60)
            await probe.close()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert log == list(range(1, 51))
