"""Master data at the simulators: the ERP's item master (read, paged, announced, converted
from cases to eaches) and the WMS's item registry (upsert, eaches only, refusals naming the
unknown or inactive item)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from simulators.common.clock import ManualClock
from simulators.common.errors import SimError
from simulators.erp.api import build as build_erp
from simulators.erp.model import ErpModel
from simulators.wms.api import build as build_wms
from tests.test_erp_api import ORDER

SHIP_TO = ORDER["ship_to"]
ITEM = {"description": "Kettle, steel", "weight_kg": 1.2, "active": True, "each_per_case": 6}


@pytest.fixture
def erp() -> ErpModel:
    return ErpModel(ManualClock(), {"A-100": 100, "B-200": 50})


def test_the_cutover_catalogue_is_the_item_master_and_needs_no_event(erp: ErpModel) -> None:
    assert erp.item("A-100").to_dict() | {"created_at": "-", "updated_at": "-"} == {
        "sku": "A-100",
        "description": "Article A-100",
        "uom": "EA",
        "each_per_case": 1,
        "weight_kg": 0.4,
        "active": True,
        "version": 1,
        "created_at": "-",
        "updated_at": "-",
    }
    erp.cutover_item("B-200", "CS", 12)
    assert erp.item("B-200").each_per_case == 12
    assert erp.emitted == []


def test_a_new_item_and_each_change_are_announced_whole_with_a_growing_version(
    erp: ErpModel,
) -> None:
    created = erp.create_item("N-1", "Kettle", "CS", 6, 1.2, opening_stock=60)
    assert erp.stock["N-1"] == 60
    kind, data, ref = erp.emitted[-1]
    assert (kind, ref, data) == ("item.created", "N-1", created.to_dict())
    erp.change_item("N-1", weight_kg=1.3)
    erp.change_item("N-1", description="Kettle, steel")
    kinds = [(k, d["version"], d["weight_kg"]) for k, d, _ in erp.emitted]
    assert kinds == [("item.created", 1, 1.2), ("item.changed", 2, 1.3), ("item.changed", 3, 1.3)]
    with pytest.raises(SimError) as err:
        erp.create_item("N-1", "again")
    assert (err.value.status, err.value.code) == (409, "already_exists")
    with pytest.raises(SimError) as err:
        erp.create_item("N-2", "odd", "EA", 6)
    assert err.value.code == "validation_failed"


def test_a_case_line_is_ordered_in_cases_and_issued_in_eaches(erp: ErpModel) -> None:
    erp.create_item("N-1", "Kettle", "CS", 6, opening_stock=60)
    order = erp.create_order({}, SHIP_TO, "standard", [{"sku": "N-1", "qty": 2, "uom": "CS"}])
    assert order.lines == [{"line": 1, "sku": "N-1", "qty": 2, "uom": "CS"}]
    erp.release(order.id)
    gi = erp.goods_issue(order.id, [{"line": 1, "qty": 10, "uom": "EA"}], None, None, None)
    assert gi.lines == [{"line": 1, "sku": "N-1", "qty": 10}]  # eaches
    assert erp.stock["N-1"] == 50
    assert erp.backorders[gi.backorder_id].lines == [{"line": 1, "sku": "N-1", "qty": 2}]


def test_a_goods_issue_in_cases_is_converted_and_eaches_posted_as_cases_are_refused(
    erp: ErpModel,
) -> None:
    erp.create_item("N-1", "Kettle", "CS", 6, opening_stock=60)
    order = erp.create_order({}, SHIP_TO, "standard", [{"sku": "N-1", "qty": 2, "uom": "CS"}])
    erp.release(order.id)
    with pytest.raises(SimError) as err:  # 12 eaches posted as 12 cases = 72 eaches
        erp.goods_issue(order.id, [{"line": 1, "qty": 12, "uom": "CS"}], None, None, None)
    assert (err.value.status, err.value.code) == (422, "qty_exceeds_ordered")
    assert err.value.details["issued"] == 72
    gi = erp.goods_issue(order.id, [{"line": 1, "qty": 2, "uom": "CS"}], None, None, None)
    assert gi.lines == [{"line": 1, "sku": "N-1", "qty": 12}] and gi.backorder_id is None


def test_an_inactive_item_cannot_be_ordered(erp: ErpModel) -> None:
    erp.change_item("A-100", active=False)
    with pytest.raises(SimError) as err:
        erp.create_order({}, SHIP_TO, "standard", [{"sku": "A-100", "qty": 1}])
    assert (err.value.status, err.value.code) == (422, "inactive_item")


def test_erp_items_are_read_one_by_one_and_paged_in_change_order() -> None:
    sim = build_erp(ManualClock(), stock={"A-100": 1, "B-200": 1, "C-300": 1})
    client = TestClient(sim.app)
    sim.model.clock.advance(60)
    sim.model.change_item("A-100", description="renamed")
    assert client.get("/items/A-100").json()["version"] == 2
    assert client.get("/items/Z-9").status_code == 404
    first = client.get("/items", params={"limit": 2}).json()
    assert [i["sku"] for i in first["items"]] == ["B-200", "C-300"] and first["has_more"]
    rest = client.get("/items", params={"page_token": first["next_page_token"]}).json()
    assert [i["sku"] for i in rest["items"]] == ["A-100"] and not rest["has_more"]
    order = {**ORDER, "lines": [{"sku": "A-100", "qty": 1, "uom": "BOX"}]}
    assert client.post("/orders", json=order).status_code == 422
    order = {**ORDER, "lines": [{"sku": "A-100", "qty": 1, "uom": "CS"}]}
    assert client.post("/orders", json=order).json()["lines"][0]["uom"] == "CS"


def test_wms_items_are_upserted_and_orders_for_unknown_or_inactive_items_refused() -> None:
    client = TestClient(build_wms(ManualClock(), stock={"A-100": 5}).app)
    body = {
        "order_ref": "SO-000001",
        "ship_to": SHIP_TO,
        "service_level": "standard",
        "lines": [{"line": 1, "sku": "A-100", "qty": 1}, {"line": 2, "sku": "N-1", "qty": 6}],
    }
    refused = client.post("/fulfilment-orders", json=body)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "unknown_item"
    assert refused.json()["error"]["details"] == {"sku": "N-1", "line": 2, "field": "lines.1.sku"}
    first = client.put("/items/N-1", json=ITEM)
    assert first.status_code == 201 and first.json()["each_per_case"] == 6
    again = client.put("/items/N-1", json=ITEM)
    assert again.status_code == 200 and again.json() == first.json()
    assert client.get("/items/N-1").json() == first.json()
    created = client.post("/fulfilment-orders", json=body)
    assert created.status_code == 201 and created.json()["lines"][1]["qty"] == 6  # eaches
    client.put("/items/N-1", json={**ITEM, "active": False})
    inactive = client.post("/fulfilment-orders", json=body)
    assert inactive.json()["error"]["code"] == "inactive_item"
    assert client.put("/items/N-1", json={**ITEM, "weight_kg": 0}).status_code == 422
    assert client.put("/items/N-1", json={**ITEM, "each_per_case": "6"}).status_code == 422
    pasted = client.put("/items/N-1", json={**ITEM, "description": "x" * 240})  # ERP: no limit
    assert pasted.status_code == 422 and pasted.json()["error"]["code"] == "validation_failed"
    assert client.get("/items/Z-9").status_code == 404
