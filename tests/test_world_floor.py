"""The floor: shifts really end, waves really wait, mis-picks happen at the stated rate, the
truck leaves at cut-off with what was staged in time."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from harness import scenario
from harness.world.integrator import play

DAY = 86_400


def seconds(iso: str, epoch: datetime) -> float:
    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) - epoch).total_seconds()


def times_of(played, status: str) -> list[float]:
    epoch = played.world.scenario.epoch
    return [
        seconds(h["at"], epoch)
        for fo in played.models["wms"].orders.values()
        for h in fo.status_history
        if h["status"] == status
    ]


def test_mis_picks_come_at_the_scenario_rate_within_4_sigma():
    rate, lines, short = 0.08, 0, 0
    for seed in range(5):
        day = scenario.parse(
            f"seed: {seed}\ndemand: {{orders: 600}}\ncatalogue: {{initial_stock: 100000}}\n"
            f"warehouse: {{short_pick_rate: {rate}}}"
        )
        played = play(day)
        assert played.failed_oracles() == {}
        assert played.world.counts["shelf_short_lines"] == 0  # the shelves were never short
        for fo in played.models["wms"].orders.values():
            if fo.status in ("accepted", "cancelled"):
                continue
            lines += len(fo.lines)
            short += sum(1 for line in fo.lines if line.short_qty)
    sigma = math.sqrt(lines * rate * (1 - rate))
    assert abs(short - lines * rate) <= 4 * sigma, (short, lines)


@pytest.mark.parametrize(
    ("start", "end"), [("08:00", "12:00"), ("22:00", "06:00")], ids=["day", "night"]
)
def test_off_shift_nobody_picks_or_packs(start, end):
    day = scenario.parse(
        f"""
        seed: 4
        demand: {{orders: 300}}
        warehouse:
          shifts: [{{name: only, start: "{start}", end: "{end}", pickers: 3, packers: 2}}]
          pick_minutes_per_line: 2
          pack_minutes: 3
        """
    )
    played = play(day)
    assert played.failed_oracles() == {}
    on = int(start[:2]) * 3600
    length = (int(end[:2]) * 3600 - on) % DAY
    # A worker finishes the order in hand: at most 3 lines x 2 min x 1.3 past the end.
    grace = {"picked": 3 * 2 * 60 * 1.3, "packed": 3 * 60}
    for status, extra in grace.items():
        done = times_of(played, status)
        assert done
        for t in done:
            assert (t - on) % DAY <= length + extra, (status, t % DAY / 3600)


def test_orders_wait_for_their_wave():
    day = scenario.parse(
        "seed: 8\ndemand: {orders: 300}\nwarehouse: {waves: {every_minutes: 60, lead_minutes: 10}}"
    )
    played = play(day)
    assert played.failed_oracles() == {}
    epoch, wms = day.epoch, played.models["wms"]
    erp = played.models["erp"]
    checked = 0
    for fo in wms.orders.values():
        picked = next((h["at"] for h in fo.status_history if h["status"] == "picked"), None)
        if picked is None:
            continue
        released = seconds(erp.orders[fo.order_ref].released_at, epoch)
        wave = math.ceil((released + 600) / 3600) * 3600
        assert seconds(picked, epoch) >= wave
        checked += 1
    assert checked > 250


def test_the_truck_takes_at_cut_off_what_was_packed_before_staging():
    day = scenario.parse(
        'seed: 6\ndemand: {orders: 300, close: "20:00"}\n'
        'warehouse: {cutoff: "16:00", staging_minutes: 45}'
    )
    played = play(day)
    assert played.failed_oracles() == {}
    epoch = day.epoch
    next_day = 0
    for fo in played.models["wms"].orders.values():
        at = {h["status"]: seconds(h["at"], epoch) for h in fo.status_history}
        if "shipped" not in at:
            continue
        assert at["shipped"] % DAY == 16 * 3600
        assert at["packed"] <= at["shipped"] - 45 * 60
        assert at["labelled"] <= at["shipped"]
        next_day += at["shipped"] >= DAY
    assert next_day > 50  # the evening's orders wait for tomorrow's truck


def test_within_a_wave_express_goes_first_then_the_order_of_arrival():
    day = scenario.parse(
        "seed: 9\ndemand: {orders: 300, express_share: 0.3}\n"
        "warehouse: {pickers: 1, packers: 1, waves: {every_minutes: 120, lead_minutes: 5}}"
    )
    played = play(day)
    assert played.failed_oracles() == {}
    epoch, erp = day.epoch, played.models["erp"]
    by_wave: dict[float, list[tuple[float, tuple[int, int]]]] = {}
    for fo in played.models["wms"].orders.values():
        picked = next((h["at"] for h in fo.status_history if h["status"] == "picked"), None)
        if picked is None:
            continue
        released = seconds(erp.orders[fo.order_ref].released_at, epoch)
        wave = math.ceil((released + 300) / 7200) * 7200
        urgency = (fo.service_level != "express", int(fo.order_ref.split("-")[1]))
        by_wave.setdefault(wave, []).append((seconds(picked, epoch), urgency))
    assert len(by_wave) >= 5
    for picks in by_wave.values():
        in_time_order = [urgency for _, urgency in sorted(picks)]
        assert in_time_order == sorted(in_time_order)
