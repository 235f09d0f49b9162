"""``twinyard shrink`` and the capsule's ``demand.only``: a failing day cut to the orders that
matter, each keeping its identity, and the capsule file failing the same oracle as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import scenario
from harness.capsules.shrink import _order_numbers
from harness.world.integrator import play

ROOT = Path(__file__).resolve().parent.parent
DAY = "seed: 4\ndemand: {orders: 40}\nwarehouse: {short_pick_rate: 0.3}\n"


def _orders(text: str) -> dict[str, tuple[str, list[tuple[int, int]]]]:
    played = play(scenario.parse(text))
    picked = {
        fo["order_ref"]: [(line["line"], line["picked_qty"]) for line in fo["lines"]]
        for fo in played.models["wms"].snapshot()["orders"].values()
    }
    return {
        o["id"]: (o["created_at"], picked[o["id"]])
        for o in played.models["erp"].snapshot()["orders"]
    }


def test_only_plays_the_named_orders_each_as_it_was_in_the_full_day():
    full = _orders(DAY)
    capsule = _orders(DAY.replace("orders: 40", "orders: 40, only: [7, 31]"))
    assert set(capsule) == {"SO-000007", "SO-000031"}
    assert {k: full[k] for k in capsule} == capsule  # same id, arrival, picks


def test_only_beyond_the_days_orders_is_refused_naming_the_field():
    with pytest.raises(scenario.ScenarioError, match=r"demand: .*only names orders beyond"):
        scenario.parse("demand: {orders: 5, only: [6]}\n")


def test_order_numbers_come_from_what_an_oracle_names():
    named = ["SO-000035 line 3 (SKU-00006)", "SO-000002", "SKU-00001", "FO-000004", "SO-000099"]
    assert _order_numbers(named, 60) == [2, 35]


def test_a_failing_day_shrinks_to_a_capsule_that_fails_the_same_oracle(tmp_path):
    day = tmp_path / "shorts.yaml"
    day.write_text(
        "name: shorts\nseed: 4\nhorizon_days: 2\n"
        "demand: {orders: 20, open: '08:00', close: '10:00'}\n"
        "warehouse: {short_pick_rate: 0.3}\n"
        "faults:\n  - {system: tms, kind: latency, ms: 1}\n"
    )
    stack = f"env REFSTACK_DEFECTS=ordered-qty {sys.executable} -m reference_stack"
    out = tmp_path / "capsule.yaml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "shrink",
            str(day),
            "--stack-cmd",
            stack,
            "--oracle",
            "short_becomes_backorder",
            "--out",
            str(out),
            "--report-dir",
            str(tmp_path / "trials"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "still fails" in done.stdout and f"capsule: {out}" in done.stdout
    capsule = scenario.load(out)
    assert capsule.demand.only is not None and 1 <= len(capsule.demand.only) <= 5
    assert capsule.faults == ()  # the latency fault had nothing to do with it
    assert "short_becomes_backorder names: SO-" in done.stdout
    assert out.read_text().startswith("# CAPSULE: shorts.yaml shrunk")


def test_a_day_that_does_not_fail_is_one_line_and_exit_2(tmp_path):
    day = tmp_path / "calm.yaml"
    day.write_text("seed: 1\ndemand: {orders: 3}\n")
    done = subprocess.run(
        [sys.executable, "-m", "harness", "shrink", str(day), "--report-dir", str(tmp_path / "t")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().endswith("nothing to shrink") and "Traceback" not in done.stderr


def test_delta_debugging_finds_the_orders_a_failure_needs_in_few_plays():
    from harness.capsules.shrink import ddmin

    plays: list[int] = []

    def fails_with_37(orders: list[int]) -> bool:
        plays.append(len(orders))
        return 37 in orders

    assert ddmin(list(range(1, 51)), fails_with_37) == [37]
    assert len(plays) <= 12  # halves first: not one play per order
    assert ddmin(list(range(1, 51)), lambda xs: 3 in xs and 40 in xs) == [3, 40]
    assert ddmin([7], lambda xs: True) == [7]
