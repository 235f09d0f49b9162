"""The returns oracles: clean on a day with returns, and each trips, naming the order with
expected and actual figures, on a minimally corrupted copy of that day's snapshots."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from harness import oracles
from tests.support import judge_one as judge
from tests.support import only_finding, snapshots_of
from tests.test_oracles_invariants import entry

RETURNS = ("return_credited_once", "return_restocked_good_only", "no_credit_without_receipt")
DAY = """
seed: 7
horizon_days: 8
demand: {orders: 30}
returns: {return_rate: 0.5, conditions: {restock: 1, damaged: 1, scrap: 1}}
"""


@pytest.fixture(scope="module")
def clean() -> dict[str, dict[str, Any]]:
    return snapshots_of(DAY)


@pytest.fixture
def snaps(clean):
    return copy.deepcopy(clean)


def mixed_memo(snaps) -> tuple[dict[str, Any], dict[str, Any]]:
    """A credit memo whose receipt holds units graded other than restock, and that receipt."""
    receipts = {r["receipt_id"]: r for r in snaps["wms"]["return_receipts"]}
    for memo in snaps["erp"]["credit_memos"]:
        receipt = receipts[memo["receipt_id"]]
        if any(x["condition"] != "restock" for x in receipt["lines"]):
            return memo, receipt
    raise AssertionError("the day has no return with a damaged or scrapped unit")


def test_a_day_with_returns_passes_every_returns_oracle_with_something_to_judge(clean):
    results = {r.name: r for r in oracles.judge(oracles.SystemsView(clean))}
    assert [n for n, r in results.items() if not r.passed] == []
    for name in (*RETURNS, "returns_reconciled"):
        assert results[name].checked > 5, name


def test_a_second_credit_memo_for_one_receipt_is_caught(snaps):
    memo, receipt = mixed_memo(snaps)
    snaps["erp"]["credit_memos"].append({**memo, "id": "CM-999999"})
    finding = only_finding(judge("return_credited_once", snaps))
    assert finding.entity == receipt["order_ref"]
    assert "credited 2 times" in finding.message and "CM-999999" in finding.message


def test_a_credit_for_other_qty_than_came_back_is_caught(snaps):
    memo, receipt = mixed_memo(snaps)
    memo["lines"][0]["qty"] += 1
    finding = only_finding(judge("return_credited_once", snaps))
    assert finding.entity == receipt["order_ref"]
    assert finding.expected != finding.actual


def test_damaged_units_restocked_in_the_erp_are_caught(snaps):
    memo, receipt = mixed_memo(snaps)
    for line in memo["lines"]:
        line["restock_qty"] = line["qty"]
    finding = only_finding(judge("return_restocked_good_only", snaps))
    assert finding.entity == receipt["order_ref"]
    good = sum(x["qty"] for x in receipt["lines"] if x["condition"] == "restock")
    assert sum(finding.expected.values()) == good
    assert sum(finding.actual.values()) == sum(line["qty"] for line in memo["lines"])


def test_a_credit_without_a_receipt_is_caught(snaps):
    memo, _ = mixed_memo(snaps)
    snaps["erp"]["credit_memos"].append({**memo, "id": "CM-999999", "receipt_id": "RR-999999"})
    finding = only_finding(judge("no_credit_without_receipt", snaps))
    assert finding.entity == memo["order_id"]
    assert "RR-999999" in finding.message and "never received" in finding.message


def test_a_credit_against_another_rma_is_caught(snaps):
    memo, receipt = mixed_memo(snaps)
    memo["rma_id"] = "RMA-999999"
    finding = only_finding(judge("no_credit_without_receipt", snaps))
    assert (finding.expected, finding.actual) == (receipt["rma_id"], "RMA-999999")


def test_a_return_left_without_its_credit_memo_is_caught(snaps):
    memo, receipt = mixed_memo(snaps)
    snaps["erp"]["credit_memos"].remove(memo)
    finding = only_finding(judge("returns_reconciled", snaps))
    assert finding.entity == receipt["order_ref"]
    assert receipt["receipt_id"] in finding.message and "never credited" in finding.message
    assert judge("return_credited_once", snaps).passed  # pending is not a double credit


def disposition(seq: int, error: str | None, status: int) -> dict[str, Any]:
    return entry(
        "erp",
        seq,
        "SO-000001",
        "c",
        path="/returns/RMA-000001/disposition",
        status=status,
        error=error,
    )


def test_a_second_disposition_refused_by_the_erp_is_caught(snaps):
    journals = {"erp": [disposition(1, None, 201), disposition(2, "already_disposed", 409)]}
    result = judge("return_disposition_posted_once", snaps, journals)
    finding = only_finding(result)
    assert finding.entity == "SO-000001"  # the order the journal entry names
    assert "#2" in finding.message and (finding.expected, finding.actual) == (1, 2)
    assert result.checked == 2


def test_one_disposition_per_receipt_passes(snaps):
    journals = {"erp": [disposition(1, None, 201)]}
    result = judge("return_disposition_posted_once", snaps, journals)
    assert result.passed and result.checked == 1
