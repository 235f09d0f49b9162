"""The soak benchmark (issue 14, item 7) in its short form: the same code path as
``benchmarks/soak.py``, for half a wall minute at 20x (ten virtual minutes at a quarter of the
peak day's busiest hour), asserting that every event is accounted for and none is lost.
Memory and timing are reported by the benchmark, never asserted here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from harness.scenario import load
from simulators.common.journal import body_digest
from simulators.common.webhooks import Delivery, Subscription

ROOT = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


soak = _load()


@pytest.mark.long(30)
async def test_a_short_soak_loses_no_event_and_accounts_for_each(tmp_path: Path) -> None:
    result = await soak.soak(
        minutes=0.5, rate_factor=0.25, clock_factor=20, report_dir=tmp_path, sample_every_s=1
    )
    ledger = result.ledger
    assert ledger.lost == 0, ledger.lost_examples
    assert ledger.sent > 0 and ledger.acknowledged > 0
    assert ledger.accounted == ledger.sent
    assert ledger.published == ledger.sent + ledger.queued
    # every order of the demand, and those placed for SKUs launched in the window
    counts, day = result.outcome.counts, result.scenario
    for_new_items = counts["released"] - day.demand.orders
    assert (
        0 <= for_new_items <= counts.get("items_launched", 0) * day.master_data.orders_per_new_item
    )
    verdict = orjson.loads((tmp_path / "verdict.json").read_bytes())
    assert [o["name"] for o in verdict["oracles"]] == soak.SAFETY_ORACLES
    assert verdict["passed"], [o for o in verdict["oracles"] if not o["passed"]]
    figures = orjson.loads((tmp_path / "soak.json").read_bytes())
    assert figures["ledger"]["lost"] == 0
    assert {m["process"] for m in figures["memory_kb"]} == {"harness", "stack"}


def test_the_soak_day_is_the_peak_day_at_its_busiest_hour_times_the_factor() -> None:
    peak = load(soak.PEAK_DAY)
    # 10:00 weighs 8 of 72 (a close at 23:59 takes a minute off the last hour)
    assert soak.peak_hour_rate(peak) == pytest.approx(10_000 * 8.0 / 72.0, rel=1e-3)
    day = soak.soak_scenario(peak, minutes=10, rate_factor=2, clock_factor=1)
    assert day.demand.orders == round(2 * 10_000 * 8.0 / 72.0 / 6)  # ten minutes of it
    assert day.horizon_days * 86_400 == pytest.approx(600)
    assert (day.clock.mode, day.clock.factor) == ("realtime", 1)
    assert (day.warehouse.pickers, day.warehouse.packers) == (60, 40)  # the early shift
    assert day.warehouse.cutoff.isoformat() == "00:09:00"
    assert (day.catalogue, day.carrier, day.stock) == (peak.catalogue, peak.carrier, peak.stock)


SUB = Subscription("WH-0001", "http://stack/webhooks/erp", frozenset({"*"}), "s", "now")


def delivery(event_id: str, status: str, attempts: int, *, probe: bool = False) -> Delivery:
    body = orjson.dumps({"id": event_id})
    return Delivery(
        f"DL-{event_id}",
        SUB,
        event_id,
        "order.released",
        body,
        None,
        f"SO-{event_id}",
        attempts=attempts,
        status=status,
        probe=probe,
    )


def entry(d: Delivery, status: int) -> dict[str, object]:
    return {"direction": "out", "body_digest": body_digest(d.body), "status": status}


def test_the_ledger_sorts_each_event_and_finds_the_lost_ones() -> None:
    ok = delivery("1", "delivered", 2)
    retrying = delivery("2", "pending", 1)
    cut_on_the_wire = delivery("3", "pending", 1)  # its only attempt never came back
    given_up = delivery("4", "failed", 6)
    queued = delivery("5", "pending", 0)
    forged = delivery("6", "failed", 1, probe=True)
    dropped = delivery("7", "delivered", 1)  # acknowledged, then the handler failed
    forgotten = delivery("8", "delivered", 1)  # acknowledged, never kept
    unjournalled = delivery("9", "delivered", 1)
    dead_work = delivery("10", "delivered", 1)
    journals = {
        "erp": [
            entry(ok, 503),
            entry(ok, 202),
            entry(retrying, 503),
            *(entry(given_up, 500) for _ in range(6)),
            entry(forged, 401),
            entry(dropped, 202),
            entry(forgotten, 202),
            entry(dead_work, 202),
        ]
    }
    inbox = {"1": None, "7": "KeyError: 'lines'", "9": None, "10": None}
    ledger = soak.account(
        [
            ok,
            retrying,
            cut_on_the_wire,
            given_up,
            queued,
            forged,
            dropped,
            forgotten,
            unjournalled,
            dead_work,
        ],
        journals,
        inbox,
        {"SO-10"},
    )
    assert (ledger.published, ledger.queued, ledger.sent) == (9, 1, 8)
    assert (ledger.acknowledged, ledger.retrying, ledger.dead_lettered) == (2, 2, 1)
    assert ledger.lost == 3
    assert ledger.accounted == ledger.sent
    assert ledger.lost_examples == [
        "7: acknowledged, then dropped: KeyError: 'lines'",
        "8: acknowledged, but not in the stack's inbox",
        "9: 1 attempts, 0 in the journals",
    ]
    assert ledger.events_with_dead_work == 1
