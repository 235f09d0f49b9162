"""A stack twinyard never saw: ``tests/stacks/ministack``, written from the README and the
contracts alone. It passes incidents clean with no idle probe and with a probe that says only
``idle`` (lockstep infers its retry timers), and its planted bugs are caught by the oracles.

The whole incident library in each probe mode is measured outside the suite (a few minutes
each); the closing notes and tests/stacks/README.md have the figures. Here: the incidents that
need timer inference most (an outage, lost answers), and bugs caught by the lineage rows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import scenario
from harness.runner import RunConfig, run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
INCIDENTS = ROOT / "scenarios" / "incidents"
MINISTACK = [sys.executable, "-m", "tests.stacks.ministack"]


async def play(tmp_path: Path, name: str, probe: str, bugs: str = "", pace: float | None = None):
    """Play an incident against ministack; ``pace``: the lockstep clock's, instead of the
    scenario's."""
    played = scenario.load(INCIDENTS / f"{name}.yaml")
    if pace is not None:
        clock = played.clock.model_copy(update={"pace": pace})
        played = played.model_copy(update={"clock": clock})
    return await run(
        RunConfig(
            scenario=played,
            stack_cmd=MINISTACK,
            stack_env={"MINISTACK_PROBE": probe, "MINISTACK_BUGS": bugs},
            report_dir=tmp_path / f"{name}-{probe}-{bugs or 'clean'}",
        )
    )


def failed(outcome) -> dict[str, list[str]]:
    return {r.name: [f.entity for f in r.findings[:3]] for r in outcome.results if not r.passed}


@pytest.mark.long(25)
@pytest.mark.parametrize(
    ("name", "probe"),
    [
        ("wms_outage_during_wave", "none"),
        ("label_response_lost", "idle"),
        ("wms_outage_during_wave", "busy-waiting"),  # a probe that counts timer waits as work
        ("vendor_maintenance_windows", "none"),  # Retry-After in seconds and as HTTP dates
        ("returns_after_peak", "none"),  # returns, as the README's stack bullets describe
        ("master_data_day", "none"),  # item sync, cases in eaches, orders waiting for items
        ("two_sites_and_transfers", "none"),  # sites and transfers, as the README describes
    ],
)
async def test_a_stack_written_from_the_readme_passes_incidents_without_a_full_probe(
    tmp_path, monkeypatch, name, probe
):
    monkeypatch.chdir(ROOT)  # `python -m tests.stacks.ministack` from the checkout
    outcome = await play(tmp_path, name, probe)
    assert failed(outcome) == {}, outcome.notes + outcome.diagnosis
    assert outcome.counts["shipped"] > 0


async def test_its_planted_bugs_are_caught_by_the_lineage_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "short_pick_backorder", "idle", "label-service,scan-time")
    caught = failed(outcome)
    assert "label_service_as_planned" in caught
    assert "tracking_posted_as_scanned" in caught and "latest_scan_in_erp" in caught


async def test_references_passed_on_wrong_are_caught_by_the_lineage_rows(tmp_path, monkeypatch):
    """Values no system refuses and no count notices: the WMS order sent as standard, the
    goods issue naming the WMS order as its shipment, milestones under the label's id."""
    monkeypatch.chdir(ROOT)
    bugs = "wms-standard,shipment-as-fo,tracking-label-id,label-shipment-ref"
    outcome = await play(tmp_path, "short_pick_backorder", "idle", bugs)
    caught = failed(outcome)
    assert {
        "service_level_reaches_wms",
        "goods_issue_names_its_shipment",
        "tracking_posted_as_scanned",
        "label_attached_as_bought",
    } <= set(caught)


async def test_order_numbers_put_into_a_path_unencoded_are_caught(tmp_path, monkeypatch):
    """short_pick_backorder has two orders migrated with the old ERP's numbers (SO/2026/0001):
    a stack that writes f"/orders/{ref}/goods-issue" never posts their goods issues."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "short_pick_backorder", "idle", "raw-order-path")
    caught = failed(outcome)
    assert {"orders_terminal", "goods_issue_matches_shipment"} <= set(caught)
    assert caught["orders_terminal"] == ["SO/2026/0001", "SO/2026/0002"]


@pytest.mark.long(40)
async def test_adjustments_posted_under_a_default_reason_are_caught(tmp_path, monkeypatch):
    """inventory_drift's counts find units that turned up unbooked (reason found): a reason map
    that knows only damage books them as a count difference."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "inventory_drift", "idle", "reason-default")
    assert "adjustment_posted_once" in failed(outcome)


