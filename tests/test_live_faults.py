"""Live faults on the wall clock (``twinyard sims``): ``at`` counts from when they are sent.

A simulator served on the wall clock has been running for minutes or hours when a developer
sends ``{"kind": "outage", "for": 300}``; the outage must open then, not at process start.
The clock here is the real ``WallClock`` with its start moved back, as if the process had run
that long: nobody sleeps for minutes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import httpx
import pytest
from starlette.testclient import TestClient

import simulators
from harness.clock import LockstepClock
from simulators.common.clock import DEFAULT_EPOCH, Clock, ManualClock, WallClock
from simulators.common.faults import Fault
from simulators.common.simulator import Simulator
from tests.test_outage_down import hosted, refused


class MovableWallClock(WallClock):
    """The wall clock whose start a test moves back: as if the process had run that long."""

    def move(self, seconds: float) -> None:
        self._start -= seconds


def carrier_on(clock: Clock) -> tuple[Simulator, TestClient]:
    sim = simulators.build("carrier", clock)
    return sim, TestClient(sim.app)


def at_second(clock: WallClock, iso: str, virtual_s: float) -> None:
    """``iso`` is the wall-clock time of ``virtual_s`` on ``clock`` (to the whole second)."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    expected = clock.epoch + timedelta(seconds=virtual_s)
    assert abs((moment - expected).total_seconds()) <= 1.0, (iso, expected)


def test_an_outage_sent_minutes_after_start_opens_at_once_and_lasts_its_length():
    clock = MovableWallClock()
    _, http = carrier_on(clock)
    clock.move(400)  # the simulators have run for 400 s: a window 0..300 would be over
    assert http.get("/tracking/X").status_code == 404

    r = http.post("/_sim/faults", json={"kind": "outage", "for": 300})

    assert r.status_code == 201
    added = r.json()
    assert added["at"] == 0.0 and added["for"] == 300.0  # as sent
    at_second(clock, added["opens_at"], 400)
    at_second(clock, added["closes_at"], 700)
    assert http.get("/tracking/X").status_code == 503  # open at once
    clock.move(290)
    assert http.get("/tracking/X").status_code == 503
    clock.move(11)  # 300 s after it was sent
    assert http.get("/tracking/X").status_code == 404


def test_at_is_seconds_from_when_the_fault_is_sent_and_the_listing_says_when():
    clock = MovableWallClock()
    _, http = carrier_on(clock)
    clock.move(1000)
    body = {"kind": "error", "route": "/tracking", "status": 502, "at": 60, "for": 30}
    assert http.post("/_sim/faults", json=body).status_code == 201
    assert http.post("/_sim/faults", json={"kind": "latency", "ms": 1}).status_code == 201

    listed = http.get("/_sim/faults").json()["items"]
    error, latency = listed
    assert error["at"] == 60.0 and error["for"] == 30.0
    at_second(clock, error["opens_at"], 1060)
    at_second(clock, error["closes_at"], 1090)
    assert latency["at"] == 0.0 and latency["closes_at"] is None  # open until cleared
    at_second(clock, latency["opens_at"], 1000)

    assert http.get("/tracking/X").status_code == 404  # not yet
    clock.move(50)
    assert http.get("/tracking/X").status_code == 404
    clock.move(11)
    assert http.get("/tracking/X").status_code == 502
    clock.move(30)
    assert http.get("/tracking/X").status_code == 404


def test_a_time_of_day_is_refused_on_the_wall_clock():
    sim, http = carrier_on(MovableWallClock())
    r = http.post("/_sim/faults", json={"kind": "outage", "at": "17:00", "for": 60})
    assert r.status_code == 422
    [error] = r.json()["error"]["details"]["errors"]
    assert error["field"] == "at" and "seconds from now" in error["message"]
    assert sim.faults.faults == []


def test_faults_put_in_the_plan_before_serving_are_listed_with_their_window():
    """As ``twinyard sims --scenario`` does: ``at`` counts from the simulators' start."""
    clock = MovableWallClock()
    sim, http = carrier_on(clock)
    sim.faults.add(Fault.model_validate({"system": "carrier", "kind": "outage", "at": "10:00"}))
    [item] = http.get("/_sim/faults").json()["items"]
    assert item["at"] == 36_000.0 and item["closes_at"] is None
    at_second(clock, item["opens_at"], 36_000)


def test_a_cleared_plan_starts_afresh():
    clock = MovableWallClock()
    _, http = carrier_on(clock)
    clock.move(100)
    http.post("/_sim/faults", json={"kind": "outage", "at": 5, "for": 10})
    assert http.delete("/_sim/faults").status_code == 204
    clock.move(100)
    r = http.post("/_sim/faults", json={"kind": "outage", "at": 5, "for": 10})
    assert r.json()["id"] == 0 and r.json()["at"] == 5.0
    at_second(clock, r.json()["opens_at"], 205)


@pytest.mark.parametrize(
    "clock", [ManualClock(), LockstepClock(DEFAULT_EPOCH)], ids=["manual", "lockstep"]
)
def test_on_a_virtual_clock_at_is_the_time_on_that_clock(clock: ManualClock | LockstepClock):
    """Runs are unchanged: the harness owns their clock, ``at`` is absolute on it."""
    sim, http = carrier_on(clock)
    if isinstance(clock, ManualClock):
        clock.set(400)
    else:
        clock.advance_to(400)
    r = http.post("/_sim/faults", json={"kind": "outage", "for": 300})
    assert r.json() == {
        "id": 0,
        "system": "carrier",
        "kind": "outage",
        "route": "",
        "at": 0.0,
        "for": 300.0,
        "rate": 1.0,
        "applied": 0,
    }
    assert http.get("/tracking/X").status_code == 404  # its window 0..300 is over
    assert sim.faults.faults[0].at == 0.0
    assert "opens_at" not in http.get("/_sim/faults").json()["items"][0]


async def test_a_down_outage_sent_live_goes_down_at_once_and_comes_back_after_its_length():
    clock = MovableWallClock()
    sim = simulators.build("carrier", clock)
    clock.move(400)  # a window 0..1 would be long over
    async with hosted(sim) as item, httpx.AsyncClient(base_url=item.url) as http:
        body = {"kind": "outage", "mode": "down", "for": 1}
        assert (await http.post("/_sim/faults", json=body)).status_code == 201
        sent = time.monotonic()
        assert await until(lambda: refused(item.url), 0.5)  # down at once
        assert await until(lambda: back(item.url), 5)
        assert time.monotonic() - sent >= 0.9  # and for its length
        assert sim.faults.applied == [1]


async def back(url: str) -> bool:
    return not await refused(url)


async def until(check: Callable[[], Awaitable[bool]], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
