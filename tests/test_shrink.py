"""``twinyard shrink`` and the capsule's ``demand.only``: a failing day cut to the orders that
matter, each keeping its identity, and the capsule file failing the same oracle as written."""

from __future__ import annotations

import json
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


@pytest.mark.long(40)
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


def test_a_failure_that_needs_volume_shrinks_once_the_limit_it_exceeds_is_lowered(
    tmp_path, monkeypatch
):
    """A carrier that declines express beyond its capacity fails a stack with no fallback
    only when more express orders arrive than the capacity: the day's 60 orders cannot
    shrink below capacity + 1 until the capacity itself is lowered."""
    from harness.capsules import shrink as shrinking
    from harness.compare.play import Played

    day = tmp_path / "cap.yaml"
    day.write_text("name: cap\ndemand: {orders: 60}\ncarrier: {express_capacity_per_day: 8}\n")

    async def fake_play(file, side, seed, folder):
        given = dict(o.split("=", 1) for o in side.overrides)
        if "demand.only" in given:
            orders = json.loads(given["demand.only"])
        else:
            orders = list(range(1, int(given.get("demand.orders", 60)) + 1))
        capacity = int(given.get("carrier.express_capacity_per_day", 8))
        express = [n for n in orders if n % 4 == 0]  # one order in four is express
        declined = express[capacity:]
        names = [f"SO-{n:06d}" for n in declined]
        failing = ["orders_terminal"] if declined else []
        return Played(
            side,
            file,
            seed,
            folder,
            1 if declined else 0,
            0.0,
            outcome=object(),
            passed=not declined,
            failing_oracles=failing,
            named={"orders_terminal": names} if declined else {},
        )

    monkeypatch.setattr(shrinking, "play_one", fake_play)
    shrunk = shrinking.shrink(day, "stack", None, tmp_path / "trials", tmp_path / "capsule.yaml")
    assert shrunk.orders[1] == 1
    assert shrunk.limits == [("carrier.express_capacity_per_day", 8, 0)]
    assert "# carrier.express_capacity_per_day 8 -> 0" in (tmp_path / "capsule.yaml").read_text()


def test_an_imported_capsule_shrinks_by_its_scripted_orders_and_keeps_their_timeline(
    tmp_path, monkeypatch
):
    """A capsule from `twinyard import` names its orders explicitly: shrinking drops orders
    (and the timeline entries about them) by id, keeping what is not about an order."""
    from harness.capsules import shrink as shrinking
    from harness.compare.play import Played

    ids = [f"WEB-{n}" for n in range(1, 11)]
    orders = "".join(
        f"  - {{id: {i}, at: {3600 * n}, lines: [{{sku: SKU-00001, qty: 2}}]}}\n"
        for n, i in enumerate(ids, 1)
    )
    timeline = (
        "".join(f"  - {{pick: {{order: {i}, line: 1, short: 1}}}}\n" for i in ("WEB-3", "WEB-7"))
        + "  - {at: 40000, receipt: {sku: SKU-00002, qty: 5}}\n"
    )
    day = tmp_path / "imported.yaml"
    day.write_text(f"name: imp\ndemand: {{orders: 0}}\norders:\n{orders}timeline:\n{timeline}")

    async def fake_play(file, side, seed, folder):
        played_ids = [o.id for o in scenario.load(file).orders]
        shorts = [e.pick.order for e in scenario.load(file).timeline if e.pick]
        bad = [i for i in played_ids if i in shorts]  # a short pick never backordered
        names = [f"{i} line 1 (SKU-00001)" for i in bad]
        return Played(
            side,
            file,
            seed,
            folder,
            1 if bad else 0,
            0.0,
            outcome=object(),
            passed=not bad,
            failing_oracles=["short_becomes_backorder"] if bad else [],
            named={"short_becomes_backorder": names},
        )

    monkeypatch.setattr(shrinking, "play_one", fake_play)
    out = tmp_path / "capsule.yaml"
    shrunk = shrinking.shrink(day, "stack", None, tmp_path / "trials", out)
    assert shrunk.orders == (10, 1)
    capsule = scenario.load(out)
    (kept,) = [o.id for o in capsule.orders]
    assert kept in ("WEB-3", "WEB-7")  # either short order alone fails
    kinds = sorted(e.kind for e in capsule.timeline)
    assert kinds == ["pick", "receipt"]  # the other's pick went with it; the receipt stays
    assert next(e.pick.order for e in capsule.timeline if e.pick) == kept
