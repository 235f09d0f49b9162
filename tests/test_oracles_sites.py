"""The sites oracles: clean on a day with two sites and transfers, and each trips, naming the
order, site or transfer with expected and actual figures, on a minimally corrupted copy of that
day's snapshots."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from harness import oracles
from tests.support import judge_one as judge
from tests.support import only_finding, snapshots_of

SITES = (
    "order_fulfilled_at_assigned_site",
    "site_stock_reconciled",
    "transfer_issued_as_shipped",
    "transfer_received_once",
)
DAY = """
seed: 7
horizon_days: 3
demand: {orders: 40, open: "08:00", close: "12:00"}
catalogue: {skus: 6, initial_stock: 60}
sites:
  others:
    - {name: DC2, share: 0.4, initial_stock: 0.25, pickers: 2, packers: 1, cutoff: "16:00"}
  transfers: {reorder_at: 0.6, order_up_to: 1.0, ship_after_minutes: 60, transit_hours: 3}
"""


@pytest.fixture(scope="module")
def clean() -> dict[str, dict[str, Any]]:
    return snapshots_of(DAY)


@pytest.fixture
def snaps(clean):
    return copy.deepcopy(clean)


def fo_at(snaps, site: str) -> dict[str, Any]:
    """A WMS fulfilment order worked at ``site``."""
    for fo in snaps["wms"]["orders"].values():
        if fo.get("site") == site:
            return fo
    raise AssertionError(f"the day has no order at {site}")


def received(snaps) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A WMS transfer received at DC2, with its ERP goods issue and goods receipt."""
    [transfer, *_] = [t for t in snaps["wms"]["transfers"] if t["status"] == "received"]
    [issue] = [p for p in snaps["erp"]["transfer_issues"] if p["reference"] == transfer["id"]]
    [receipt] = [p for p in snaps["erp"]["transfer_receipts"] if p["reference"] == transfer["id"]]
    return transfer, issue, receipt


def test_a_day_with_two_sites_passes_every_sites_oracle_with_something_to_judge(clean):
    results = {r.name: r for r in oracles.judge(oracles.SystemsView(clean))}
    assert [n for n, r in results.items() if not r.passed] == []
    for name in SITES:
        assert results[name].checked > 5, name
    orders_at = {fo.get("site") for fo in clean["wms"]["orders"].values()}
    assert orders_at == {"DC1", "DC2"}


def test_a_day_with_one_site_has_no_transfer_to_judge():
    one_site = snapshots_of("seed: 7\nhorizon_days: 2\ndemand: {orders: 5}\n")
    results = {r.name: r for r in oracles.judge(oracles.SystemsView(one_site), list(SITES))}
    assert all(r.passed for r in results.values())
    assert results["order_fulfilled_at_assigned_site"].checked == 5
    assert results["transfer_issued_as_shipped"].checked == 0
    assert results["transfer_received_once"].checked == 0


def test_an_order_worked_at_another_site_than_assigned_is_caught(snaps):
    fo = fo_at(snaps, "DC2")
    fo["site"] = "DC1"
    finding = only_finding(judge("order_fulfilled_at_assigned_site", snaps))
    assert finding.entity == fo["order_ref"]
    assert (finding.expected, finding.actual) == ("DC2", "DC1")
    assert fo["id"] in finding.message


def test_an_order_with_no_site_is_at_the_default_site(snaps):
    fo = fo_at(snaps, "DC1")
    del fo["site"]
    assert judge("order_fulfilled_at_assigned_site", snaps).passed
    fo = fo_at(snaps, "DC2")
    del fo["site"]  # the WMS order named no site: the default one, not the assigned DC2
    finding = only_finding(judge("order_fulfilled_at_assigned_site", snaps))
    assert (finding.expected, finding.actual) == ("DC2", "DC1")


def test_books_drifting_from_the_shelves_of_the_second_site_are_caught(snaps):
    sku = sorted(snaps["erp"]["sites"]["DC2"])[0]
    shelf = snaps["wms"]["sites"]["DC2"][sku]
    snaps["erp"]["sites"]["DC2"][sku] = shelf + 7
    finding = only_finding(judge("site_stock_reconciled", snaps))
    assert finding.entity == f"DC2/{sku}"
    assert (finding.expected, finding.actual) == (shelf, shelf + 7)


def test_the_default_site_is_left_to_stock_reconciled(snaps):
    sku = sorted(snaps["erp"]["sites"]["DC1"])[0]
    snaps["erp"]["sites"]["DC1"][sku] += 3
    result = judge("site_stock_reconciled", snaps)
    assert result.passed and result.checked == len(snaps["erp"]["sites"]["DC2"])


def test_a_shipped_transfer_never_issued_is_caught(snaps):
    transfer, issue, _ = received(snaps)
    snaps["erp"]["transfer_issues"].remove(issue)
    finding = only_finding(judge("transfer_issued_as_shipped", snaps))
    assert finding.entity == transfer["transfer_ref"]
    assert "0 goods issue(s)" in finding.message
    assert finding.actual == [] and sum(finding.expected[0].values()) > 0


def test_a_transfer_issued_twice_or_for_other_qty_is_caught(snaps):
    transfer, issue, _ = received(snaps)
    snaps["erp"]["transfer_issues"].append({**issue, "id": "TI-999999"})
    finding = only_finding(judge("transfer_issued_as_shipped", snaps))
    assert "2 goods issue(s)" in finding.message
    snaps["erp"]["transfer_issues"].pop()
    issue["lines"][0]["qty"] += 1
    finding = only_finding(judge("transfer_issued_as_shipped", snaps))
    assert finding.entity == transfer["transfer_ref"]
    assert finding.expected != finding.actual


def test_a_transfer_not_shipped_yet_needs_no_issue(snaps):
    transfer, issue, receipt = received(snaps)
    transfer["status"] = "accepted"
    snaps["erp"]["transfer_issues"].remove(issue)
    snaps["erp"]["transfer_receipts"].remove(receipt)
    assert judge("transfer_issued_as_shipped", snaps).passed
    assert judge("transfer_received_once", snaps).passed


def test_a_transfer_received_twice_is_caught(snaps):
    transfer, _, receipt = received(snaps)
    snaps["erp"]["transfer_receipts"].append({**receipt, "id": "TR-999999"})
    finding = only_finding(judge("transfer_received_once", snaps))
    assert finding.entity == transfer["transfer_ref"]
    assert "2 receipt(s)" in finding.message and "TR-999999" in finding.message
    assert len(finding.actual) == 2 and finding.actual[0] == finding.actual[1]


def test_a_receipt_for_other_qty_than_arrived_is_caught(snaps):
    transfer, _, receipt = received(snaps)
    receipt["lines"][0]["qty"] -= 1
    finding = only_finding(judge("transfer_received_once", snaps))
    assert finding.entity == transfer["transfer_ref"]
    assert finding.expected != finding.actual


def test_a_receipt_of_a_transfer_no_site_received_is_caught(snaps):
    _, _, receipt = received(snaps)
    snaps["erp"]["transfer_receipts"].append(
        {**receipt, "id": "TR-999999", "reference": "WT-999999"}
    )
    finding = only_finding(judge("transfer_received_once", snaps))
    assert finding.entity == receipt["transfer_id"]
    assert "TR-999999" in finding.message and "WT-999999" in finding.message
    assert finding.expected is None
