"""The world's scenario sections: sensible defaults, one clear line per mistake, and the
shipped days play clean against a correct integrator."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from harness import scenario
from harness.world.integrator import play

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def problems(text: str) -> list[str]:
    with pytest.raises(scenario.ScenarioError) as caught:
        scenario.parse(text, "day.yaml")
    return caught.value.lines


def test_a_weight_curve_dumps_as_written_without_a_warning():
    """Every run dumps its scenario for the digest: a curve of weights once made pydantic warn
    on stderr, in every run of a day that has one."""
    day = scenario.parse(f"name: curved\ndemand:\n  curve: {[1] * 12 + [2] * 12}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dumped = day.model_dump(mode="json")
    assert dumped["demand"]["curve"] == [1.0] * 12 + [2.0] * 12
    assert scenario.parse("name: flat").model_dump()["demand"]["curve"] == "flat"


def test_defaults_keep_the_simple_world():
    day = scenario.parse("name: tiny")
    assert day.demand.curve == "flat" and day.demand.cancel_rate == 0
    assert day.warehouse.shifts == () and day.warehouse.waves.every_minutes == 0
    assert day.stock.damage_rate == day.stock.shrink_rate == 0
    assert day.carrier.exception_rate == 0
    assert day.stock.replenishment.reorder_at == 0.2
    assert day.catalogue.popularity == 1.0 and not day.catalogue.stock_by_popularity


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("demand:\n  curve: rush_hour\n", 2, "demand.curve", "unknown demand curve 'rush_hour'"),
        ("demand:\n  curve: [1, 2, 3]\n", 2, "demand.curve", "24 hourly weights"),
        (f"demand:\n  curve: {[1] * 23 + [-1]}\n", 2, "demand.curve", "23:00 must be between"),
        (
            f'demand:\n  open: "20:00"\n  close: "22:00"\n  curve: {[1] * 20 + [0] * 4}\n',
            1,
            "demand",
            "no weight between open and close",
        ),
        ("demand:\n  cancel_rate: 1.5\n", 2, "demand.cancel_rate", "less than or equal to 1"),
        (
            "demand:\n  cancel_after: {min_minutes: 30, mean_minutes: 10}\n",
            2,
            "demand.cancel_after",
            "min_minutes <= mean_minutes <= max_minutes",
        ),
        ("demand:\n  cancel_after: {mean: 10}\n", 2, "demand.cancel_after.mean", "unknown field"),
        (
            'warehouse:\n  pickers: 3\n  shifts:\n    - {name: a, start: "06:00", end: "14:00",'
            " pickers: 3, packers: 1}\n",
            1,
            "warehouse",
            "give pickers or shifts, not both",
        ),
        (
            'warehouse:\n  shifts:\n    - {name: a, start: "06:00", end: "06:00", pickers: 1}\n',
            3,
            "warehouse.shifts.0",
            "start and end at the same time",
        ),
        (
            'warehouse:\n  shifts:\n    - {name: a, start: "06:00", end: "14:00", pickers: 2}\n',
            1,
            "warehouse",
            "no shift has packers",
        ),
        (
            'warehouse:\n  shifts:\n    - {name: "", start: "06:00", end: "14:00", pickers: 2}\n',
            3,
            "warehouse.shifts.0.name",
            "at least 1 character",
        ),
        ("warehouse:\n  waves: {every_minutes: -5}\n", 2, "warehouse.waves.every_minutes", ">= 0"),
        ("stock:\n  shrink_rat: 0.1\n", 2, "stock.shrink_rat", "unknown field"),
        ("stock:\n  damage_rate: 0.9\n", 2, "stock.damage_rate", "less than or equal to 0.5"),
        (
            "stock:\n  replenishment: {reorder_at: 0.5, order_up_to: 0.4}\n",
            2,
            "stock.replenishment",
            "order_up_to must be above reorder_at",
        ),
        ("carrier:\n  exception_delay_days: 0\n", 2, "carrier.exception_delay_days", ">= 1"),
        ("catalogue:\n  popularity: -1\n", 2, "catalogue.popularity", ">= 0"),
    ],
)
def test_a_world_mistake_is_one_line_naming_file_line_and_field(text, line, field, words):
    found = problems(text)
    assert len(found) == 1, found
    words = words.replace(">= ", "greater than or equal to ")
    assert found[0].startswith(f"day.yaml:{line}: {field}: "), found[0]
    assert words in found[0], found[0]


def test_a_night_shift_may_end_the_next_morning():
    day = scenario.parse(
        'warehouse:\n  shifts: [{name: night, start: "22:00", end: "06:00", pickers: 2, '
        "packers: 1}]\n"
    )
    assert day.warehouse.shifts[0].end.hour == 6


def test_the_happy_day_is_clean():
    played = play(scenario.load(SCENARIOS / "happy_day.yaml"))
    assert played.failed_oracles() == {}
    assert played.integrator.errors == [] and played.world.incidents == []
    counts = played.world.counts
    launched = 2 * 2  # two new SKUs a day, two orders right behind each
    assert counts["released"] == 200 + launched and counts["cancelled"] > 0
    assert counts["shipped"] + counts["cancelled"] + counts["short_closed"] == 200 + launched
    assert counts["delivered"] == counts["settled"] == counts["shipped"]
    assert played.env.now < played.world.days * 86_400  # the world ended by itself


def test_a_fifth_of_the_peak_day_is_clean_and_ships_mostly_the_same_day():
    peak = scenario.load(SCENARIOS / "peak_day.yaml")
    shifts = tuple(
        s.model_copy(update={"pickers": -(-s.pickers // 5), "packers": -(-s.packers // 5)})
        for s in peak.warehouse.shifts
    )
    fifth = peak.model_copy(
        update={
            "demand": peak.demand.model_copy(update={"orders": 2000}),
            "warehouse": peak.warehouse.model_copy(update={"shifts": shifts}),
        }
    )
    played = play(fifth)
    assert played.failed_oracles() == {}
    wms = played.models["wms"]
    shipped_days = [
        h["at"][:10]
        for fo in wms.orders.values()
        for h in fo.status_history
        if h["status"] == "shipped"
    ]
    first_day = fifth.start.date().isoformat()
    assert shipped_days.count(first_day) > 0.9 * len(shipped_days)
