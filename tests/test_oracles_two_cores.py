"""Judging on two cores gives exactly what judging on one gives, and survives its child."""

from __future__ import annotations

import os
import pickle

import pytest

from harness import oracles, scenario
from harness.oracles import two_cores
from harness.world.integrator import play

DAY = """
seed: 11
demand: {orders: 30, cancel_rate: 0.1}
catalogue: {skus: 6, initial_stock: 20}
warehouse: {short_pick_rate: 0.2}
"""


@pytest.fixture(scope="module")
def spoilt_view() -> oracles.SystemsView:
    """A played day with a line's quantity changed on its way to the WMS (a lineage row
    trips) and an ERP order shipped twice over in stock (an invariant outside the tables)."""
    played = play(scenario.parse(DAY))
    snaps = {system: model.snapshot() for system, model in played.models.items()}
    fo = next(f for f in snaps["wms"]["orders"].values() if f["lines"])
    fo["lines"][0]["qty"] += 1
    sku = next(iter(snaps["erp"]["stock"]))
    snaps["erp"]["stock"][sku] -= 5
    return oracles.SystemsView(snaps)


def judged(results: list[oracles.OracleResult]) -> list[dict]:
    return [r.to_dict() for r in results]


def test_the_split_judges_as_one_core_does_in_the_same_order(spoilt_view, monkeypatch):
    forks: list[int] = []
    real_fork = os.fork

    def counted() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(two_cores.os, "fork", counted)
    chosen = oracles.select(None)
    alone = judged([o.judge(spoilt_view) for o in chosen])
    split = judged(two_cores.judge_split(spoilt_view, chosen, from_orders=0))
    assert len(forks) == 1
    assert split == alone
    failed = {r["name"] for r in split if not r["passed"]}
    assert "order_lines_reach_wms" in failed  # judged in the child
    assert failed - {o.name for o in chosen if o.rule.__module__.endswith("lineage")}  # here


def test_a_small_day_is_judged_here_without_a_fork(spoilt_view, monkeypatch):
    def refuse() -> int:
        raise AssertionError("forked for a small day")

    monkeypatch.setattr(two_cores.os, "fork", refuse)
    chosen = oracles.select(None)
    assert judged(two_cores.judge_split(spoilt_view, chosen)) == judged(
        [o.judge(spoilt_view) for o in chosen]
    )


def test_a_child_that_fails_has_its_oracles_judged_here(spoilt_view, monkeypatch):
    def broken(*args, **kwargs) -> bytes:
        raise RuntimeError("the child cannot send")

    monkeypatch.setattr(two_cores.pickle, "dumps", broken)  # the child inherits it
    chosen = oracles.select(None)
    split = two_cores.judge_split(spoilt_view, chosen, from_orders=0)
    monkeypatch.setattr(two_cores.pickle, "dumps", pickle.dumps)
    assert judged(split) == judged([o.judge(spoilt_view) for o in chosen])
