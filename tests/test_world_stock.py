"""Stock: the shelves know the truth, the WMS learns it from pickers, counters and receipts,
and the ERP's books follow through the stack."""

from __future__ import annotations

from harness import scenario
from harness.world.integrator import play

HOUR = 3_600


def adjustments(model, sku: str) -> list[tuple[int, str]]:
    return [(a["delta"], a["reason"]) for a in model.adjustments if a["sku"] == sku]


def test_a_cycle_count_turns_shrink_into_an_adjustment_the_erp_books():
    day = scenario.parse("seed: 1\ndemand: {orders: 100}\nstock: {cycle_count: {share_per_day: 0}}")
    played = play(day, until=4 * HOUR)
    shelves, wms, erp = played.world.shelves, played.models["wms"], played.models["erp"]
    shelves.good["SKU-00007"] -= 7  # seven units walk out of the building overnight
    assert wms.stock["SKU-00007"] - shelves.good["SKU-00007"] == 7
    shelves.count("SKU-00007")
    assert adjustments(wms, "SKU-00007") == [(-7, "cycle_count")]
    played.env.run()
    booked = [a for a in erp.adjustments.values() if a.sku == "SKU-00007"]
    assert [(a.delta, a.reason) for a in booked] == [(-7, "cycle_count")]
    assert booked[0].reference == wms.adjustments[0]["adjustment_id"]
    assert played.failed_oracles() == {}


def test_units_that_turn_up_unbooked_are_counted_as_found_and_the_erp_adds_them():
    """``found_rate``: the one way the books grow without a receipt."""
    day = "seed: 5\ndemand: {orders: 60}\nstock: {shrink_rate: 0.01, found_rate: 0.01}"
    played = play(scenario.parse(day))
    counts = played.world.counts
    assert counts["units_found"] > 0 and counts["adjusted_found"] > 0
    found = [a for a in played.models["wms"].adjustments if a["reason"] == "found"]
    assert found and all(a["delta"] > 0 for a in found)
    booked = {a.reference: a.delta for a in played.models["erp"].adjustments.values()}
    assert all(booked[a["adjustment_id"]] == a["delta"] for a in found)
    assert played.failed_oracles() == {}


def test_purchases_due_close_together_come_on_one_truck_as_one_receipt_of_several_skus():
    text = (
        "seed: 3\ndemand: {orders: 800}\ncatalogue: {skus: 20, initial_stock: 40}\n"
        "stock: {replenishment: {reorder_at: 0.5, order_up_to: 1.5, lead_time_hours: 3%s}}"
    )
    played = play(scenario.parse(text % ", combine_hours: 2"))
    counts, wms, erp = played.world.counts, played.models["wms"], played.models["erp"]
    assert counts["receipts"] < counts["purchases"]
    assert max(len(r["lines"]) for r in wms.receipts) > 1
    alone = play(scenario.parse(text % ""))  # without: every purchase its own receipt
    assert alone.world.counts["receipts"] == alone.world.counts["purchases"]
    assert not played.world.shelves.on_order and not played.world.shelves.due
    erp_receipts = {r.reference: r.lines for r in erp.receipts.values()}
    assert erp_receipts == {r["receipt_id"]: r["lines"] for r in wms.receipts}
    assert played.failed_oracles() == {}


def test_a_site_refilled_by_suppliers_receives_its_purchases_at_its_own_dock():
    """``refilled_by: suppliers``: DC2 buys as DC1 does, no transfers, and the ERP books its
    deliveries at DC2."""
    text = (
        "seed: 18\ndemand: {orders: 60}\ncatalogue: {skus: 20, initial_stock: 400}\n"
        "stock: {replenishment: {reorder_at: 0.5, lead_time_hours: 4}}\n"
        "sites: {others: [{name: DC2, share: 0.4, initial_stock: 0.03, refilled_by: suppliers}]}"
    )
    played = play(scenario.parse(text))
    wms, erp, counts = played.models["wms"], played.models["erp"], played.world.counts
    at_dc2 = [r for r in wms.receipts if r["site"] == "DC2"]
    assert at_dc2 and all(r["receipt_id"].startswith("RC-DC2-") for r in at_dc2)
    assert counts["transfers_released"] == 0
    assert {r.reference for r in erp.receipts.values()} >= {r["receipt_id"] for r in at_dc2}
    assert dict(erp.sites.stock("DC2")) == dict(wms.stock_at("DC2"))  # booked where received
    assert played.failed_oracles() == {}


