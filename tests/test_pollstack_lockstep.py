"""A stack that never takes a webhook and has no probe (tests/stacks/pollstack, written from the
docs alone) plays in lockstep, paced by its declared schedule: a correct one passes with
release latencies inside its 5-minute poll, and a planted batch bug is caught by the oracles.
The feed incidents that make watermark bugs certain (feed_batch_mid_commit: a second committed
in parts; feed_vendor_clock_drift: a vendor's list clock running slow) pass clean and catch
theirs. (Its realtime tests were dropped from the suite: a realtime day at 1200x depends on
the machine keeping up, and failed once in CI under load; lockstep does not.)"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from harness import scenario
from harness.runner import RunConfig, run
from harness.scenario import ScheduledRead
from tests.stacks.pollstack.flows import Flows
from tests.stacks.pollstack.vendors import Later, Vendors

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
INCIDENTS = ROOT / "scenarios" / "incidents"
POLLSTACK = [sys.executable, "-m", "tests.stacks.pollstack"]
SCHEDULE = [  # it reads the ERP's /events and /orders, and the others' /events
    ScheduledRead(system="erp", route="/", every=300),
    *(ScheduledRead(system=s, route="/events", every=300) for s in ("wms", "tms", "carrier")),
]
# No settle_ms: on a loaded machine the stack can compute for longer than the default 50 ms
# before its first call after a read (a page of 40 releases, 20 POSTs prepared at once), and
# lockstep must wait for it because it has seen the stack rest before (REST_PATIENCE_S).
BURST = """
name: release_burst
seed: 5
demand: {orders: 60, open: "08:00", close: "08:20", cancel_rate: 0.1}
catalogue: {skus: 10, initial_stock: 200}
warehouse: {pickers: 6, packers: 3, short_pick_rate: 0.1, cutoff: "17:00"}
"""


async def play(tmp_path: Path, bugs: str = "", day: scenario.Scenario | None = None):
    day = day or scenario.parse(BURST)
    day = day.with_stack(day.stack.model_copy(update={"schedule": SCHEDULE}))
    return await run(
        RunConfig(
            scenario=day,
            stack_cmd=POLLSTACK,
            stack_env={
                "POLLSTACK_INTERVAL_S": "0.05",
                "POLLSTACK_PAGE_LIMIT": "10",  # the burst is many pages long
                "POLLSTACK_BUGS": bugs,
            },
            report_dir=tmp_path / (bugs or "clean"),
        )
    )


async def test_a_polling_stack_passes_in_lockstep_at_the_pace_of_its_schedule(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(ROOT)  # `python -m tests.stacks.pollstack` from the checkout
    outcome = await play(tmp_path)
    failed = {r.name: [f.entity for f in r.findings[:3]] for r in outcome.results if not r.passed}
    assert failed == {}, outcome.notes
    release = next(s for s in outcome.service_levels if s.name == "release_latency").stats
    assert 0 < release["p50"] <= 300 and release["max"] <= 300  # the poll, not the harness
    assert any("lockstep kept step with: erp every 300 s" in n for n in outcome.notes)
    assert not any("did not read" in n for n in outcome.notes)


@pytest.mark.long(35)
async def test_a_polling_stack_plays_the_happy_day_with_returns_master_data_and_two_sites(
    tmp_path, monkeypatch
):
    """The happy day has customer returns, new SKUs with orders minutes behind them, item
    edits, part of the range sold in cases, and a second warehouse refilled by transfer
    orders. A poller learns of them from the feeds: the ERP's item.created/item.changed and
    transfer.released, the WMS's return.received and transfer.shipped/received are on their
    `GET /events` like every other event, and each order's site is on the ERP's order list
    (docs/feeds.md); nothing else tells it."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, day=scenario.load(ROOT / "scenarios" / "happy_day.yaml"))
    assert failures(outcome) == {}, outcome.notes
    checked = {r.name: r.checked for r in outcome.results}
    for judged in (  # each judged something: the day did return goods, launch items, transfer
        "returns_reconciled",
        "item_master_synced",
        "no_order_blocked_by_master_data",
        "order_lines_reach_wms",
        "site_stock_reconciled",
        "transfer_issued_as_shipped",
        "transfer_received_once",
    ):
        assert checked[judged] > 0, judged
    release = next(s for s in outcome.service_levels if s.name == "release_latency").stats
    assert release["max"] <= 300


