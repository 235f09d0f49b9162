"""The business-invariant oracles: clean on a correct day, and each one trips, naming the
entity with expected and actual figures, on a minimally corrupted copy of the snapshots."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from harness import oracles
from harness.operator import DeadCount
from tests.support import judge_one as judge
from tests.support import only_finding, snapshots_of

README = Path(__file__).resolve().parent.parent / "README.md"

DAY = """
seed: 3
demand: {orders: 40, cancel_rate: 0.2}
warehouse: {short_pick_rate: 0.2}
carrier: {exception_rate: 0.3}
"""


@pytest.fixture(scope="module")
def clean() -> dict[str, dict[str, Any]]:
    return snapshots_of(DAY)


@pytest.fixture
def snaps(clean):
    return copy.deepcopy(clean)


def orders(snaps, status: str) -> list[dict[str, Any]]:
    return [o for o in snaps["erp"]["orders"] if o["status"] == status]


def entry(system: str, seq: int, ref: str | None, corr: str | None, **extra: Any) -> dict:
    return {
        "seq": seq,
        "system": system,
        "direction": "in",
        "method": "POST",
        "path": "/x",
        "status": 200,
        "correlation_id": corr,
        "ref": ref,
        "event_type": None,
        "fault": None,
    } | extra


def order_journals(snaps, order_id: str, corr: str | None) -> dict[str, list[dict]]:
    """What a correct stack's calls about one order look like: refs by order, FO, shipment."""
    fo = next(o for o in snaps["wms"]["orders"].values() if o["order_ref"] == order_id)
    sh = next(s for s in snaps["tms"]["shipments"].values() if s["order_ref"] == order_id)
    return {
        "erp": [entry("erp", 1, order_id, corr), entry("erp", 2, "SKU-0001", None)],
        "wms": [entry("wms", 1, order_id, corr), entry("wms", 2, fo["id"], corr)],
        "tms": [entry("tms", 1, order_id, corr)],
        "carrier": [entry("carrier", 1, sh["id"], corr)],
    }


# -- a clean day -------------------------------------------------------------------------------
def test_every_oracle_passes_on_a_clean_day_and_has_something_to_judge(clean):
    results = {r.name: r for r in oracles.judge(oracles.SystemsView(clean))}
    assert [n for n, r in results.items() if not r.passed] == []
    for name in (
        "status_never_regresses",
        "short_becomes_backorder",
        "cancelled_never_ships",
        "one_paid_label_per_shipment",
        "freight_accrued_once",
    ):
        assert results[name].checked > 0, name
    # without journals (an in-process day) the journal oracles have nothing to judge
    assert results["correlation_id_kept"].checked == 0
    assert results["forged_events_refused"].checked == 0
    assert results["garbled_events_refused"].checked == 0


def test_only_the_journal_oracles_ask_for_journals():
    needing = {name for name, o in oracles.REGISTRY.items() if o.needs_journals}
    assert needing == {
        "correlation_id_kept",
        "forged_events_refused",
        "garbled_events_refused",
        "goods_issue_posted_once",
        "retry_after_respected",
        "return_disposition_posted_once",
    }


# -- status_never_regresses --------------------------------------------------------------------
def test_a_late_scan_posted_after_delivery_is_a_regression(snaps):
    order = orders(snaps, "delivered")[0]
    order["tracking_history"].append({"status": "in_transit"})
    finding = only_finding(judge("status_never_regresses", snaps))
    assert finding.entity == order["id"]
    assert (finding.expected, finding.actual) == ("delivered or later", "in_transit")


@pytest.mark.parametrize(
    ("history", "expected", "actual"),
    [
        (["picked_up", "in_transit", "exception", "in_transit", "delivered"], None, None),
        (["picked_up", "out_for_delivery", "exception", "in_transit", "delivered"], None, None),
        (["picked_up", "in_transit", "in_transit", "delivered", "delivered"], None, None),
        (["in_transit", "picked_up"], "in_transit or later", "picked_up"),
        (["picked_up", "exception", "in_transit", "picked_up"], "in_transit or later", "picked_up"),
        (["in_transit", "delivered", "exception"], "nothing after delivered", "exception"),
    ],
)
def test_an_exception_may_come_and_go_but_milestones_never_go_back(
    snaps, history, expected, actual
):
    order = orders(snaps, "delivered")[0]
    order["tracking_history"] = [{"status": s} for s in history]
    result = judge("status_never_regresses", snaps)
    if expected is None:
        assert result.passed, result.findings
    else:
        finding = only_finding(result)
        assert (finding.entity, finding.expected, finding.actual) == (order["id"], expected, actual)