def test_damage_is_reported_by_the_next_picker_at_that_shelf():
    day = scenario.parse("seed: 1\ndemand: {orders: 150}\nstock: {cycle_count: {share_per_day: 0}}")
    played = play(day, until=1.0)
    shelves, wms = played.world.shelves, played.models["wms"]
    shelves.good["SKU-00001"] -= 3  # a pallet jack clips the most popular shelf
    shelves.damaged["SKU-00001"] += 3
    played.env.run()
    assert adjustments(wms, "SKU-00001") == [(-3, "damage")]
    assert played.failed_oracles() == {}


def test_an_empty_shelf_the_wms_thinks_full_makes_short_picks_until_refilled():
    day = scenario.parse(
        "seed: 2\ndemand: {orders: 300}\ncatalogue: {skus: 10, initial_stock: 400}\n"
        "stock: {cycle_count: {share_per_day: 0}, replenishment: {reorder_at: 0.1, "
        "lead_time_hours: 4}}"
    )
    played = play(day, until=7 * HOUR)
    shelves, wms = played.world.shelves, played.models["wms"]
    shelves.good["SKU-00001"] = 0  # the whole bin was stolen: the WMS still says ~400
    played.env.run()
    assert played.world.counts["shelf_short_lines"] > 0
    shorts = [
        line
        for fo in wms.orders.values()
        for line in fo.lines
        if line.sku == "SKU-00001" and line.short_qty
    ]
    assert shorts
    refills = [r for r in wms.receipts if r["lines"][0]["sku"] == "SKU-00001"]
    assert refills and refills[0]["receipt_id"] == "RC-SKU-00001-001"
    assert played.failed_oracles() == {}


def test_replenishment_receipts_arrive_and_reach_the_erp():
    day = scenario.parse(
        "seed: 3\ndemand: {orders: 800}\ncatalogue: {skus: 20, initial_stock: 40}\n"
        "stock: {replenishment: {reorder_at: 0.5, order_up_to: 1.5, lead_time_hours: 3}}"
    )
    played = play(day)
    wms, erp, shelves = played.models["wms"], played.models["erp"], played.world.shelves
    counts = played.world.counts
    assert counts["purchases"] > 20 and counts["receipts"] == counts["purchases"]
    assert not shelves.on_order
    wms_receipts = {r["receipt_id"]: r["lines"] for r in wms.receipts}
    erp_receipts = {r.reference: r.lines for r in erp.receipts.values()}
    assert wms_receipts == erp_receipts
    for sku, point in shelves.reorder_point.items():
        assert shelves.good[sku] >= point, sku  # every low shelf was refilled
    assert played.failed_oracles() == {}


def test_every_unit_lost_is_either_booked_or_still_waiting_to_be_found():
    day = scenario.parse(
        "seed: 4\ndemand: {orders: 600}\n"
        "stock: {damage_rate: 0.01, shrink_rate: 0.01, cycle_count: {share_per_day: 0.5}}"
    )
    played = play(day)
    wms, shelves, counts = played.models["wms"], played.world.shelves, played.world.counts
    assert counts["units_damaged"] > 50 and counts["units_shrunk"] > 50
    assert counts["adjusted_damage"] and counts["adjusted_cycle_count"]
    booked = -sum(a["delta"] for a in wms.adjustments)
    unfound = sum(wms.stock[s] - shelves.good[s] - shelves.damaged[s] for s in shelves.good)
    assert all(wms.stock[s] >= shelves.good[s] + shelves.damaged[s] for s in shelves.good)
    still_broken = sum(shelves.damaged.values())  # on the shelf, not yet reported
    assert booked + unfound + still_broken == counts["units_damaged"] + counts["units_shrunk"]
    assert played.failed_oracles() == {}


def test_cycle_counts_rotate_through_the_catalogue_most_popular_first():
    day = scenario.parse(
        "seed: 5\ndemand: {orders: 50}\ncatalogue: {skus: 40}\n"
        'stock: {cycle_count: {share_per_day: 0.25, at: "05:00"}}'
    )
    played = play(day, until=5 * HOUR + 1)
    shelves, counted = played.world.shelves, []
    shelves.count = counted.append  # watch the counters instead of letting them count
    played.env.run(until=24 * HOUR + 5 * HOUR + 1)
    assert counted == [f"SKU-{i:05d}" for i in range(11, 21)]  # day 2: the next ten
    played.env.run(until=2 * 24 * HOUR + 5 * HOUR + 1)
    assert counted[10:] == [f"SKU-{i:05d}" for i in range(21, 31)]
    assert played.world.counts["skus_counted"] == 10  # day 1: SKU-00001 .. SKU-00010