@pytest.mark.long(40)
async def test_skus_put_into_a_path_unencoded_are_caught(tmp_path, monkeypatch):
    """master_data_day's SKUs carry a slash, spaces, a '#' (SKU-00001/XL, SKU #8-00003): a
    stack that writes f"/items/{sku}" PUTs no item and reads no case size for them.

    Its orders then wait for items that never come, retried for ever on a 30 s wall timer;
    unless lockstep has learnt a shorter patience from retries answered early (load decides),
    it paces virtual time through the three-day horizon: about 860 s at the default pace (803 s
    seen under xdist). At pace 3000 the test takes about 25 s, and 138 s with the patience never
    learnt (measured); the defect is caught the same way."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "master_data_day", "idle", "raw-sku-path", pace=3000)
    assert {"item_master_synced", "no_order_blocked_by_master_data"} <= set(failed(outcome))


async def test_stock_posted_without_its_site_is_caught_per_site(tmp_path, monkeypatch):
    """Breakage found at DC2 booked at the ERP's default site: both sites' books drift."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "two_sites_and_transfers", "none", "siteless-stock")
    caught = failed(outcome)
    assert any(e.startswith("DC2/") for e in caught.get("site_stock_reconciled", [])), caught


async def test_a_dead_letter_for_an_item_version_a_newer_one_replaced_is_caught(
    tmp_path, monkeypatch
):
    """A description the WMS refused (too long), shortened half an hour later: the stack that
    keeps the refused version's dead letter pages the on-call to put the old text back."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "master_data_day", "none", "obsolete-item-letter")
    assert "dead_letters_only_for_undone_work" in failed(outcome)


async def test_a_signature_header_sent_twice_and_taken_is_caught(tmp_path, monkeypatch):
    """The clean ministack refuses the garbled copies (and takes the genuine event after each,
    under the same id); read by its first signature, the doubled header is acknowledged."""
    monkeypatch.chdir(ROOT)
    clean = await play(tmp_path, "vendor_schema_drift", "idle")
    assert failed(clean) == {}, clean.notes + clean.diagnosis
    refused = next(r for r in clean.results if r.name == "garbled_events_refused")
    assert refused.checked > 0
    outcome = await play(tmp_path, "vendor_schema_drift", "idle", "first-signature")
    assert set(failed(outcome)) == {"garbled_events_refused"}
    assert all("headers_twice" in f.message for r in outcome.results for f in r.findings)


async def test_an_event_id_recorded_before_its_envelope_is_read_loses_the_genuine_event(
    tmp_path, monkeypatch
):
    """The garbled copy comes first under the genuine event's id: a stack that dedups by the
    header before it has a valid envelope drops the genuine event as a duplicate."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "vendor_schema_drift", "idle", "dedup-first")
    caught = failed(outcome)
    assert "orders_terminal" in caught and "latest_scan_in_erp" in caught, caught


async def test_order_lines_kept_one_per_sku_are_caught_where_a_sku_is_on_two_lines(
    tmp_path, monkeypatch
):
    """short_pick_backorder has orders with one SKU on two lines: a stack that keeps an
    order's lines by SKU sends the WMS one of them."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "short_pick_backorder", "idle", "lines-by-sku")
    assert "order_lines_reach_wms" in failed(outcome)


async def test_a_label_for_the_first_carton_only_is_caught_where_orders_fill_several(
    tmp_path, monkeypatch
):
    """carrier_capacity_cap has bulk orders packed in more than one carton: a label bought for
    the first carton leaves the others' goods off the parcel."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "carrier_capacity_cap", "idle", "first-carton")
    assert "parcel_contents_match_shipment" in failed(outcome)


async def test_a_scan_time_whose_offset_is_cut_off_is_caught(tmp_path, monkeypatch):
    """out_of_order_tracking's carrier stamps scans in Berlin time (+01:00): a stack that
    takes the local time for UTC posts every milestone an hour off."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "out_of_order_tracking", "idle", "offset-dropped")
    caught = failed(outcome)
    assert "tracking_posted_as_scanned" in caught and "latest_scan_in_erp" in caught


async def test_a_ship_to_country_written_over_with_the_home_country_is_caught(
    tmp_path, monkeypatch
):
    """address_changed_after_release sends a quarter of its orders abroad: a stack built for
    one country's shop sends them on as German addresses."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "address_changed_after_release", "idle", "home-country")
    caught = failed(outcome)
    assert "ship_to_reaches_wms" in caught and "parcel_goes_to_current_address" in caught


