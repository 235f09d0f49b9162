"""The master-data oracles and the converted lineage rows: clean on a day with case items,
launches and edits, and each trips, naming the SKU or order, on a minimally corrupted copy."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from harness import oracles
from tests.support import judge_one as judge
from tests.support import only_finding, snapshots_of

DAY = """
seed: 11
demand: {orders: 30, open: "08:00", close: "12:00"}
catalogue: {skus: 10, initial_stock: 400}
master_data: {case_share: 0.4, new_items_per_day: 3, orders_per_new_item: 2, changes_per_day: 4}
"""


@pytest.fixture(scope="module")
def clean() -> dict[str, dict[str, Any]]:
    return snapshots_of(DAY)


@pytest.fixture
def snaps(clean):
    return copy.deepcopy(clean)


def new_item_order(snaps) -> dict[str, Any]:
    return next(o for o in snaps["erp"]["orders"] if o["lines"][0]["sku"].startswith("NEW-"))


def case_line(snaps) -> tuple[dict[str, Any], dict[str, Any]]:
    for order in snaps["erp"]["orders"]:
        for line in order["lines"]:
            if line["uom"] == "CS" and order["status"] != "cancelled":
                return order, line
    raise AssertionError("the day has no case line")


def test_a_master_data_day_passes_every_oracle_with_something_to_judge(clean):
    results = {r.name: r for r in oracles.judge(oracles.SystemsView(clean))}
    assert [n for n, r in results.items() if not r.passed] == []
    assert results["item_master_synced"].checked == 13
    assert results["no_order_blocked_by_master_data"].checked == 6


def test_an_item_change_that_never_reached_the_wms_is_caught(snaps):
    item = next(i for i in snaps["erp"]["items"] if i["version"] > 1)
    snaps["wms"]["items"][item["sku"]]["weight_kg"] += 1  # the WMS kept an older weight
    snaps["wms"]["items"][item["sku"]]["description"] = "stale"
    finding = only_finding(judge("item_master_synced", snaps))
    assert finding.entity == item["sku"]
    assert "description, weight_kg" in finding.message


def test_a_new_item_missing_from_the_wms_is_caught_but_an_inactive_one_is_not_judged(snaps):
    sku = new_item_order(snaps)["lines"][0]["sku"]
    del snaps["wms"]["items"][sku]
    finding = only_finding(judge("item_master_synced", snaps))
    assert (finding.entity, finding.message) == (sku, f"item {sku} (version 1) is not in the WMS")
    next(i for i in snaps["erp"]["items"] if i["sku"] == sku)["active"] = False
    assert judge("item_master_synced", snaps).passed


def test_an_order_for_a_new_item_that_never_reached_the_wms_is_caught(snaps):
    order = new_item_order(snaps)
    snaps["wms"]["orders"] = {
        k: fo for k, fo in snaps["wms"]["orders"].items() if fo["order_ref"] != order["id"]
    }
    finding = only_finding(judge("no_order_blocked_by_master_data", snaps))
    assert finding.entity == order["id"] and "never reached the WMS" in finding.message


def test_an_order_held_three_hours_for_its_item_is_caught(snaps):
    order = new_item_order(snaps)
    fo = next(f for f in snaps["wms"]["orders"].values() if f["order_ref"] == order["id"])
    hour, rest = int(fo["created_at"][11:13]), fo["created_at"][13:]
    fo["created_at"] = f"{fo['created_at'][:11]}{hour + 3:02d}{rest}"
    finding = only_finding(judge("no_order_blocked_by_master_data", snaps))
    assert finding.entity == order["id"] and finding.actual > 3 * 3600 - 60


def test_a_case_line_sent_to_the_wms_as_cases_is_caught_by_its_lineage_row(snaps):
    order, line = case_line(snaps)
    fo = next(f for f in snaps["wms"]["orders"].values() if f["order_ref"] == order["id"])
    wms_line = next(x for x in fo["lines"] if x["line"] == line["line"])
    wms_line["qty"] = line["qty"]  # cases, not eaches
    finding = only_finding(judge("order_lines_reach_wms", snaps))
    assert finding.entity == f"{order['id']} line {line['line']}"


def test_eaches_posted_as_cases_are_caught_by_the_goods_issue_row(snaps):
    order, line = case_line(snaps)
    gi = next(g for g in snaps["erp"]["goods_issues"] if g["order_id"] == order["id"])
    issued = next(x for x in gi["lines"] if x["line"] == line["line"])
    item = next(i for i in snaps["erp"]["items"] if i["sku"] == line["sku"])
    issued["qty"] *= item["each_per_case"]
    finding = only_finding(judge("goods_issue_matches_shipment", snaps))
    assert finding.entity == order["id"]
