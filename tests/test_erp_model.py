"""The ERP model on its own: legal and illegal transitions, postings, stock and events."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.common.clock import ManualClock
from simulators.common.errors import SimError
from simulators.erp.model import ErpModel, SalesOrder

CUSTOMER = {"name": "Ada Lovelace", "email": "ada@example.com"}
SHIP_TO = {
    "name": "Ada Lovelace",
    "street": "12 Analytical Way",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def erp(clock: ManualClock) -> ErpModel:
    return ErpModel(clock, {"A-100": 100, "B-200": 50})


def order(erp: ErpModel, *lines: tuple[str, int]) -> SalesOrder:
    wanted = lines or (("A-100", 3), ("B-200", 1))
    return erp.create_order(
        CUSTOMER, SHIP_TO, "standard", [{"sku": s, "qty": q} for s, q in wanted]
    )


def released(erp: ErpModel, *lines: tuple[str, int]) -> SalesOrder:
    return erp.release(order(erp, *lines).id)


def refusal(status: int, code: str, call: Any, *args: Any) -> SimError:
    with pytest.raises(SimError) as caught:
        call(*args)
    assert (caught.value.status, caught.value.code) == (status, code)
    return caught.value


# -- sales orders ---------------------------------------------------------------------------
def test_create_numbers_lines_and_opens(erp: ErpModel, clock: ManualClock) -> None:
    clock.advance(90)
    so = order(erp)
    assert so.id == "SO-000001"
    assert so.status == "open"
    assert so.lines == [
        {"line": 1, "sku": "A-100", "qty": 3, "uom": "EA"},
        {"line": 2, "sku": "B-200", "qty": 1, "uom": "EA"},
    ]
    assert so.created_at == "2026-11-23T00:01:30Z"
    assert so.status_history == [{"status": "open", "at": "2026-11-23T00:01:30Z"}]
    assert erp.orders[so.id] is so


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        ([{"sku": "Z-999", "qty": 1}], "unknown_sku"),
        ([{"sku": "A-100", "qty": 0}], "validation_failed"),
        ([], "validation_failed"),
    ],
)
def test_create_refuses_unknown_sku_bad_qty_and_no_lines(
    erp: ErpModel, lines: list[dict], code: str
) -> None:
    refusal(422, code, erp.create_order, CUSTOMER, SHIP_TO, "standard", lines)
    assert erp.orders == {}


def test_release_emits_the_full_order(erp: ErpModel, clock: ManualClock) -> None:
    seen: list[tuple[str, Any]] = []
    erp.observe(lambda what, obj: seen.append((what, obj)))
    so = order(erp)
    clock.advance(60)
    erp.release(so.id)
    assert so.status == "released"
    assert so.released_at == "2026-11-23T00:01:00Z"
    assert erp.emitted == [("order.released", so.to_dict(), so.id)]
    assert seen == [("released", so)]


def test_release_twice_is_a_conflict_with_the_current_status(erp: ErpModel) -> None:
    so = released(erp)
    err = refusal(409, "invalid_status", erp.release, so.id)
    assert err.details["status"] == "released"
    assert len(erp.emitted) == 1


def test_unknown_order_is_not_found(erp: ErpModel) -> None:
    refusal(404, "not_found", erp.release, "SO-999999")
    refusal(404, "not_found", erp.cancel, "SO-999999")
    refusal(404, "not_found", erp.goods_issue, "SO-999999", [], None, None, None)


@pytest.mark.parametrize("release_first", [False, True])
def test_cancel_open_or_released_emits(erp: ErpModel, release_first: bool) -> None:
    seen: list[str] = []
    erp.observe(lambda what, obj: seen.append(what))
    so = released(erp) if release_first else order(erp)
    erp.cancel(so.id)
    assert so.status == "cancelled"
    assert erp.emitted[-1] == (
        "order.cancelled",
        {"order_id": so.id, "cancelled_at": "2026-11-23T00:00:00Z"},
        so.id,
    )
    assert seen[-1] == "cancelled"


def test_cancel_shipped_or_cancelled_is_a_conflict(erp: ErpModel) -> None:
    shipped = released(erp)
    erp.goods_issue(shipped.id, [{"line": 1, "qty": 3}, {"line": 2, "qty": 1}], None, None, None)
    assert refusal(409, "invalid_status", erp.cancel, shipped.id).details["status"] == "shipped"
    cancelled = order(erp)
    erp.cancel(cancelled.id)
    refusal(409, "invalid_status", erp.cancel, cancelled.id)
    refusal(409, "invalid_status", erp.release, cancelled.id)


# -- ship-to changes -------------------------------------------------------------------------
NEW_SHIP_TO = {
    "name": "Ada Lovelace",
    "street": "7 Difference Engine Street",
    "city": "Hamburg",
    "postal_code": "20095",
    "country": "DE",
}


@pytest.mark.parametrize("release_first", [False, True])
def test_change_ship_to_replaces_the_address_and_emits_once(
    erp: ErpModel, clock: ManualClock, release_first: bool
) -> None:
    seen: list[tuple[str, Any]] = []
    erp.observe(lambda what, obj: seen.append((what, obj)))
    so = released(erp) if release_first else order(erp)
    assert so.updated_at == so.created_at == so.to_dict()["updated_at"]  # set on creation
    status, history = so.status, list(so.status_history)
    emitted_before = len(erp.emitted)
    clock.advance(120)
    assert erp.change_ship_to(so.id, NEW_SHIP_TO) is so
    assert so.ship_to == NEW_SHIP_TO
    assert so.updated_at == "2026-11-23T00:02:00Z"
    assert (so.status, so.status_history) == (status, history)  # not a status change
    assert erp.emitted[emitted_before:] == [
        (
            "order.updated",
            {
                "order_id": so.id,
                "ship_to": NEW_SHIP_TO,
                "changed": ["ship_to"],
                "updated_at": "2026-11-23T00:02:00Z",
            },
            so.id,
        )
    ]
    assert seen[-1] == ("updated", so)
    assert erp.order(so.id).to_dict()["ship_to"] == NEW_SHIP_TO


def test_change_ship_to_keeps_no_alias_of_the_caller_dict(erp: ErpModel) -> None:
    so = order(erp)
    given = dict(NEW_SHIP_TO)
    erp.change_ship_to(so.id, given)
    given["city"] = "Munich"
    _, data, _ = erp.emitted[-1]
    assert so.ship_to["city"] == data["ship_to"]["city"] == "Hamburg"


def test_change_to_the_same_address_is_still_announced(erp: ErpModel) -> None:
    so = order(erp)
    erp.change_ship_to(so.id, SHIP_TO)
    erp.change_ship_to(so.id, SHIP_TO)
    assert [kind for kind, _, _ in erp.emitted] == ["order.updated", "order.updated"]
    assert so.ship_to == SHIP_TO


@pytest.mark.parametrize("prepare", ["shipped", "backordered", "delivered", "cancelled"])
def test_change_ship_to_after_goods_issue_or_cancel_is_a_conflict(
    erp: ErpModel, prepare: str
) -> None:
    so = order(erp) if prepare == "cancelled" else released(erp)
    if prepare == "cancelled":
        erp.cancel(so.id)
    else:
        issued = [] if prepare == "backordered" else [{"line": 1, "qty": 3}]
        erp.goods_issue(so.id, issued, "PC1", "parcelco", None)
    if prepare == "delivered":
        erp.post_tracking(so.id, "PC1", "delivered", "2026-11-24T14:02:00Z")
    assert so.status == prepare
    emitted_before, updated = list(erp.emitted), so.updated_at
    err = refusal(409, "invalid_status", erp.change_ship_to, so.id, NEW_SHIP_TO)
    assert err.details == {"status": prepare, "order_id": so.id}
    assert so.ship_to == SHIP_TO and so.updated_at == updated
    assert erp.emitted == emitted_before


def test_change_ship_to_of_an_unknown_order_is_not_found(erp: ErpModel) -> None:
    refusal(404, "not_found", erp.change_ship_to, "SO-999999", NEW_SHIP_TO)
    assert erp.emitted == []


def test_order_updated_is_a_published_event_type() -> None:
    assert "order.updated" in ErpModel.event_types


# -- goods issue ----------------------------------------------------------------------------
def test_full_goods_issue_ships_and_takes_stock(erp: ErpModel) -> None:
    seen: list[tuple[str, Any]] = []
    erp.observe(lambda what, obj: seen.append((what, obj)))
    so = released(erp)
    gi = erp.goods_issue(
        so.id, [{"line": 1, "qty": 3}, {"line": 2, "qty": 1}], "PC000000001", "parcelco", "SH-1"
    )
    assert gi.id == "GI-000001"
    assert gi.backorder_id is None
    assert gi.lines == [
        {"line": 1, "sku": "A-100", "qty": 3},
        {"line": 2, "sku": "B-200", "qty": 1},
    ]
    assert erp.stock == {"A-100": 97, "B-200": 49}
    assert so.status == "shipped"
    assert so.goods_issues == [gi.id]
    assert so.tracking_number == "PC000000001"
    assert [s["status"] for s in so.status_history] == ["open", "released", "shipped"]
    assert seen[-1] == ("goods_issued", gi)


def test_short_goods_issue_backorders_the_remainder(erp: ErpModel) -> None:
    so = released(erp, ("A-100", 5), ("B-200", 2))
    gi = erp.goods_issue(so.id, [{"line": 1, "qty": 3}], None, None, None)
    backorder = erp.backorders[gi.backorder_id]  # type: ignore[index]
    assert backorder.id == "BO-000001"
    assert backorder.order_id == so.id
    assert backorder.lines == [
        {"line": 1, "sku": "A-100", "qty": 2},
        {"line": 2, "sku": "B-200", "qty": 2},
    ]
    assert gi.lines[1] == {"line": 2, "sku": "B-200", "qty": 0}
    assert erp.stock == {"A-100": 97, "B-200": 50}
    assert so.status == "shipped"
    assert so.backorders == [backorder.id]


def test_lines_numbered_in_steps_are_issued_and_backordered_by_their_numbers(
    clock: ManualClock,
) -> None:
    """``line_step`` 10: lines 10 and 20, as SAP numbers them; a line's number is not its
    position, and a goods issue naming line 1 names a line the order does not have."""
    erp = ErpModel(clock, {"A-100": 100, "B-200": 50}, line_step=10)
    so = released(erp, ("A-100", 5), ("B-200", 2))
    assert [x["line"] for x in so.lines] == [10, 20]
    refusal(
        422, "validation_failed", erp.goods_issue, so.id, [{"line": 1, "qty": 5}], None, None, None
    )
    gi = erp.goods_issue(so.id, [{"line": 10, "qty": 3}], None, None, None)
    assert erp.backorders[gi.backorder_id].lines == [  # type: ignore[index]
        {"line": 10, "sku": "A-100", "qty": 2},
        {"line": 20, "sku": "B-200", "qty": 2},
    ]


def test_repeated_lines_add_up(erp: ErpModel) -> None:
    so = released(erp, ("A-100", 5))
    gi = erp.goods_issue(so.id, [{"line": 1, "qty": 2}, {"line": 1, "qty": 3}], None, None, None)
    assert gi.lines == [{"line": 1, "sku": "A-100", "qty": 5}]
    assert gi.backorder_id is None


def test_zero_goods_issue_backorders_everything(erp: ErpModel) -> None:
    so = released(erp)
    gi = erp.goods_issue(so.id, [{"line": 1, "qty": 0}], None, None, None)
    assert so.status == "backordered"
    assert erp.backorders[gi.backorder_id].lines == [  # type: ignore[index]
        {"line": 1, "sku": "A-100", "qty": 3},
        {"line": 2, "sku": "B-200", "qty": 1},
    ]
    assert erp.stock == {"A-100": 100, "B-200": 50}
    refusal(409, "invalid_status", erp.cancel, so.id)


def test_goods_issue_twice_is_already_issued(erp: ErpModel) -> None:
    so = released(erp)
    erp.goods_issue(so.id, [{"line": 1, "qty": 1}], None, None, None)
    err = refusal(409, "already_issued", erp.goods_issue, so.id, [], None, None, None)
    assert err.details == {"order_id": so.id, "goods_issue_id": "GI-000001", "status": "shipped"}
    assert erp.stock["A-100"] == 99


@pytest.mark.parametrize("prepare", ["open", "cancelled"])
def test_goods_issue_needs_a_released_order(erp: ErpModel, prepare: str) -> None:
    so = order(erp)
    if prepare == "cancelled":
        erp.cancel(so.id)
    err = refusal(409, "invalid_status", erp.goods_issue, so.id, [], None, None, None)
    assert err.details["status"] == prepare


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        ([{"line": 3, "qty": 1}], "validation_failed"),
        ([{"line": 1, "qty": 4}], "qty_exceeds_ordered"),
        ([{"line": 1, "qty": 2}, {"line": 1, "qty": 2}], "qty_exceeds_ordered"),
        ([{"line": 1, "qty": -1}], "validation_failed"),
    ],
)
def test_goods_issue_refuses_bad_lines_and_changes_nothing(
    erp: ErpModel, lines: list[dict], code: str
) -> None:
    so = released(erp)
    refusal(422, code, erp.goods_issue, so.id, lines, None, None, None)
    assert so.status == "released"
    assert erp.goods_issues == {}
    assert erp.stock == {"A-100": 100, "B-200": 50}


def test_goods_issue_refuses_to_take_stock_below_zero(erp: ErpModel) -> None:
    so = released(erp, ("B-200", 30), ("B-200", 30))
    err = refusal(
        422,
        "insufficient_stock",
        erp.goods_issue,
        so.id,
        [{"line": 1, "qty": 30}, {"line": 2, "qty": 30}],
        None,
        None,
        None,
    )
    assert err.details == {"sku": "B-200", "on_hand": 50, "requested": 60}
    assert so.status == "released"


# -- tracking -------------------------------------------------------------------------------
def test_delivered_tracking_delivers_a_shipped_order(erp: ErpModel, clock: ManualClock) -> None:
    so = released(erp)
    erp.goods_issue(so.id, [{"line": 1, "qty": 3}], None, None, None)
    erp.post_tracking(so.id, "PC1", "in_transit", "2026-11-23T10:00:00Z")
    clock.advance(3600)
    erp.post_tracking(so.id, "PC1", "delivered", "2026-11-23T11:00:00Z")
    assert so.status == "delivered"
    assert so.tracking_number == "PC1"
    assert so.tracking_status == "delivered"
    assert so.tracking_history[-1] == {
        "status": "delivered",
        "occurred_at": "2026-11-23T11:00:00Z",
        "tracking_number": "PC1",
        "posted_at": "2026-11-23T01:00:00Z",
    }


def test_tracking_accepts_backwards_moves_and_keeps_the_first_number(erp: ErpModel) -> None:
    so = released(erp)
    erp.goods_issue(so.id, [{"line": 1, "qty": 3}], "PC1", None, None)
    erp.post_tracking(so.id, "PC1", "delivered", "2026-11-23T11:00:00Z")
    erp.post_tracking(so.id, "PC2", "in_transit", "2026-11-23T10:00:00Z")
    assert so.status == "delivered"
    assert so.tracking_status == "in_transit"
    assert so.tracking_number == "PC1"
    assert [t["status"] for t in so.tracking_history] == ["delivered", "in_transit"]


def test_delivered_before_goods_issue_keeps_the_status(erp: ErpModel) -> None:
    so = released(erp)
    erp.post_tracking(so.id, "PC1", "delivered", "2026-11-23T11:00:00Z")
    assert so.status == "released"
    assert so.tracking_status == "delivered"


def test_tracking_a_cancelled_order_is_a_conflict(erp: ErpModel) -> None:
    so = order(erp)
    erp.cancel(so.id)
    refusal(409, "invalid_status", erp.post_tracking, so.id, "PC1", "picked_up", "x")
    refusal(422, "validation_failed", erp.post_tracking, order(erp).id, "PC1", "lost", "x")


# -- freight, adjustments, receipts ---------------------------------------------------------
def test_freight_accruals_accept_duplicates(erp: ErpModel) -> None:
    so = order(erp)
    amount = {"amount": "12.40", "currency": "EUR"}
    first = erp.accrue_freight(so.id, "SH-1", amount)
    second = erp.accrue_freight(so.id, "SH-1", amount)
    assert (first.id, second.id) == ("FA-000001", "FA-000002")
    assert second.to_dict()["amount"] == amount
    refusal(404, "not_found", erp.accrue_freight, "SO-999999", "SH-1", amount)


def test_adjustments_move_stock_but_never_below_zero(erp: ErpModel) -> None:
    adjustment = erp.adjust_inventory("B-200", -50, "shrink", "CC-1")
    assert adjustment.to_dict() == {
        "id": "IA-000001",
        "sku": "B-200",
        "delta": -50,
        "reason": "shrink",
        "reference": "CC-1",
        "on_hand": 0,
        "posted_at": "2026-11-23T00:00:00Z",
    }
    refusal(422, "insufficient_stock", erp.adjust_inventory, "B-200", -1, "damage", None)
    refusal(422, "unknown_sku", erp.adjust_inventory, "Z-999", 1, "found", None)
    refusal(422, "validation_failed", erp.adjust_inventory, "A-100", 1, "theft", None)
    assert erp.stock == {"A-100": 100, "B-200": 0}


def test_receipts_add_stock(erp: ErpModel) -> None:
    receipt = erp.receive_goods("RC-1", [{"sku": "A-100", "qty": 20}, {"sku": "A-100", "qty": 5}])
    assert receipt.id == "GR-000001"
    assert erp.stock["A-100"] == 125
    refusal(422, "unknown_sku", erp.receive_goods, "RC-2", [{"sku": "Z-999", "qty": 1}])
    refusal(422, "validation_failed", erp.receive_goods, "RC-2", [])


# -- snapshot, reset, examples --------------------------------------------------------------
def test_reset_restores_the_initial_stock_and_ids(erp: ErpModel) -> None:
    so = released(erp)
    erp.goods_issue(so.id, [{"line": 1, "qty": 3}], None, None, None)
    erp.reset()
    assert erp.stock == {"A-100": 100, "B-200": 50}
    assert erp.orders == erp.goods_issues == erp.backorders == {}
    assert order(erp).id == "SO-000001"


def test_snapshot_holds_every_document(erp: ErpModel) -> None:
    so = released(erp)
    erp.goods_issue(so.id, [{"line": 1, "qty": 1}], None, None, None)
    erp.accrue_freight(so.id, "SH-1", {"amount": "1.00", "currency": "EUR"})
    erp.adjust_inventory("A-100", 1, "found", None)
    erp.receive_goods("RC-1", [{"sku": "B-200", "qty": 1}])
    snap = erp.snapshot()
    assert snap["stock"] == {"A-100": 100, "B-200": 51}
    assert [len(snap[k]) for k in ("orders", "goods_issues", "backorders")] == [1, 1, 1]
    assert [len(snap[k]) for k in ("accruals", "adjustments", "receipts")] == [1, 1, 1]
    assert snap["orders"][0] == so.to_dict()


def test_seed_examples_match_the_openapi_examples(clock: ManualClock) -> None:
    erp = ErpModel(clock)
    erp.seed_examples()
    statuses = {so.id: so.status for so in erp.orders.values()}
    assert statuses == {
        "SO-000001": "released",
        "SO-000002": "open",
        "SO-000003": "open",
        "SO-000004": "shipped",
    }
    assert set(erp.goods_issues) == {"GI-000001"}
    assert set(erp.backorders) == {"BO-000001"}
    erp.reset()
    assert erp.stock == {"A-100": 100, "B-200": 50}


def test_order_dict_is_a_copy(erp: ErpModel) -> None:
    so = order(erp)
    data = so.to_dict()
    erp.release(so.id)
    assert data["status"] == "open"
    assert data["status_history"] == [{"status": "open", "at": "2026-11-23T00:00:00Z"}]


# -- transfer postings -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lines", "code", "details"),
    [
        ([{"line": 1, "qty": 6}], "qty_exceeds_ordered", {"line": 1, "ordered": 5, "requested": 6}),
        ([{"line": 1, "qty": 3}, {"line": 1, "qty": 3}], "qty_exceeds_ordered", {"requested": 6}),
        ([{"line": 2, "qty": 1}], "validation_failed", {}),
        ([{"line": 1, "qty": -1}], "validation_failed", {}),
    ],
)
def test_a_transfer_posting_is_held_to_the_transfer_orders_lines(
    erp: ErpModel, lines: list[dict], code: str, details: dict
) -> None:
    erp.add_site("DC2", {"A-100": 0, "B-200": 0})
    transfer = erp.transfers.release("DC1", "DC2", [{"sku": "A-100", "qty": 5}])
    with pytest.raises(SimError) as err:
        erp.transfers.issue(transfer.id, "WT-000001", lines)
    assert (err.value.status, err.value.code) == (422, code)
    assert details.items() <= err.value.details.items()
    issued = erp.transfers.issue(transfer.id, "WT-000001", [{"line": 1, "qty": 5}])
    assert issued.to_dict()["lines"][0]["qty"] == 5