# -- short_becomes_backorder -------------------------------------------------------------------
def test_a_short_pick_without_a_backorder_is_caught(snaps):
    fo = next(
        fo
        for fo in snaps["wms"]["orders"].values()
        if fo["status"] == "shipped" and any(x["short_qty"] for x in fo["lines"])
    )
    line = next(x for x in fo["lines"] if x["short_qty"])
    ref = fo["order_ref"]
    snaps["erp"]["backorders"] = [b for b in snaps["erp"]["backorders"] if b["order_id"] != ref]
    result = judge("short_becomes_backorder", snaps)
    finding = next(
        f for f in result.findings if f.entity == f"{ref} line {line['line']} ({line['sku']})"
    )
    assert (finding.expected, finding.actual) == (line["short_qty"], 0)
    assert fo["id"] in finding.message


def test_nothing_is_owed_on_a_short_closed_order_the_customer_cancelled(snaps):
    fo = next(f for f in snaps["wms"]["orders"].values() if f["status"] != "cancelled")
    fo["status"] = "short_closed"
    fo["lines"][0]["short_qty"] = fo["lines"][0]["qty"]
    order = next(o for o in snaps["erp"]["orders"] if o["id"] == fo["order_ref"])
    snaps["erp"]["backorders"] = [
        b for b in snaps["erp"]["backorders"] if b["order_id"] != order["id"]
    ]
    assert not judge("short_becomes_backorder", snaps).passed  # open: the short is owed
    order["status"] = "cancelled"
    assert judge("short_becomes_backorder", snaps).passed  # cancelled: nothing is owed


# -- cancelled_never_ships ---------------------------------------------------------------------
def test_a_cancelled_order_that_ships_is_caught(snaps):
    fo = next(fo for fo in snaps["wms"]["orders"].values() if fo["status"] == "cancelled")
    fo["status"] = "shipped"
    finding = only_finding(judge("cancelled_never_ships", snaps))
    assert finding.entity == fo["order_ref"]
    assert (finding.expected, finding.actual) == ([], [f"WMS order {fo['id']} shipped"])


def test_a_parcel_picked_up_for_a_cancelled_order_is_caught(snaps):
    cancelled = orders(snaps, "cancelled")[0]
    label = copy.deepcopy(next(iter(snaps["carrier"]["labels"].values())))
    shipment = snaps["tms"]["shipments"][label["shipment_ref"]]
    shipment["order_ref"] = cancelled["id"]  # the parcel now belongs to the cancelled order
    label["status"] = "in_transit"
    label["events"] = [{"status": "picked_up", "sequence": 1}]
    snaps["carrier"]["labels"] = {label["id"]: label}
    finding = only_finding(judge("cancelled_never_ships", snaps))
    assert finding.entity == cancelled["id"]
    assert finding.actual == [f"parcel {label['tracking_number']} picked up"]


# -- one_paid_label_per_shipment ---------------------------------------------------------------
def second_label(snaps) -> tuple[dict, dict]:
    first = next(iter(snaps["carrier"]["labels"].values()))
    second = copy.deepcopy(first) | {"id": "LB-999999", "tracking_number": "PC999999999"}
    snaps["carrier"]["labels"][second["id"]] = second
    return first, second


def test_a_second_paid_label_for_an_order_is_caught(snaps):
    first, _ = second_label(snaps)
    finding = only_finding(judge("one_paid_label_per_shipment", snaps))
    assert finding.entity == snaps["tms"]["shipments"][first["shipment_ref"]]["order_ref"]
    assert (finding.expected, finding.actual) == (1, 2)
    assert first["id"] in finding.message and "LB-999999" in finding.message


def test_a_voided_spare_label_is_no_second_charge(snaps):
    _, second = second_label(snaps)
    second["status"] = "voided"
    assert judge("one_paid_label_per_shipment", snaps).passed