async def test_reading_only_the_first_page_of_a_feed_loses_orders(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "first-page-only")
    failed = {r.name: [f.entity for f in r.findings] for r in outcome.results if not r.passed}
    assert "orders_terminal" in failed and failed["orders_terminal"][0].startswith("SO-")


async def test_a_polling_stack_passes_two_sites_and_transfers(tmp_path, monkeypatch):
    """The incident's event faults break only webhook deliveries, which a poller never takes;
    what it must survive are the answer faults on both transfer APIs: a WMS create whose
    answer was lost is looked up by transfer_ref, not sent again (the WMS does not dedupe)."""
    monkeypatch.chdir(ROOT)
    day = scenario.load(INCIDENTS / "two_sites_and_transfers.yaml")
    outcome = await play(tmp_path, day=day)
    assert failures(outcome) == {}, outcome.notes
    checked = {r.name: r.checked for r in outcome.results}
    assert checked["transfer_received_once"] > 0 and checked["site_stock_reconciled"] > 0
    assert any("faults applied:" in n and "lost_response" in n for n in outcome.notes)


async def test_a_transfer_receipt_refused_before_its_issue_is_posted_after_it(twinyard_sims):
    """The ERP replays a refusal to a retry under the same Idempotency-Key, so the receipt
    refused with 409 invalid_status (its issue not booked yet) is tried again under a new key,
    and posted once the issue is; a receipt already posted for a WMS transfer is not again."""
    erp = twinyard_sims["erp"]
    state = "transfer TO-000001 from DC1 to DC2 is released"
    setup = {"state": state, "params": {"sku": "SKU-00001", "qty": 5}, "action": "setup"}
    httpx.post(f"{erp}/_sim/provider-states", json=setup, headers=twinyard_sims.headers)
    vendors = Vendors(dict(twinyard_sims))
    flows = Flows(vendors)
    moved = {
        "transfer_id": "WT-000001",
        "transfer_ref": "TO-000001",
        "lines": [{"line": 1, "sku": "SKU-00001", "qty": 5}],
    }
    try:
        with pytest.raises(Later):
            await flows.post_transfer("transfer.received", moved)  # the events crossed
        await flows.post_transfer("transfer.shipped", moved)
        await flows.post_transfer("transfer.received", moved)
        await flows.post_transfer("transfer.received", moved)  # read again: posted already
    finally:
        await vendors.close()
    order = httpx.get(f"{erp}/transfers/TO-000001").json()
    assert (len(order["issues"]), len(order["receipts"]), order["status"]) == (1, 1, "received")


async def test_a_goods_issue_refused_for_book_stock_is_posted_once_the_stock_is_booked(
    twinyard_sims,
):
    """The same for an order: a DC2 goods issue can come before the transfer receipt that
    books its stock (the ERP was down for the receipt); under the refused key it never posts."""
    erp, headers = twinyard_sims["erp"], twinyard_sims.headers

    def given(state: str, **params: object) -> None:
        body = {"state": state, "params": params, "action": "setup"}
        httpx.post(f"{erp}/_sim/provider-states", json=body, headers=headers).raise_for_status()

    given("order SO-000001 is released", sku="SKU-00001", qty=2)
    given("SKU SKU-00001 has 0 on hand")
    vendors = Vendors(dict(twinyard_sims))
    flows = Flows(vendors)
    order, shipped = flows.order("SO-000001"), [{"line": 1, "qty": 2, "uom": "EA"}]
    try:
        with pytest.raises(Later):
            await flows.goods_issue(order, shipped, "1Z000001", "UPS")
        given("SKU SKU-00001 has 5 on hand")
        await flows.goods_issue(order, shipped, "1Z000001", "UPS")
    finally:
        await vendors.close()
    assert httpx.get(f"{erp}/orders/SO-000001").json()["status"] == "shipped"


def failures(outcome) -> dict[str, list[str]]:
    """Each failed oracle and the entities it names."""
    return {r.name: [f.entity for f in r.findings] for r in outcome.results if not r.passed}


