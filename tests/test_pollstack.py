"""A stack that never takes a webhook: ``tests/stacks/pollstack``, written from the README,
docs/feeds.md, docs/choreography.md and the contracts alone. It learns everything by polling
(the ERP's orders change list, the other vendors' events feeds) and commits each cursor only
after the batch's work is done.

These days play in realtime (tests/test_pollstack_lockstep.py plays it in lockstep, paced by
its declared schedule): a short night (orders from midnight, the truck at 02:00, parcels
delivered before dawn) at 1200 virtual seconds per wall second, about half a minute each. A WMS
outage of 45 virtual minutes (2.25 wall seconds, longer than the stack sleeps inside a batch)
makes fulfilment-order creation fail, so the records must be read again on a later cycle. The
whole incident library in realtime is measured outside the suite (tests/stacks/README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import scenario
from harness.runner import RunConfig, run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
POLLSTACK = [sys.executable, "-m", "tests.stacks.pollstack"]

SHORT_NIGHT = """
name: pollstack_short_night
seed: 5
start: 2026-11-23T00:00:00Z
horizon_days: 1
demand:
  orders: 24
  open: "00:00"
  close: "01:00"
  cancel_rate: 0.1
  cancel_after: {min_minutes: 1, mean_minutes: 5, max_minutes: 20}
catalogue: {skus: 8, initial_stock: 100}
warehouse:
  pickers: 4
  packers: 2
  short_pick_rate: 0.1
  cutoff: "02:00"
carrier:
  {ground_transit_days: 0, express_transit_days: 0, delivery_hour: 5, settle_after_hours: 0.5}
clock: {mode: realtime, factor: 1200}
faults:
  - {system: wms, kind: outage, at: "00:10", for: 2700}
"""


async def play(tmp_path: Path, bugs: str = ""):
    return await run(
        RunConfig(
            scenario=scenario.parse(SHORT_NIGHT, "pollstack_short_night.yaml"),
            stack_cmd=POLLSTACK,
            stack_env={"POLLSTACK_INTERVAL_S": "0.2", "POLLSTACK_BUGS": bugs},
            report_dir=tmp_path / (bugs or "clean"),
        )
    )


def failed(outcome) -> dict[str, list[str]]:
    return {r.name: [f.entity for f in r.findings[:3]] for r in outcome.results if not r.passed}


async def test_a_stack_that_only_polls_passes_an_outage_in_realtime(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # `python -m tests.stacks.pollstack` from the checkout
    outcome = await play(tmp_path)
    assert failed(outcome) == {}, outcome.notes + outcome.diagnosis
    assert outcome.counts["shipped"] > 0
    assert any("outage" in note for note in outcome.notes)  # the WMS did go down


async def test_committing_a_batch_with_a_failed_record_loses_orders(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "partial-batch")
    caught = failed(outcome)
    assert "orders_terminal" in caught and "one_wms_order_per_erp_order" in caught, caught