# -- freight_accrued_once ----------------------------------------------------------------------
def test_a_duplicate_accrual_is_caught(snaps):
    first = snaps["erp"]["accruals"][0]
    snaps["erp"]["accruals"].append(first | {"id": "FA-999999"})
    finding = only_finding(judge("freight_accrued_once", snaps))
    assert finding.entity == first["order_id"]
    assert first["shipment_id"] in finding.message
    assert (finding.expected, finding.actual) == (1, 2)
    assert "FA-999999" in finding.message


def test_a_missing_or_wrong_accrual_is_caught(snaps):
    dropped, wrong = snaps["erp"]["accruals"][:2]
    snaps["erp"]["accruals"].remove(dropped)
    settled = snaps["tms"]["shipments"][wrong["shipment_id"]]["rate"]
    wrong["amount"] = {"amount": "0.01", "currency": settled["currency"]}
    findings = {f.entity: f for f in judge("freight_accrued_once", snaps).findings}
    assert set(findings) == {dropped["order_id"], wrong["order_id"]}
    assert (findings[dropped["order_id"]].expected, findings[dropped["order_id"]].actual) == (1, 0)
    assert findings[wrong["order_id"]].expected == settled
    assert findings[wrong["order_id"]].actual == wrong["amount"]


def test_an_amount_written_differently_is_the_same_amount(snaps):
    accrual = snaps["erp"]["accruals"][0]
    rate = snaps["tms"]["shipments"][accrual["shipment_id"]]["rate"]
    accrual["amount"] = {"amount": rate["amount"] + "0", "currency": rate["currency"]}
    assert judge("freight_accrued_once", snaps).passed


# -- correlation_id_kept -----------------------------------------------------------------------
def test_one_correlation_id_per_order_passes(snaps):
    order = orders(snaps, "delivered")[0]["id"]
    result = judge("correlation_id_kept", snaps, order_journals(snaps, order, "corr-1"))
    assert result.passed and result.checked == 1  # the SKU call concerns no order


def test_a_call_with_another_correlation_id_is_caught(snaps):
    order = orders(snaps, "delivered")[0]["id"]
    journals = order_journals(snaps, order, "corr-1")
    journals["carrier"][0]["correlation_id"] = "corr-2"  # reached via shipment -> order
    finding = only_finding(judge("correlation_id_kept", snaps, journals))
    assert finding.entity == order
    assert (finding.expected, finding.actual) == ("corr-1", ["corr-1", "corr-2"])
    assert "carrier POST /x #1" in finding.message


def test_a_call_without_a_correlation_id_is_caught(snaps):
    order = orders(snaps, "delivered")[0]["id"]
    journals = order_journals(snaps, order, "corr-1")
    journals["wms"][1]["correlation_id"] = None  # reached via fulfilment order -> order
    finding = only_finding(judge("correlation_id_kept", snaps, journals))
    assert finding.entity == order
    assert (finding.expected, finding.actual) == (5, 4)


# -- forged_events_refused ---------------------------------------------------------------------
def forged(snaps, status: int) -> dict[str, list[dict]]:
    order = orders(snaps, "delivered")[0]["id"]
    genuine = entry("erp", 1, order, "c", direction="out", event_type="order.released")
    fake = genuine | {"seq": 2, "fault": "forged", "status": status}
    return {"erp": [genuine, fake]}


def test_a_forged_delivery_answered_401_passes(snaps):
    result = judge("forged_events_refused", snaps, forged(snaps, 401))
    assert result.passed and result.checked == 1


def test_a_forged_delivery_acted_on_is_caught(snaps):
    journals = forged(snaps, 202)
    finding = only_finding(judge("forged_events_refused", snaps, journals))
    assert finding.entity == journals["erp"][1]["ref"]
    assert (finding.expected, finding.actual) == ([401, 403], 202)
    assert "order.released" in finding.message


def test_no_forged_deliveries_is_nothing_to_judge(snaps):
    order = orders(snaps, "delivered")[0]["id"]
    result = judge("forged_events_refused", snaps, order_journals(snaps, order, "c"))
    assert result.passed and result.checked == 0