async def test_freight_accrued_in_eur_whatever_the_bill_says_is_caught(tmp_path, monkeypatch):
    """address_changed_after_release ships to Denmark and Poland, whose partner carrier bills
    in DKK and PLN: a stack that books every bill in EUR accrues the wrong amount."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "address_changed_after_release", "idle", "euro-only")
    assert "freight_accrued_once" in failed(outcome)


async def test_scan_times_parsed_with_a_seconds_only_format_are_caught(tmp_path, monkeypatch):
    """events_late_and_out_of_order's carrier writes its scan times to the millisecond
    (``...00.000Z``): a stack that normalises them through ``%Y-%m-%dT%H:%M:%S%z`` cannot parse
    one, and the scans never reach the ERP."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "events_late_and_out_of_order", "idle", "seconds-only")
    assert "latest_scan_in_erp" in failed(outcome)


async def test_adjustments_posted_as_write_offs_are_caught_where_a_count_finds_units(
    tmp_path, monkeypatch
):
    """inventory_drift's shelves gain units nobody booked, and its counts add them back
    (``found``, a positive delta): a stack that posts every adjustment as a loss is caught."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "inventory_drift", "idle", "losses-only")
    assert {"adjustment_posted_once", "stock_reconciled"} <= set(failed(outcome))


async def test_wms_lines_numbered_by_position_are_caught_where_the_erp_numbers_in_tens(
    tmp_path, monkeypatch
):
    """returns_after_peak's ERP numbers order lines 10, 20, 30: a stack that numbers the WMS
    order's lines 1, 2, 3 cannot post a goods issue the ERP takes."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "returns_after_peak", "idle", "renumbered")
    assert {"order_lines_reach_wms", "goods_issue_matches_shipment"} <= set(failed(outcome))


async def test_events_deduplicated_by_type_and_order_lose_a_second_address_change(
    tmp_path, monkeypatch
):
    """address_changed_after_release's movers call twice: a stack that takes a second
    ``order.updated`` for the same order as a duplicate ships to the first new address."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "address_changed_after_release", "idle", "once-per-order")
    assert {"ship_to_reaches_wms", "parcel_goes_to_current_address"} <= set(failed(outcome))


async def test_a_receipt_posted_with_its_first_line_only_is_caught_where_a_truck_brings_many(
    tmp_path, monkeypatch
):
    """events_redelivered's supplier brings purchases due within two hours on one truck: one
    receipt, a line per SKU. A stack that posts the first line only is caught."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "events_redelivered", "idle", "first-receipt-line")
    assert {"receipt_posted_once", "stock_reconciled"} <= set(failed(outcome))


async def test_supplier_receipts_posted_without_their_site_are_caught(tmp_path, monkeypatch):
    """inventory_drift's DC2 buys from its own suppliers: a stack that posts receipts without
    their site (while its adjustments keep theirs) books DC2's deliveries at DC1."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "inventory_drift", "idle", "siteless-receipts")
    assert "site_stock_reconciled" in failed(outcome)


async def test_shipments_planned_at_whole_kilos_are_caught(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "carrier_capacity_cap", "idle", "whole-kilos")
    assert "shipment_weighed_as_packed" in failed(outcome)


async def test_events_refused_for_a_field_the_first_sample_lacked_are_caught(tmp_path, monkeypatch):
    """vendor_schema_drift's vendors add fields to order.released (from 10:00) and to half
    the order.shipped events: a stack whose event models forbid unknown fields refuses them,
    and the orders behind them are lost."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "vendor_schema_drift", "idle", "sample-shaped")
    assert "orders_terminal" in failed(outcome)


async def test_a_signature_checked_over_the_event_serialised_again_is_caught(tmp_path, monkeypatch):
    """vendor_schema_drift's carrier writes half its tracking events indented: a stack that
    checks the signature over the parsed event written out again (as ``JSON.stringify(req.body)``
    does) computes it over other bytes and refuses them; their scans never reach the ERP."""
    monkeypatch.chdir(ROOT)
    outcome = await play(tmp_path, "vendor_schema_drift", "idle", "reserialised")
    assert "latest_scan_in_erp" in failed(outcome)
