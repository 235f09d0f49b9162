"""The load's curve: Locust's users and their rates follow the scenario's demand curve, times
the multiplier, on the run's clock (harness.load.curve, and the shape that reads it)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest

from harness import scenario
from harness.load.curve import MIN_USERS, LoadCurve, Plan, plan_of
from harness.world.curves import PROFILES

HOUR = 3600.0
# Nothing before 08:00, then 1, 2, 4, 2, 1 for five hours, nothing after 13:00.
WEIGHTS = (0.0,) * 8 + (1.0, 2.0, 4.0, 2.0, 1.0) + (0.0,) * 11


def curve(**changes: float) -> LoadCurve:
    values = {"orders": 1000, "multiplier": 1.0, "factor": 60.0, "per_user": 2.0} | changes
    return LoadCurve(WEIGHTS, 7 * HOUR, 14 * HOUR, **values)  # type: ignore[arg-type]


def test_each_hour_gets_its_weights_share_of_the_days_orders():
    flat = curve()
    per_hour = [flat.per_hour(h * HOUR + 1) for h in range(24)]
    assert per_hour[:8] == [0.0] * 8 and per_hour[13:] == [0.0] * 11
    assert per_hour[8:13] == pytest.approx([100.0, 200.0, 400.0, 200.0, 100.0])
    assert sum(per_hour) == pytest.approx(1000)  # the whole day's orders, no more


def test_the_multiplier_scales_every_rate_and_nothing_else():
    base, tripled = curve(), curve(multiplier=3.0)
    for v in (8.5 * HOUR, 10.2 * HOUR, 12.9 * HOUR):
        assert tripled.rate(v) == pytest.approx(3 * base.rate(v))
    assert tripled.total == 3000
    assert tripled.rate(7.5 * HOUR) == 0.0  # open, but the curve has no weight there


def test_users_times_their_rate_is_the_curves_wall_rate_at_every_tick():
    fast = curve(factor=600.0, multiplier=2.0)
    for tick in range(0, int(7 * HOUR), 600):  # one tick per wall second at 600x
        v = 7 * HOUR + tick
        wall = fast.wall_rate(v)
        users = fast.users(v)
        assert wall == pytest.approx(fast.rate(v) * 600)
        if wall == 0:
            assert users == 0 and fast.user_rate(v) == 0
            continue
        assert users == max(MIN_USERS, math.ceil(wall / 2.0 - 1e-9))
        assert fast.user_rate(v) <= 2.0 + 1e-9
        assert users * fast.user_rate(v) == pytest.approx(wall)


def test_the_window_is_open_to_close_and_nothing_outside_it():
    c = curve()
    assert c.rate(7 * HOUR - 1) == 0.0 and c.rate(14 * HOUR) == 0.0
    assert c.users(20 * HOUR) == 0
    assert c.wall_seconds == pytest.approx(7 * HOUR / 60)


def test_a_scenarios_plan_carries_its_demand_and_survives_the_feed():
    peak = scenario.load("scenarios/peak/black_friday.yaml")
    plan = plan_of(peak, multiplier=1.5)
    assert plan.curve.weights == tuple(peak.demand.curve)
    assert plan.curve.factor == peak.clock.factor
    assert plan.curve.total == pytest.approx(peak.demand.orders * 1.5)
    assert not plan.started and plan.virtual_now() == plan.curve.open_s
    anchored = plan.anchored(3600.0, 1_000.0)
    assert anchored.virtual_now(wall=1_010.0) == pytest.approx(3600.0 + 10 * peak.clock.factor)
    assert Plan.from_dict(json.loads(json.dumps(anchored.to_dict()))) == anchored
    happy = plan_of(scenario.Scenario(), factor=30.0)
    assert happy.curve.weights == PROFILES["flat"] and happy.curve.factor == 30.0


SHAPE = textwrap.dedent(
    """
    import json, sys, time, types
    import harness.load.locustfile as lf
    from harness.load.curve import LoadCurve, Plan

    weights, multiplier = json.loads(sys.argv[1])
    curve = LoadCurve(tuple(weights), 7 * 3600, 14 * 3600, 1000, multiplier, 600.0, 2.0)
    options = types.SimpleNamespace(twinyard_feed="")
    runner = types.SimpleNamespace(
        user_count=0, environment=types.SimpleNamespace(parsed_options=options)
    )
    shape = lf.PeakSeasonShape()
    shape.runner = runner
    ticks = []
    for v in json.loads(sys.argv[2]):
        lf.bridge.plan = Plan(curve).anchored(v, time.time())
        ticks.append(shape.tick())
    print(json.dumps(ticks))
    """
)


@pytest.mark.parametrize("multiplier", [1.0, 2.5])
def test_the_locust_shape_asks_for_the_curves_users_then_stops(multiplier):
    """The shape itself, in a process of its own (importing Locust patches the process with
    gevent): each tick asks for the curve's users at that virtual moment, and once the window
    is over (and, without a feed, no harness to wait for) it ends the test."""
    moments = [7.5 * HOUR, 8.2 * HOUR, 10.5 * HOUR, 12.99 * HOUR, 13.5 * HOUR, 14 * HOUR]
    done = subprocess.run(
        [sys.executable, "-c", SHAPE, json.dumps([WEIGHTS, multiplier]), json.dumps(moments)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    ticks = json.loads(done.stdout.strip().splitlines()[-1])
    expected = curve(factor=600.0, multiplier=multiplier)
    for v, tick in zip(moments[:-1], ticks[:-1], strict=True):
        assert tick[0] == expected.users(v), (v, tick)
    assert ticks[2][0] > ticks[1][0] > 0  # 10:00 weighs four times 08:00
    assert ticks[-1] is None  # the window is over and nobody is left