# -- garbled_events_refused --------------------------------------------------------------------
def garbled(snaps, status: int | None, form: str = "truncated") -> dict[str, list[dict]]:
    order = orders(snaps, "delivered")[0]["id"]
    genuine = entry("wms", 1, order, "c", direction="out", event_type="order.shipped")
    copy = genuine | {"seq": 2, "fault": f"garbled:{form}", "status": status}
    return {"wms": [copy, genuine]}


@pytest.mark.parametrize("status", [400, 401, 413])
def test_a_garbled_delivery_refused_with_a_4xx_passes(snaps, status):
    result = judge("garbled_events_refused", snaps, garbled(snaps, status))
    assert result.passed and result.checked == 1


@pytest.mark.parametrize(("status", "shown"), [(202, 202), (500, 500), (None, None)])
def test_a_garbled_delivery_acknowledged_or_crashing_the_receiver_is_caught(snaps, status, shown):
    journals = garbled(snaps, status, form="no_id")
    finding = only_finding(judge("garbled_events_refused", snaps, journals))
    assert finding.entity == journals["wms"][0]["ref"]
    assert (finding.expected, finding.actual) == ("4xx", shown)
    assert "garbled:no_id wms order.shipped" in finding.message
    assert finding.message.endswith(f"answered {status or 'nothing'}")


def test_no_garbled_deliveries_is_nothing_to_judge(snaps):
    journals = forged(snaps, 202)  # another probe's label is not this oracle's
    result = judge("garbled_events_refused", snaps, journals)
    assert result.passed and result.checked == 0


# -- the guard ---------------------------------------------------------------------------------
def test_every_oracle_says_what_it_protects_and_is_in_the_readme():
    text = README.read_text()
    table = text[text.index("### Oracles") :]
    table = table[: table.index("\n\n", table.index("| oracle |"))]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M))
    for name, rule in oracles.REGISTRY.items():
        assert rule.protects.strip(), f"{name} says nothing about what it protects"
    assert listed == set(oracles.REGISTRY)


# -- dead letters ------------------------------------------------------------------------------
def _dead_letter_result(snaps, dead_letters):
    view = oracles.SystemsView(snaps, None, dead_letters)
    (result,) = oracles.judge(view, ["dead_letters_only_for_undone_work"])
    return result


def test_a_dead_letter_left_on_a_day_whose_work_is_all_done_is_caught(snaps):
    order = orders(snaps, "delivered")[0]["id"]
    letter = {"id": 7, "kind": "attach_label", "entity": order, "last_status": 409}
    finding = only_finding(_dead_letter_result(snaps, [letter]))
    assert finding.entity == order
    assert "dead letter 7" in finding.message and "last_status 409" in finding.message


def test_no_dead_letter_passes_and_a_stack_that_lists_none_is_not_judged(snaps):
    assert _dead_letter_result(snaps, []).passed
    unlisted = _dead_letter_result(snaps, None)
    assert unlisted.passed and unlisted.checked == 0


def test_a_dead_letter_is_excused_while_an_order_is_still_undone(snaps):
    stuck = orders(snaps, "delivered")[0]
    stuck["status"] = "released"  # the work the dead letter stands for never happened
    result = _dead_letter_result(snaps, [{"id": 3}])
    assert result.passed and result.checked == 1
    stuck["status"] = "delivered"
    finding = only_finding(_dead_letter_result(snaps, [{"id": 3}]))
    assert finding.entity == "dead letter 3"


# -- dead_letter_count_agrees ------------------------------------------------------------------
def _count_result(snaps, looks):
    view = oracles.SystemsView(snaps, None, [], looks)
    (result,) = oracles.judge(view, ["dead_letter_count_agrees"])
    return result


def test_a_probe_count_that_disagrees_with_the_listing_is_caught(snaps):
    looks = [DeadCount("on-call at 19:00", 2, 2), DeadCount("the end of the day", 0, 1)]
    finding = only_finding(_count_result(snaps, looks))
    assert finding.entity == "dead letters at the end of the day"
    assert (finding.expected, finding.actual) == (0, 1)


def test_counts_that_agree_pass_and_no_count_is_not_judged(snaps):
    agreed = _count_result(snaps, [DeadCount("on-call at 19:00", 3, 3)])
    assert agreed.passed and agreed.checked == 1
    unread = _count_result(snaps, [])
    assert unread.passed and unread.checked == 0
