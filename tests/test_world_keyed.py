"""Keyed randomness: the same seed gives the same world however the stack interleaves.

The world is played against the simulator models with the in-process integrator, perturbed
the ways a real stack differs from run to run: reactions to one moment's events in another
order, and each reaction late by up to two minutes of virtual time. Per order, the outcome
(ERP status, picked and short qty per line, ship day, delivery minute) must not move.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import scenario
from harness.world.integrator import Played, play

# A hard day: low stock (shelves run empty and are refilled), damage and shrink, many
# cancellations, mis-picks, exceptions on the road, two shifts, a cut-off with staging.
STRESSED = """
seed: {seed}
demand:
  orders: 1200
  open: "06:00"
  close: "20:00"
  curve: peak_monday
  lines_per_order: {{min: 1, max: 4}}
  cancel_rate: 0.2
  cancel_after: {{min_minutes: 1, mean_minutes: 20, max_minutes: 180}}
catalogue: {{skus: 30, initial_stock: 60}}
warehouse:
  shifts:
    - {{name: early, start: "06:00", end: "14:00", pickers: 6, packers: 3}}
    - {{name: late, start: "14:00", end: "22:00", pickers: 5, packers: 3}}
  short_pick_rate: 0.05
  waves: {{every_minutes: {every}, lead_minutes: 10}}
  staging_minutes: 30
stock:
  damage_rate: 0.01
  shrink_rate: 0.005
  cycle_count: {{share_per_day: 0.3}}
  replenishment: {{reorder_at: 0.3, lead_time_hours: 6}}
carrier: {{exception_rate: 0.1}}
"""


def stressed(seed: int = 11, every: int = 30) -> scenario.Scenario:
    return scenario.parse(STRESSED.format(seed=seed, every=every))


def outcomes(played: Played) -> dict[str, tuple[Any, ...]]:
    """Per sales order: what the world decided for it, in business terms."""
    erp, wms, carrier = (played.models[s] for s in ("erp", "wms", "carrier"))
    result: dict[str, tuple[Any, ...]] = {}
    for ref, order in erp.orders.items():
        if order.status == "cancelled":
            result[ref] = ("cancelled",)  # whether the WMS order existed yet is the stack's
            continue
        fo = wms.orders[wms.by_ref[ref][0]]
        shipped = next((h["at"] for h in fo.status_history if h["status"] == "shipped"), "")
        delivered = None
        if fo.label is not None:
            events = carrier.track(fo.label.tracking_number).events
            delivered = next((e["occurred_at"] for e in events if e["status"] == "delivered"), None)
        lines = tuple((line.line, line.picked_qty, line.short_qty) for line in fo.lines)
        result[ref] = (order.status, fo.status, lines, shipped[:10], delivered)
    return result


@pytest.fixture(scope="module")
def baseline() -> Played:
    return play(stressed())


def test_the_stressed_day_is_clean_and_really_stressed(baseline):
    counts = baseline.world.counts
    assert baseline.failed_oracles() == {}
    assert baseline.integrator.errors == [] and baseline.world.incidents == []
    for what in ("cancelled", "cancel_refused", "shelf_short_lines", "mis_picks", "receipts"):
        assert counts[what] > 10, what
    assert counts["adjusted_damage"] and counts["adjusted_cycle_count"] and counts["exceptions"]


@pytest.mark.parametrize(
    "perturbation",
    [
        {"shuffle": True, "seed": 1},
        {"shuffle": True, "seed": 2},
        {"immediate": True},
        {"max_delay_s": 120.0, "seed": 3},
        {"max_delay_s": 120.0, "shuffle": True, "seed": 4},
    ],
    ids=["shuffled", "shuffled-again", "immediate", "late-by-up-to-2-min", "shuffled-and-late"],
)
def test_same_seed_same_outcome_per_order_however_the_stack_interleaves(baseline, perturbation):
    perturbed = play(stressed(), **perturbation)
    assert perturbed.failed_oracles() == {}
    expected, actual = outcomes(baseline), outcomes(perturbed)
    moved = {ref: (expected[ref], actual[ref]) for ref in expected if expected[ref] != actual[ref]}
    assert not moved, f"{len(moved)} orders moved, e.g. {list(moved.items())[:3]}"
    stack_side = {"wms_cancelled"}  # a cancel may beat the create: then no WMS order exists
    for what in set(baseline.world.counts) - stack_side:
        assert perturbed.world.counts[what] == baseline.world.counts[what], what


def test_without_waves_shuffled_reactions_still_change_nothing():
    base, shuffled = play(stressed(every=0)), play(stressed(every=0), shuffle=True, seed=9)
    assert outcomes(base) == outcomes(shuffled)
    assert base.failed_oracles() == {} and shuffled.failed_oracles() == {}


def test_the_same_seed_twice_gives_identical_systems():
    first, second = play(stressed(seed=5)), play(stressed(seed=5))
    for system in ("erp", "wms", "tms", "carrier"):
        assert first.models[system].snapshot() == second.models[system].snapshot(), system


def test_another_seed_gives_another_day(baseline):
    other = outcomes(play(stressed(seed=12)))
    mine = outcomes(baseline)
    assert sum(mine[ref] != other.get(ref) for ref in mine) > len(mine) / 2
