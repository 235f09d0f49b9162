"""The lineage table and the causality rule: clean on a correct day (with something to judge),
and each row trips on a planted violation, naming the order, the field, expected and actual."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from harness import oracles, scenario
from harness.oracles import lineage, lineage_table
from harness.oracles.documents import DOCUMENTS
from harness.world.integrator import play
from tests.support import judge_one as judge
from tests.support import only_finding

DOCS = Path(__file__).resolve().parent.parent / "docs" / "lineage.md"

DAY = """
seed: 3
demand: {orders: 40, cancel_rate: 0.2, address_change_rate: 0.2}
catalogue: {skus: 8, initial_stock: 30}
warehouse: {short_pick_rate: 0.2}
stock:
  damage_rate: 0.01
  cycle_count: {share_per_day: 0.5}
  replenishment: {reorder_at: 0.5, lead_time_hours: 2}
carrier: {exception_rate: 0.3}
sites:
  others: [{name: DC2, share: 0.3, initial_stock: 0.1}]
  transfers: {reorder_at: 0.5}
"""
NEW = [row.name for row in lineage_table.LINEAGE] + ["nothing_posted_before_its_event"]


@pytest.fixture(scope="module")
def clean() -> dict[str, dict[str, Any]]:
    played = play(scenario.parse(DAY))
    return {system: model.snapshot() for system, model in played.models.items()}


@pytest.fixture
def snaps(clean):
    return copy.deepcopy(clean)


def shipped(snaps) -> dict[str, Any]:
    """A shipped WMS order with a paid label, its ERP order, TMS shipment and label."""
    for fo in snaps["wms"]["orders"].values():
        if fo["status"] == "shipped":
            order = next(o for o in snaps["erp"]["orders"] if o["id"] == fo["order_ref"])
            shipment = next(
                s for s in snaps["tms"]["shipments"].values() if s["order_ref"] == order["id"]
            )
            label = next(
                x
                for x in snaps["carrier"]["labels"].values()
                if x["shipment_ref"] == shipment["id"]
            )
            return {"fo": fo, "order": order, "shipment": shipment, "label": label}
    raise AssertionError("the day shipped nothing")


def later(iso: str, seconds: int) -> str:
    from datetime import UTC, datetime, timedelta

    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the clean day -----------------------------------------------------------------------------
def test_every_row_passes_on_a_clean_day_and_has_something_to_judge(clean):
    results = {r.name: r for r in oracles.judge(oracles.SystemsView(clean), NEW)}
    assert {n: r.findings[:1] for n, r in results.items() if not r.passed} == {}
    assert {n for n, r in results.items() if r.checked == 0} == set()


def test_each_document_is_derived_once_and_let_go_after_its_last_read(clean, monkeypatch):
    """Several rows read the same documents: each kind is made once per judging, and none is
    held once the tables are judged (a 10,000-order day's documents all at once cost 100 MB)."""
    made: dict[str, int] = {}
    for name, extract in list(DOCUMENTS.items()):

        def counting(view, name=name, extract=extract):
            made[name] = made.get(name, 0) + 1
            return extract(view)

        monkeypatch.setitem(DOCUMENTS, name, counting)
    view = oracles.SystemsView(clean)
    first = [(r.name, r.checked, len(r.findings)) for r in oracles.judge(view, NEW)]
    assert made and set(made.values()) == {1}
    assert view.documents == {}
    again = [(r.name, r.checked, len(r.findings)) for r in oracles.judge(view, NEW)]
    assert again == first and set(made.values()) == {2}


def test_the_table_names_only_known_documents_and_comparisons():
    for row in lineage_table.LINEAGE:
        assert row.source in DOCUMENTS and row.target in DOCUMENTS, row.name
        assert all(a.how in lineage.COMPARISONS for a in row.agree), row.name
        assert all(name in lineage.ALLOWED for name in row.allowed), row.name
    for row in lineage_table.CAUSALITY:
        assert row.effect in DOCUMENTS and row.cause in DOCUMENTS, row.says
    with pytest.raises(KeyError, match="unknown documents"):
        lineage.register(
            (lineage.Lineage("x", "y", source="erp.nothing", target="wms.order"),), (), "z"
        )
    assert "x" not in oracles.REGISTRY


def test_every_row_is_documented_with_what_it_protects():
    text = DOCS.read_text()
    rows = text[text.index("## Lineage rows") : text.index("### Comparisons")]
    rows += text[text.index("## Causality rows") : text.index("## Documents")]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", rows, flags=re.M))
    assert documented == set(NEW)
    for name in DOCUMENTS:
        assert f"`{name}`" in text, f"document {name} is not described in docs/lineage.md"


# -- a value changed on its way ----------------------------------------------------------------
def test_a_line_dropped_or_changed_on_the_way_to_the_wms_is_caught(snaps):
    fo = next(f for f in snaps["wms"]["orders"].values() if len(f["lines"]) > 1)
    dropped = fo["lines"].pop()
    fo["lines"][0]["qty"] += 1
    findings = judge("order_lines_reach_wms", snaps).findings
    assert len(findings) == 2
    missing, changed = sorted(findings, key=lambda f: "has no" not in f.message)
    assert missing.entity == f"{fo['order_ref']} line {dropped['line']}"
    assert (missing.expected, missing.actual) == (1, 0)
    assert changed.entity == f"{fo['order_ref']} line {fo['lines'][0]['line']}"
    assert changed.actual == changed.expected + 1
    assert "qty" in changed.message


def test_a_line_added_on_the_way_or_never_sent_is_caught(snaps):
    fo = next(f for f in snaps["wms"]["orders"].values() if f["status"] != "cancelled")
    fo["lines"].append({"line": 99, "sku": "SKU-00001", "qty": 1, "picked_qty": 0, "short_qty": 0})
    order = next(o for o in snaps["erp"]["orders"] if o["id"] == fo["order_ref"])
    order["lines"].append({"line": 98, "sku": "SKU-00001", "qty": 1})
    findings = {f.entity: f.message for f in judge("order_lines_reach_wms", snaps).findings}
    extra = f"{fo['order_ref']} line 99 ({fo['id']})"
    assert set(findings) == {f"{fo['order_ref']} line 98", extra}
    assert "has no erp.order_line behind it" in findings[extra]


def test_a_ship_to_not_carried_to_the_wms_is_caught(snaps):
    fo = shipped(snaps)["fo"]
    fo["ship_to"] = fo["ship_to"] | {"city": "Hamburg"}
    finding = only_finding(judge("ship_to_reaches_wms", snaps))
    assert finding.entity.startswith(fo["order_ref"])
    assert finding.actual["city"] == "Hamburg" != finding.expected["city"]


def test_a_label_to_an_old_address_is_caught_and_extra_address_fields_are_fine(snaps):
    label = shipped(snaps)["label"]
    label["ship_to"] = label["ship_to"] | {"phone": "+49 30 1234"}
    assert judge("parcel_goes_to_current_address", snaps).passed
    label["ship_to"]["postal_code"] = "00000"
    finding = only_finding(judge("parcel_goes_to_current_address", snaps))
    assert finding.actual["postal_code"] == "00000"


def test_a_service_level_changed_on_the_way_is_caught_unless_the_tms_declined_express(snaps):
    found = shipped(snaps)
    order, shipment = found["order"], found["shipment"]
    order["service_level"] = "express"
    shipment["service_level"] = "standard"
    finding = only_finding(judge("service_level_planned", snaps))
    assert finding.entity.startswith(order["id"])
    assert (finding.expected, finding.actual) == ("express", "standard")
    declined = {"order_ref": order["id"], "service_level": "express", "reason": "x", "at": "?"}
    snaps["tms"]["declined_tenders"] = [declined]
    assert judge("service_level_planned", snaps).passed
    # another order's declined tender is no licence to downgrade this one
    declined["order_ref"] = "SO-999999"
    assert not judge("service_level_planned", snaps).passed


def test_a_label_bought_for_another_service_than_planned_is_caught(snaps):
    found = shipped(snaps)
    label, shipment = found["label"], found["shipment"]
    label["service"] = "standard" if shipment["service"] == "ground" else "ground"
    result = judge("label_service_as_planned", snaps)
    if shipment["service"] == "ground":
        assert result.passed  # carrier v2 calls ground "standard": the same service
        label["service"] = "express"
        result = judge("label_service_as_planned", snaps)
    finding = only_finding(result)
    assert finding.expected == shipment["service"]


def test_a_label_for_a_shipment_the_tms_never_planned_is_caught(snaps):
    label = shipped(snaps)["label"]
    label["shipment_ref"] = "SH-999999"
    finding = only_finding(judge("label_service_as_planned", snaps))
    assert "has no tms.planned_service" in finding.message


def test_a_goods_issue_with_other_quantities_or_twice_is_caught(snaps):
    ref = shipped(snaps)["order"]["id"]
    issue = next(gi for gi in snaps["erp"]["goods_issues"] if gi["order_id"] == ref)
    issue["lines"][0]["qty"] += 1
    finding = only_finding(judge("goods_issue_matches_shipment", snaps))
    assert finding.entity.startswith(ref)
    assert "qty_by_sku" in finding.message
    snaps["erp"]["goods_issues"].append(issue | {"id": "GI-999999"})
    finding = only_finding(judge("goods_issue_matches_shipment", snaps))
    assert (finding.expected, finding.actual) == (1, 2)


def test_parcel_contents_other_than_shipped_are_caught(snaps):
    label = shipped(snaps)["label"]
    label["packages"][0]["contents"][0]["qty"] += 2
    finding = only_finding(judge("parcel_contents_match_shipment", snaps))
    assert finding.entity.startswith(shipped(snaps)["order"]["id"])
    assert label["id"] in finding.message
    assert finding.actual[label["packages"][0]["contents"][0]["sku"]] >= 3


def test_a_shipment_planned_or_labelled_at_other_weights_is_caught(snaps):
    """The WMS packed the parcel at its weight: the TMS plan and the label carry that weight,
    however the stack writes it (2.5 or "2.50"); rounded to the kilo, or a package left out,
    it does not."""
    found = shipped(snaps)
    packed = found["fo"]["packages"][0]["weight_kg"]
    found["shipment"]["packages"][0]["weight_kg"] = f"{packed:.3f}"  # written otherwise: agrees
    assert judge("shipment_weighed_as_packed", snaps).passed
    found["shipment"]["packages"][0]["weight_kg"] = packed + 1e-12  # float noise: agrees
    assert judge("shipment_weighed_as_packed", snaps).passed
    whole = float(round(packed)) if packed % 1 else packed + 1  # to the kilo: another weight
    found["shipment"]["packages"][0]["weight_kg"] = whole
    finding = only_finding(judge("shipment_weighed_as_packed", snaps))
    assert finding.entity.startswith(found["order"]["id"])
    assert found["shipment"]["id"] in finding.message
    found["label"]["packages"].append(dict(found["label"]["packages"][0]))  # a package too many
    finding = only_finding(judge("parcel_weighed_as_packed", snaps))
    assert found["label"]["id"] in finding.message and len(finding.actual) == 2


def test_a_service_level_lost_on_the_way_to_the_wms_is_caught(snaps):
    found = shipped(snaps)
    order, fo = found["order"], found["fo"]
    order["service_level"], fo["service_level"] = "express", "standard"
    finding = only_finding(judge("service_level_reaches_wms", snaps))
    assert finding.entity.startswith(order["id"])
    assert (finding.expected, finding.actual) == ("express", "standard")
    fo["service_level"] = "express"
    assert judge("service_level_reaches_wms", snaps).passed


def test_a_label_attached_under_another_id_is_caught(snaps):
    found = shipped(snaps)
    attached = found["fo"]["label"]
    assert attached["label_id"] == found["label"]["id"]
    attached["label_id"] = found["shipment"]["id"]  # the TMS shipment taken for the label
    finding = only_finding(judge("label_attached_as_bought", snaps))
    assert finding.entity.startswith(found["order"]["id"])
    assert (finding.expected, finding.actual) == (found["label"]["id"], found["shipment"]["id"])


def test_a_shipment_planned_for_another_wms_order_is_caught(snaps):
    found = shipped(snaps)
    found["shipment"]["fulfilment_order_id"] = found["order"]["id"]  # the ERP's number
    finding = only_finding(judge("shipment_planned_for_its_wms_order", snaps))
    assert finding.entity.startswith(found["order"]["id"])
    assert (finding.expected, finding.actual) == (found["fo"]["id"], found["order"]["id"])


def test_a_goods_issue_naming_another_shipment_or_carrier_is_caught_and_may_name_none(snaps):
    found = shipped(snaps)
    ref, shipment = found["order"]["id"], found["shipment"]
    issue = next(g for g in snaps["erp"]["goods_issues"] if g["order_id"] == ref)
    assert (issue["shipment_id"], issue["carrier"]) == (shipment["id"], shipment["carrier"])
    issue["shipment_id"], issue["carrier"] = None, None  # the contract lets a stack leave them out
    assert judge("goods_issue_names_its_shipment", snaps).passed
    issue["shipment_id"] = found["fo"]["id"]  # the WMS's order taken for the shipment
    finding = only_finding(judge("goods_issue_names_its_shipment", snaps))
    assert finding.entity == ref
    assert (finding.expected, finding.actual) == (shipment["id"], found["fo"]["id"])
    issue["shipment_id"], issue["carrier"] = shipment["id"], "express"
    finding = only_finding(judge("goods_issue_names_its_shipment", snaps))
    assert (finding.expected, finding.actual) == (shipment["carrier"], "express")


def test_a_milestone_posted_under_another_tracking_number_is_caught(snaps):
    found = shipped(snaps)
    posting = found["order"]["tracking_history"][0]
    assert posting["tracking_number"] == found["label"]["tracking_number"]
    posting["tracking_number"] = found["label"]["id"]  # the label's id, not its parcel number
    finding = only_finding(judge("tracking_posted_as_scanned", snaps))
    assert finding.entity.startswith(found["order"]["id"])
    assert (finding.expected, finding.actual) == (
        found["label"]["id"],
        found["label"]["tracking_number"],
    )


def test_a_milestone_posted_with_another_time_or_status_is_caught(snaps):
    order = shipped(snaps)["order"]
    first, second = order["tracking_history"][:2]
    first["occurred_at"] = later(first["occurred_at"], 1)  # the time the stack heard of it
    second["status"] = "delivered_to_neighbour"
    findings = judge("tracking_posted_as_scanned", snaps).findings
    assert len(findings) == 2
    assert all(f.entity.startswith(order["id"]) for f in findings)
    assert "it holds" in findings[0].message  # the scans it does hold, for a near miss


def test_a_milestone_time_written_with_an_offset_is_the_same_instant(snaps):
    order = shipped(snaps)["order"]
    posting = order["tracking_history"][0]
    posting["occurred_at"] = posting["occurred_at"].replace("Z", "+00:00")
    assert judge("tracking_posted_as_scanned", snaps).passed
    posting["occurred_at"] = posting["occurred_at"].replace("+00:00", "")  # no zone: no instant
    assert not judge("tracking_posted_as_scanned", snaps).passed


def test_the_latest_scan_missing_from_the_erp_is_caught(snaps):
    order = shipped(snaps)["order"]
    latest = order["tracking_history"].pop()
    finding = only_finding(judge("latest_scan_in_erp", snaps))
    assert finding.entity.startswith(order["id"])
    assert finding.expected["occurred_at"] == latest["occurred_at"]
    assert "status, occurred_at" in finding.message


def test_the_latest_milestone_is_found_by_instant_when_the_stack_writes_offsets(snaps):
    """A stack may post every scan in the depot's local time (the same instants): the ERP's
    latest is then the latest instant, not the largest text (``15:00+01:00`` < ``14:30Z``)."""
    from datetime import UTC, datetime, timedelta, timezone

    order = shipped(snaps)["order"]
    cet = timezone(timedelta(hours=1))
    for posting in order["tracking_history"]:
        moment = datetime.fromisoformat(posting["occurred_at"].replace("Z", "+00:00"))
        posting["occurred_at"] = moment.astimezone(cet).isoformat(timespec="seconds")
    newest = order["tracking_history"][-1]
    newest["occurred_at"] = (
        datetime.fromisoformat(newest["occurred_at"])
        .astimezone(UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )  # this one in UTC
    before = datetime.fromisoformat(newest["occurred_at"]) - timedelta(minutes=30)
    order["tracking_history"][-2]["occurred_at"] = before.astimezone(cet).isoformat()
    texts = [p["occurred_at"] for p in order["tracking_history"]]
    assert max(texts) != newest["occurred_at"]  # as text, an older one would look latest
    assert judge("latest_scan_in_erp", snaps).passed


def test_an_accrual_in_minor_units_or_without_a_settlement_is_caught(snaps):
    accrual = snaps["erp"]["accruals"][0]
    rate = snaps["tms"]["shipments"][accrual["shipment_id"]]["rate"]
    cents = str(round(float(rate["amount"]) * 100))
    accrual["amount"] = {"amount": cents, "currency": rate["currency"]}
    finding = only_finding(judge("freight_accrued_once", snaps))
    assert finding.actual["amount"] == cents
    accrual["amount"] = dict(rate)
    snaps["tms"]["shipments"][accrual["shipment_id"]]["status"] = "planned"
    finding = only_finding(judge("freight_accrued_once", snaps))
    assert "no tms.settlement behind it" in finding.message


def test_an_adjustment_with_its_sign_flipped_missing_or_invented_is_caught(snaps):
    first, second = snaps["erp"]["adjustments"][:2]
    first["delta"] = -first["delta"]
    snaps["erp"]["adjustments"].remove(second)
    snaps["erp"]["adjustments"].append(first | {"id": "IA-999999", "reference": "ADJ-FORGED"})
    findings = judge("adjustment_posted_once", snaps).findings
    messages = sorted(f.message for f in findings)
    assert len(findings) == 3, messages
    flipped = next(f for f in findings if "delta" in f.message)
    assert flipped.actual == -flipped.expected


def test_an_adjustment_posted_under_another_reason_is_caught(snaps):
    posted = next(a for a in snaps["erp"]["adjustments"] if a["reason"] != "cycle_count")
    was = posted["reason"]
    posted["reason"] = "cycle_count"  # a reason map with a default
    finding = only_finding(judge("adjustment_posted_once", snaps))
    assert (finding.expected, finding.actual) == (was, "cycle_count")
    assert "reason" in finding.message


def test_a_transfer_never_created_changed_or_invented_in_the_wms_is_caught(snaps):
    first, second, *_ = snaps["wms"]["transfers"]
    snaps["wms"]["transfers"].remove(first)  # the create never made it
    second["lines"][0]["qty"] += 1
    snaps["wms"]["transfers"].append(second | {"id": "WT-999999", "transfer_ref": "TO-999999"})
    findings = judge("transfer_reaches_wms", snaps).findings
    messages = sorted(f.message for f in findings)
    assert len(findings) == 3, messages
    assert any(f"{first['transfer_ref']} has no wms.transfer" in m for m in messages)
    assert any("qty_by_sku" in m for m in messages)
    assert any("WT-999999 (TO-999999)" in m and "has no erp.transfer" in m for m in messages)


def test_a_receipt_posted_twice_or_with_other_quantities_is_caught(snaps):
    receipt = snaps["erp"]["receipts"][0]
    snaps["erp"]["receipts"].append(receipt | {"id": "GR-999999"})
    finding = only_finding(judge("receipt_posted_once", snaps))
    assert (finding.expected, finding.actual) == (1, 2)
    snaps["erp"]["receipts"].pop()
    receipt["lines"][0]["qty"] += 5
    finding = only_finding(judge("receipt_posted_once", snaps))
    assert "qty_by_sku" in finding.message


# -- causality ---------------------------------------------------------------------------------
def causality(snaps) -> list:
    return judge("nothing_posted_before_its_event", snaps).findings


def test_a_goods_issue_posted_before_the_truck_left_is_caught(snaps):
    found = shipped(snaps)
    issue = next(
        gi for gi in snaps["erp"]["goods_issues"] if gi["order_id"] == found["order"]["id"]
    )
    shipped_at = next(h["at"] for h in found["fo"]["status_history"] if h["status"] == "shipped")
    issue["posted_at"] = later(shipped_at, -3600)  # when the label was printed
    (finding,) = causality(snaps)
    assert finding.entity.startswith(found["order"]["id"])
    assert "goods issue posted before the WMS shipped" in finding.message
    assert "3,600 s before" in finding.message


@pytest.mark.parametrize(
    ("collection", "when", "says"),
    [
        ("accruals", "posted_at", "freight accrued before the TMS settled it"),
        ("backorders", "created_at", "backorder raised before the short pick"),
        ("adjustments", "posted_at", "adjustment posted before the WMS made it"),
        ("receipts", "posted_at", "goods receipt posted before the WMS received it"),
    ],
)
def test_a_posting_before_its_event_is_caught(snaps, collection, when, says):
    document = snaps["erp"][collection][0]
    document[when] = "2026-01-01T00:00:00Z"
    findings = causality(snaps)
    assert [f.message.split(":")[0] for f in findings] == [says]


def test_tracking_posted_before_the_scan_and_a_wms_order_before_release_are_caught(snaps):
    order = shipped(snaps)["order"]
    posting = order["tracking_history"][-1]
    posting["posted_at"] = later(posting["occurred_at"], -60)
    fo = shipped(snaps)["fo"]
    fo["created_at"] = later(order["released_at"], -1)
    says = sorted(f.message.split(":")[0] for f in causality(snaps))
    assert says == [
        "WMS order created before the ERP released the order",
        "tracking posted before the carrier scanned",
    ]
