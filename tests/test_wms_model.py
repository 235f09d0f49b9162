"""The WMS model's transitions, refusals and events, without HTTP."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from simulators.common.clock import ManualClock
from simulators.common.errors import SimError
from simulators.tms.model import MAX_PACKAGE_KG
from simulators.wms.model import FulfilmentOrder, WmsModel, cartons, package_weight

SHIP_TO = {
    "name": "Grace Hopper",
    "street": "2 Compiler Lane",
    "city": "Rotterdam",
    "postal_code": "3011 AA",
    "country": "NL",
}
LINES = [{"line": 1, "sku": "A-100", "qty": 3}, {"line": 2, "sku": "B-200", "qty": 2}]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def wms(clock: ManualClock) -> WmsModel:
    return WmsModel(clock, {"A-100": 10, "B-200": 5})


def create(wms: WmsModel, ref: str = "SO-000001", lines: list[dict] | None = None):
    return wms.create_order(ref, SHIP_TO, "standard", LINES if lines is None else lines)


def to_labelled(wms: WmsModel, picked: dict[int, int] | None = None) -> FulfilmentOrder:
    fo = create(wms)
    wms.pick(fo.id, {1: 3, 2: 2} if picked is None else picked)
    wms.pack(fo.id)
    return wms.attach_label(fo.id, "PC000000001", "parcelco", "LB-000001")


def events(wms: WmsModel, kind: str) -> list[tuple[dict[str, Any], str | None]]:
    return [(data, ref) for k, data, ref in wms.emitted if k == kind]


def refusal(call, *args: Any) -> SimError:
    with pytest.raises(SimError) as caught:
        call(*args)
    return caught.value


# -- creating ---------------------------------------------------------------------------
def test_create_accepts_with_history(wms: WmsModel, clock: ManualClock) -> None:
    clock.advance(75)
    fo = create(wms)
    assert fo.id == "FO-000001"
    assert fo.status == "accepted"
    assert fo.created_at == "2026-11-23T00:01:15Z"
    assert fo.status_history == [{"status": "accepted", "at": "2026-11-23T00:01:15Z"}]
    assert fo.lines[0].to_dict() == {
        "line": 1,
        "sku": "A-100",
        "qty": 3,
        "picked_qty": 0,
        "short_qty": 0,
    }
    assert wms.stock == {"A-100": 10, "B-200": 5}  # accepting reserves nothing


def test_duplicates_by_order_ref_are_kept_and_visible(wms: WmsModel) -> None:
    first, second = create(wms), create(wms)
    assert first.id != second.id
    assert wms.by_ref == {"SO-000001": [first.id, second.id]}
    assert wms.find("SO-000001") == [first, second]


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        ([{"line": 1, "sku": "Z-999", "qty": 1}], "unknown_item"),
        ([], "validation_failed"),
        ([{"line": 1, "sku": "A-100", "qty": 0}], "validation_failed"),
        (
            [{"line": 1, "sku": "A-100", "qty": 1}, {"line": 1, "sku": "B-200", "qty": 1}],
            "validation_failed",
        ),
    ],
)
def test_create_refuses_bad_lines(wms: WmsModel, lines: list[dict], code: str) -> None:
    err = refusal(create, wms, "SO-000001", lines)
    assert (err.status, err.code) == (422, code)
    assert wms.orders == {} and wms.by_ref == {}


# -- the happy path ---------------------------------------------------------------------
def test_full_path_emits_each_event_with_the_documented_data(
    wms: WmsModel, clock: ManualClock
) -> None:
    fo = create(wms)
    wms.pick(fo.id, {1: 3, 2: 2})
    wms.pack(fo.id)
    wms.attach_label(fo.id, "PC000000001", "parcelco", "LB-000001")
    clock.advance(3600)
    wms.ship(fo.id)

    assert fo.status == "shipped"
    assert [h["status"] for h in fo.status_history] == [
        "accepted",
        "picked",
        "packed",
        "labelled",
        "shipped",
    ]
    assert wms.stock == {"A-100": 7, "B-200": 3}
    ((packed, ref),) = events(wms, "order.packed")
    assert ref == "SO-000001"
    assert packed == {
        "fulfilment_order_id": "FO-000001",
        "order_ref": "SO-000001",
        "ship_to": SHIP_TO,
        "service_level": "standard",
        "packages": [
            {
                "package_id": "PK-000001",
                "weight_kg": 2.2,  # 5 units x 0.4 kg + 0.2 kg box
                "contents": [{"sku": "A-100", "qty": 3}, {"sku": "B-200", "qty": 2}],
            }
        ],
        "site": "DC1",
    }
    assert events(wms, "order.shipped") == [
        (
            {
                "fulfilment_order_id": "FO-000001",
                "order_ref": "SO-000001",
                "tracking_number": "PC000000001",
                "carrier": "parcelco",
                "shipped_at": "2026-11-23T01:00:00Z",
                "lines": [
                    {"line": 1, "sku": "A-100", "qty": 3},
                    {"line": 2, "sku": "B-200", "qty": 2},
                ],
                "site": "DC1",
            },
            "SO-000001",
        )
    ]


def test_observers_hear_every_step(wms: WmsModel) -> None:
    heard: list[tuple[str, str]] = []
    wms.observe(lambda what, fo: heard.append((what, fo.status)))
    fo = to_labelled(wms)
    wms.ship(fo.id)
    assert heard == [
        ("created", "accepted"),
        ("picked", "picked"),
        ("packed", "packed"),
        ("labelled", "labelled"),
        ("shipped", "shipped"),
    ]


# -- picking ----------------------------------------------------------------------------
def test_short_pick_computes_and_emits_short_qty(wms: WmsModel) -> None:
    fo = create(wms)
    wms.pick(fo.id, {1: 2})  # line 2 missing: nothing found
    assert fo.status == "picked"
    assert [(x.picked_qty, x.short_qty) for x in fo.lines] == [(2, 1), (0, 2)]
    assert wms.stock == {"A-100": 8, "B-200": 5}
    assert events(wms, "order.picked") == [
        (
            {
                "fulfilment_order_id": "FO-000001",
                "order_ref": "SO-000001",
                "lines": [
                    {"line": 1, "sku": "A-100", "qty": 3, "picked_qty": 2, "short_qty": 1},
                    {"line": 2, "sku": "B-200", "qty": 2, "picked_qty": 0, "short_qty": 2},
                ],
                "site": "DC1",
            },
            "SO-000001",
        )
    ]


def test_short_shipment_ships_only_picked_lines(wms: WmsModel) -> None:
    fo = to_labelled(wms, {1: 2})
    wms.ship(fo.id)
    ((shipped, _),) = events(wms, "order.shipped")
    assert shipped["lines"] == [{"line": 1, "sku": "A-100", "qty": 2}]


def test_zero_pick_short_closes_and_still_emits(wms: WmsModel) -> None:
    fo = create(wms)
    wms.pick(fo.id, {1: 0})
    assert fo.status == "short_closed"
    ((picked, _),) = events(wms, "order.picked")
    assert [x["short_qty"] for x in picked["lines"]] == [3, 2]
    assert refusal(wms.pack, fo.id).status == 409
    assert refusal(wms.cancel, fo.id).status == 409


@pytest.mark.parametrize("picked", [{1: 4}, {1: -1}, {3: 1}])
def test_pick_refuses_impossible_quantities(wms: WmsModel, picked: dict[int, int]) -> None:
    fo = create(wms)
    err = refusal(wms.pick, fo.id, picked)
    assert (err.status, err.code) == (422, "validation_failed")
    assert fo.status == "accepted" and wms.stock == {"A-100": 10, "B-200": 5}


def test_pick_beyond_on_hand_is_insufficient_stock(wms: WmsModel) -> None:
    wms.adjust("B-200", -4, "damage")
    fo = create(wms)
    err = refusal(wms.pick, fo.id, {1: 3, 2: 2})
    assert (err.status, err.code) == (409, "insufficient_stock")
    assert err.details["status"] == "accepted"
    assert wms.stock == {"A-100": 10, "B-200": 1}


def test_pick_counts_one_sku_across_lines(wms: WmsModel) -> None:
    lines = [{"line": 1, "sku": "B-200", "qty": 3}, {"line": 2, "sku": "B-200", "qty": 3}]
    fo = create(wms, lines=lines)
    assert refusal(wms.pick, fo.id, {1: 3, 2: 3}).code == "insufficient_stock"


def test_pick_only_from_accepted(wms: WmsModel) -> None:
    fo = create(wms)
    wms.pick(fo.id, {1: 1})
    err = refusal(wms.pick, fo.id, {1: 1})
    assert (err.status, err.code, err.details["status"]) == (409, "invalid_transition", "picked")


# -- packing ----------------------------------------------------------------------------
def test_pack_with_given_packages(wms: WmsModel) -> None:
    fo = create(wms)
    wms.pick(fo.id, {1: 3, 2: 2})
    boxes = [
        {"contents": [{"sku": "A-100", "qty": 3}], "weight_kg": 1.5},
        {"package_id": "BOX-7", "contents": [{"sku": "B-200", "qty": 2}]},
    ]
    wms.pack(fo.id, boxes)
    assert [p.to_dict() for p in fo.packages] == [
        {"package_id": "PK-000001", "weight_kg": 1.5, "contents": [{"sku": "A-100", "qty": 3}]},
        {"package_id": "BOX-7", "weight_kg": 1.0, "contents": [{"sku": "B-200", "qty": 2}]},
    ]


def test_goods_heavier_than_a_parcel_are_packed_into_cartons_the_carrier_takes() -> None:
    cases = {"A-100": 50, "B-200": 40, "C-300": 5}  # 95 eaches: 38.2 kg in one box
    boxes = cartons(cases)
    assert boxes[0]["contents"] == [{"sku": "A-100", "qty": 50}, {"sku": "B-200", "qty": 10}]
    units = [sum(c["qty"] for c in box["contents"]) for box in boxes]
    assert units == [60, 35]
    assert all(package_weight(n) <= float(MAX_PACKAGE_KG) for n in units)
    assert cartons({"A-100": 3, "B-200": 2}) == [
        {"contents": [{"sku": "A-100", "qty": 3}, {"sku": "B-200", "qty": 2}]}
    ]


def test_pack_refuses_packages_that_lose_goods(wms: WmsModel) -> None:
    fo = create(wms)
    wms.pick(fo.id, {1: 3, 2: 2})
    err = refusal(wms.pack, fo.id, [{"contents": [{"sku": "A-100", "qty": 3}]}])
    assert (err.status, err.code) == (422, "validation_failed")
    assert fo.status == "picked"


def test_pack_before_pick_is_refused(wms: WmsModel) -> None:
    assert refusal(wms.pack, create(wms).id).status == 409


# -- labelling and shipping -------------------------------------------------------------
def test_label_before_pack_is_refused(wms: WmsModel) -> None:
    fo = create(wms)
    err = refusal(wms.attach_label, fo.id, "PC1", "parcelco", "LB-1")
    assert (err.status, err.code, err.details["status"]) == (409, "invalid_transition", "accepted")


def test_label_is_idempotent_for_the_same_tracking_number(wms: WmsModel) -> None:
    heard: list[str] = []
    fo = to_labelled(wms)
    wms.observe(lambda what, _: heard.append(what))
    again = wms.attach_label(fo.id, "PC000000001", "parcelco", "LB-000001")
    assert again is fo and fo.status == "labelled"
    assert [h["status"] for h in fo.status_history].count("labelled") == 1
    assert heard == []  # nothing happened, so nothing to tell


def test_a_different_label_is_a_mismatch(wms: WmsModel) -> None:
    fo = to_labelled(wms)
    err = refusal(wms.attach_label, fo.id, "PC000000002", "parcelco", "LB-000002")
    assert (err.status, err.code) == (409, "label_mismatch")
    assert err.details == {
        "id": fo.id,
        "status": "labelled",
        "tracking_number": "PC000000001",
    }


def test_ship_before_label_is_refused(wms: WmsModel) -> None:
    fo = create(wms)
    wms.pick(fo.id, {1: 3, 2: 2})
    wms.pack(fo.id)
    err = refusal(wms.ship, fo.id)
    assert (err.status, err.details["status"]) == (409, "packed")
    assert events(wms, "order.shipped") == []


# -- cancelling -------------------------------------------------------------------------
def test_cancel_accepted(wms: WmsModel) -> None:
    fo = wms.cancel(create(wms).id)
    assert fo.status == "cancelled"
    assert wms.stock == {"A-100": 10, "B-200": 5}


@pytest.mark.parametrize("stage", ["picked", "packed", "labelled"])
def test_cancel_after_pick_puts_stock_back(wms: WmsModel, stage: str) -> None:
    fo = create(wms)
    wms.pick(fo.id, {1: 3, 2: 1})
    if stage != "picked":
        wms.pack(fo.id)
    if stage == "labelled":
        wms.attach_label(fo.id, "PC1", "parcelco", "LB-1")
    wms.cancel(fo.id)
    assert fo.status == "cancelled"
    assert wms.stock == {"A-100": 10, "B-200": 5}


def test_cancel_shipped_or_cancelled_is_refused(wms: WmsModel) -> None:
    shipped = wms.ship(to_labelled(wms).id)
    cancelled = wms.cancel(create(wms, "SO-000002").id)
    for fo in (shipped, cancelled):
        err = refusal(wms.cancel, fo.id)
        assert (err.status, err.code, err.details["status"]) == (
            409,
            "invalid_transition",
            fo.status,
        )


def test_unknown_order_is_not_found(wms: WmsModel) -> None:
    for call in (wms.cancel, wms.ship, wms.pack, wms.get):
        assert refusal(call, "FO-999999").status == 404


# -- ship-to changes ---------------------------------------------------------------------
NEW_SHIP_TO = {
    "name": "Grace Hopper",
    "street": "9 Harbour Quay",
    "city": "Amsterdam",
    "postal_code": "1011 AB",
    "country": "NL",
}


def at_stage(wms: WmsModel, stage: str) -> FulfilmentOrder:
    """A fresh order moved to ``stage`` the way the floor and the API would."""
    if stage == "short_closed":
        fo = create(wms)
        wms.pick(fo.id, {})
        return fo
    if stage in ("labelled", "shipped"):
        fo = to_labelled(wms)
        return wms.ship(fo.id) if stage == "shipped" else fo
    fo = create(wms)
    if stage == "cancelled":
        return wms.cancel(fo.id)
    if stage in ("picked", "packed"):
        wms.pick(fo.id, {1: 3, 2: 2})
    if stage == "packed":
        wms.pack(fo.id)
    return fo


@pytest.mark.parametrize("stage", ["accepted", "picked", "packed"])
def test_change_ship_to_before_the_label(wms: WmsModel, clock: ManualClock, stage: str) -> None:
    seen: list[tuple[str, Any]] = []
    wms.observe(lambda what, obj: seen.append((what, obj)))
    fo = at_stage(wms, stage)
    history, emitted = list(fo.status_history), list(wms.emitted)
    clock.advance(30)
    given = dict(NEW_SHIP_TO)
    assert wms.change_ship_to(fo.id, given) is fo
    given["city"] = "Utrecht"  # the order keeps its own copy
    assert fo.ship_to == NEW_SHIP_TO
    assert wms.get(fo.id).to_dict()["ship_to"] == NEW_SHIP_TO
    assert (fo.status, fo.status_history) == (stage, history)  # not a transition
    assert wms.emitted == emitted  # the WMS announces nothing
    assert seen[-1] == ("updated", fo)


def test_packed_event_after_a_change_carries_the_new_address(wms: WmsModel) -> None:
    fo = create(wms)
    wms.change_ship_to(fo.id, NEW_SHIP_TO)
    wms.pick(fo.id, {1: 3, 2: 2})
    wms.pack(fo.id)
    ((packed, _),) = events(wms, "order.packed")
    assert packed["ship_to"] == NEW_SHIP_TO


@pytest.mark.parametrize("stage", ["labelled", "shipped", "short_closed", "cancelled"])
def test_change_ship_to_once_labelled_or_closed_is_refused(wms: WmsModel, stage: str) -> None:
    fo = at_stage(wms, stage)
    assert fo.status == stage
    before = (wms.snapshot(), list(wms.emitted))
    err = refusal(wms.change_ship_to, fo.id, NEW_SHIP_TO)
    assert (err.status, err.code) == (409, "invalid_transition")
    assert err.details == {"id": fo.id, "status": stage}
    assert (wms.snapshot(), list(wms.emitted)) == before
    assert fo.ship_to == SHIP_TO


def test_change_ship_to_of_an_unknown_order_is_not_found(wms: WmsModel) -> None:
    err = refusal(wms.change_ship_to, "FO-999999", NEW_SHIP_TO)
    assert (err.status, err.code) == (404, "not_found")


# -- stock ------------------------------------------------------------------------------
def test_adjust_changes_stock_and_emits(wms: WmsModel) -> None:
    result = wms.adjust("A-100", -2, "damage")
    assert result == {
        "adjustment_id": "ADJ-000001",
        "sku": "A-100",
        "delta": -2,
        "reason": "damage",
        "site": "DC1",
    }
    assert wms.stock["A-100"] == 8
    assert wms.adjustments == [{**result, "at": "2026-11-23T00:00:00Z"}]
    assert events(wms, "inventory.adjusted") == [(result, "A-100")]


@pytest.mark.parametrize(
    ("sku", "delta", "reason", "code"),
    [
        ("A-100", -11, "shrink", "negative_stock"),
        ("Z-999", 1, "found", "unknown_sku"),
        ("A-100", 1, "theft", "validation_failed"),
    ],
)
def test_adjust_refusals(wms: WmsModel, sku: str, delta: int, reason: str, code: str) -> None:
    err = refusal(wms.adjust, sku, delta, reason)
    assert (err.status, err.code) == (422, code)
    assert wms.stock == {"A-100": 10, "B-200": 5} and wms.emitted == []


def test_receive_adds_stock_and_new_skus(wms: WmsModel) -> None:
    lines = [{"sku": "A-100", "qty": 5}, {"sku": "C-300", "qty": 7}]
    result = wms.receive("RC-000001", lines)
    assert result == {"receipt_id": "RC-000001", "lines": lines, "site": "DC1"}
    assert wms.stock == {"A-100": 15, "B-200": 5, "C-300": 7}
    assert events(wms, "receipt.confirmed") == [(result, "RC-000001")]
    assert create(wms, lines=[{"line": 1, "sku": "C-300", "qty": 1}]).status == "accepted"


def test_receive_refuses_empty_or_zero_lines(wms: WmsModel) -> None:
    assert refusal(wms.receive, "RC-1", []).status == 422
    assert refusal(wms.receive, "RC-1", [{"sku": "A-100", "qty": 0}]).status == 422


# -- snapshot, reset, seeds -------------------------------------------------------------
def test_snapshot_is_json_and_complete(wms: WmsModel) -> None:
    fo = to_labelled(wms)
    wms.adjust("A-100", 1, "found")
    wms.receive("RC-000001", [{"sku": "B-200", "qty": 1}])
    snap = orjson.loads(orjson.dumps(wms.snapshot()))
    assert snap["orders"][fo.id]["label"]["tracking_number"] == "PC000000001"
    assert snap["by_ref"] == {"SO-000001": [fo.id]}
    assert snap["stock"] == {"A-100": 8, "B-200": 4}
    assert len(snap["adjustments"]) == len(snap["receipts"]) == 1


def test_reset_restores_initial_stock_and_ids(wms: WmsModel) -> None:
    to_labelled(wms)
    wms.receive("RC-000001", [{"sku": "C-300", "qty": 1}])
    wms.adjust("A-100", 2, "found")
    wms.reset()
    assert wms.stock == {"A-100": 10, "B-200": 5}
    assert wms.orders == {} and wms.by_ref == {}
    assert wms.adjustments == [] and wms.receipts == [] and wms.emitted == []
    assert create(wms).id == "FO-000001"


def test_seed_examples_match_the_openapi_examples(clock: ManualClock) -> None:
    wms = WmsModel(clock)
    wms.seed_examples()
    assert wms.get("FO-000001").status == "accepted"
    assert wms.get("FO-000002").status == "packed"
    assert {"A-100", "B-200"} <= wms.stock.keys()