WATERMARK_BUGS = {  # incident -> the planted bug it must catch, and the orders it loses
    "feed_batch_mid_commit": ("same-second", [f"SO-{n:06d}" for n in range(21, 41)]),
    "feed_vendor_clock_drift": ("own-clock", None),  # which: the stack's cycles decide
}


@pytest.mark.parametrize("incident", sorted(WATERMARK_BUGS))
async def test_a_correct_polling_stack_passes_the_feed_watermark_incidents(
    tmp_path, monkeypatch, incident
):
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, day=scenario.load(INCIDENTS / f"{incident}.yaml"))
    assert failures(outcome) == {}, outcome.notes
    assert any("faults applied: erp feed_" in n for n in outcome.notes), outcome.notes


@pytest.mark.parametrize("incident", sorted(WATERMARK_BUGS))
async def test_a_watermark_bug_loses_orders_in_its_feed_incident(tmp_path, monkeypatch, incident):
    """same-second (`>` on whole-second stamps) loses the second half of the batch's second,
    which the torn commit showed later; own-clock (updated_since = our clock when the last
    poll began) loses what the slow ERP stamped earlier than that."""
    monkeypatch.chdir(ROOT)
    bug, lost = WATERMARK_BUGS[incident]
    outcome = await play(tmp_path, bug, scenario.load(INCIDENTS / f"{incident}.yaml"))
    failed = failures(outcome)
    assert "orders_terminal" in failed, failed
    never_released = failed["orders_terminal"]
    assert never_released and all(ref.startswith("SO-") for ref in never_released)
    if lost is not None:
        assert never_released == lost


SLOW_CREATE = """
name: slow_create
seed: 5
demand: {orders: 6, open: "08:00", close: "08:30"}
catalogue: {skus: 5, initial_stock: 100}
warehouse: {pickers: 2, packers: 1, cutoff: "17:00"}
faults:
  - {system: wms, route: POST /fulfilment-orders, kind: latency, ms: 15000, match: SO-000003}
"""


@pytest.mark.long(30)
async def test_a_create_looked_for_before_the_vendor_gave_up_on_it_is_made_twice(
    tmp_path, monkeypatch
):
    """One WMS create answers after 15 s, past the stack's 10 s timeout (as in
    write_responses_lost). Looked for at once, it is not there yet and is created again,
    then both land. (Looked for 30 s after it was sent, the README's rule, it is found: the
    clean pollstack passes this day and write_responses_lost, measured outside the suite.)"""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "look-at-once", scenario.parse(SLOW_CREATE))
    failed = failures(outcome)
    assert failed.get("one_wms_order_per_erp_order") == ["SO-000003"], failed
    assert any("wms latency x" in note for note in outcome.notes), outcome.notes


LACKING_FIELD = """
name: lacking_field
seed: 5
demand: {orders: 12, open: "08:00", close: "12:00"}
catalogue: {skus: 5, initial_stock: 100}
warehouse: {pickers: 2, packers: 1, cutoff: "17:00"}
faults:
  - system: tms
    route: POST /shipments
    kind: schema_drift
    remove_fields: [carrier]
    at: "08:00"
    for: 7200
"""


@pytest.mark.long(30)
async def test_a_record_set_aside_for_a_field_a_vendor_answer_lacked_is_lost(tmp_path, monkeypatch):
    """The TMS's answers lack `carrier` for two hours (vendor_schema_drift: 30 minutes). Set
    aside as a dead letter that this stack cannot replay, each order is lost; tried again
    later, the same key gets the whole answer once the release is rolled back. (The clean
    pollstack passes this day and vendor_schema_drift, measured outside the suite.)"""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "lacking-field-dead", scenario.parse(LACKING_FIELD))
    failed = failures(outcome)
    assert failed.get("orders_terminal"), failed


def test_pollstack_reads_a_retry_after_given_as_an_http_date():
    """vendor_maintenance_windows sends two outages' Retry-After as HTTP dates: pollstack read
    only seconds and retried within the window (caught by retry_after_respected)."""
    import email.utils
    import time

    from tests.stacks.pollstack.vendors import retry_after

    def answer(value: str) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": value})

    assert retry_after(answer("7")) == 7.0
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= retry_after(answer(in_a_minute)) <= 61
    assert retry_after(answer("soon")) is None
    assert retry_after(httpx.Response(503)) is None
