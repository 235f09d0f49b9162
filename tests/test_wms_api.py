"""The WMS over HTTP, in process: statuses, vendor error bodies, idempotency, control plane."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
import yaml
from starlette.testclient import TestClient

from simulators.common.clock import ManualClock
from simulators.common.simulator import Simulator
from simulators.wms.api import build
from simulators.wms.model import WmsModel
from tests.test_wms_model import NEW_SHIP_TO

STOCK = {"A-100": 10, "B-200": 5}
ORDER = {
    "order_ref": "SO-000001",
    "ship_to": {
        "name": "Grace Hopper",
        "street": "2 Compiler Lane",
        "city": "Rotterdam",
        "postal_code": "3011 AA",
        "country": "NL",
    },
    "service_level": "express",
    "lines": [{"line": 1, "sku": "A-100", "qty": 3}],
}
SPEC = Path(__file__).resolve().parent.parent / "contracts" / "openapi" / "wms.yaml"
LABEL = {"tracking_number": "PC000000001", "carrier": "parcelco", "label_id": "LB-000001"}


def make(dedupe: bool = False) -> tuple[Simulator, TestClient]:
    sim = build(ManualClock(), stock=STOCK, dedupe=dedupe)
    return sim, TestClient(sim.app)


@pytest.fixture
def sim() -> Simulator:
    return make()[0]


@pytest.fixture
def client(sim: Simulator) -> TestClient:
    return TestClient(sim.app)


def model(sim: Simulator) -> WmsModel:
    assert isinstance(sim.model, WmsModel)
    return sim.model


def error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def packed_order(sim: Simulator, client: TestClient) -> str:
    fo_id = client.post("/fulfilment-orders", json=ORDER).json()["id"]
    model(sim).pick(fo_id, {1: 3})
    model(sim).pack(fo_id)
    return fo_id


# -- fulfilment orders ------------------------------------------------------------------
def test_create_read_and_list(client: TestClient) -> None:
    created = client.post("/fulfilment-orders", json=ORDER)
    assert created.status_code == 201
    fo = created.json()
    assert fo["id"] == "FO-000001" and fo["status"] == "accepted" and fo["label"] is None
    assert fo["lines"] == [{"line": 1, "sku": "A-100", "qty": 3, "picked_qty": 0, "short_qty": 0}]
    assert client.get("/fulfilment-orders/FO-000001").json() == fo
    assert client.get("/fulfilment-orders", params={"order_ref": "SO-000001"}).json() == {
        "items": [fo]
    }
    assert client.get("/fulfilment-orders", params={"order_ref": "SO-9"}).json() == {"items": []}


def test_unknown_item_is_a_vendor_422_naming_sku_and_line(client: TestClient) -> None:
    body = {
        **ORDER,
        "lines": [{"line": 1, "sku": "A-100", "qty": 1}, {"line": 2, "sku": "Z-999", "qty": 1}],
    }
    response = client.post("/fulfilment-orders", json=body)
    assert response.status_code == 422
    assert error(response)["code"] == "unknown_item"
    assert error(response)["details"] == {"sku": "Z-999", "line": 2, "field": "lines.1.sku"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lines": [{"line": 1, "sku": "A-100", "qty": "3"}]}, "lines.0.qty"),
        ({"lines": [{"line": 1, "sku": "A-100", "qty": 0}]}, "lines.0.qty"),
        ({"lines": []}, "lines"),
        ({"service_level": "overnight"}, "service_level"),
        ({"ship_to": {**ORDER["ship_to"], "country": "nl"}}, "ship_to.country"),
    ],
)
def test_invalid_body_names_the_field(
    client: TestClient, change: dict[str, Any], field: str
) -> None:
    response = client.post("/fulfilment-orders", json={**ORDER, **change})
    assert response.status_code == 422
    err = error(response)
    assert err["code"] == "validation_failed"
    assert field in [e["field"] for e in err["details"]["errors"]]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_malformed_json_is_400(client: TestClient, raw: bytes) -> None:
    response = client.post(
        "/fulfilment-orders", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert error(response)["code"] == "malformed_json"


def test_not_found(client: TestClient) -> None:
    for method, path in [
        ("GET", "/fulfilment-orders/FO-999999"),
        ("POST", "/fulfilment-orders/FO-999999/cancel"),
        ("GET", "/inventory/Z-999"),
        ("GET", "/no-such-route"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert error(response)["code"] == "not_found"


def test_unsupported_method_is_405_with_allow(client: TestClient) -> None:
    response = client.put("/fulfilment-orders")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert error(response)["code"] == "method_not_allowed"
    assert set(client.delete("/webhooks").headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert client.get("/webhooks").status_code == 200  # the refusal shadows nothing


def test_cancel_then_cancel_again(client: TestClient) -> None:
    client.post("/fulfilment-orders", json=ORDER)
    first = client.post("/fulfilment-orders/FO-000001/cancel")
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    again = client.post("/fulfilment-orders/FO-000001/cancel")
    assert again.status_code == 409
    assert error(again)["code"] == "invalid_transition"
    assert error(again)["details"]["status"] == "cancelled"


def test_label_needs_a_packed_order(client: TestClient) -> None:
    client.post("/fulfilment-orders", json=ORDER)
    response = client.post("/fulfilment-orders/FO-000001/label", json=LABEL)
    assert response.status_code == 409
    assert error(response)["details"]["status"] == "accepted"


def test_label_is_idempotent_and_refuses_a_mismatch(sim: Simulator, client: TestClient) -> None:
    fo_id = packed_order(sim, client)
    path = f"/fulfilment-orders/{fo_id}/label"
    first = client.post(path, json=LABEL)
    assert first.status_code == 200
    assert first.json()["status"] == "labelled" and first.json()["label"] == LABEL
    assert client.post(path, json=LABEL).json() == first.json()
    other = client.post(path, json={**LABEL, "tracking_number": "PC000000002"})
    assert other.status_code == 409
    assert error(other)["code"] == "label_mismatch"


def test_label_body_is_validated(sim: Simulator, client: TestClient) -> None:
    fo_id = packed_order(sim, client)
    response = client.post(f"/fulfilment-orders/{fo_id}/label", json={"carrier": "parcelco"})
    assert response.status_code == 422
    fields = {e["field"] for e in error(response)["details"]["errors"]}
    assert fields == {"tracking_number", "label_id"}


# -- ship-to changes ---------------------------------------------------------------------
def test_patch_changes_the_ship_to_and_get_shows_it(client: TestClient, sim: Simulator) -> None:
    created = client.post("/fulfilment-orders", json=ORDER).json()
    response = client.patch("/fulfilment-orders/FO-000001", json={"ship_to": NEW_SHIP_TO})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed == {**created, "ship_to": NEW_SHIP_TO}  # status and history untouched
    assert client.get("/fulfilment-orders/FO-000001").json() == changed
    assert model(sim).emitted == []  # the WMS announces nothing
    entry = client.get("/_sim/journal", params={"path": "/fulfilment-orders/"}).json()["items"]
    assert [(e["method"], e["status"], e["ref"]) for e in entry] == [
        ("PATCH", 200, "SO-000001"),
        ("GET", 200, "SO-000001"),
    ]


def test_patch_a_packed_order_then_label_it(sim: Simulator, client: TestClient) -> None:
    fo_id = packed_order(sim, client)
    path = f"/fulfilment-orders/{fo_id}"
    assert client.patch(path, json={"ship_to": NEW_SHIP_TO}).status_code == 200
    assert client.post(f"{path}/label", json=LABEL).json()["ship_to"] == NEW_SHIP_TO


def test_patch_after_the_label_is_409(sim: Simulator, client: TestClient) -> None:
    fo_id = packed_order(sim, client)
    path = f"/fulfilment-orders/{fo_id}"
    client.post(f"{path}/label", json=LABEL)
    response = client.patch(path, json={"ship_to": NEW_SHIP_TO})
    assert response.status_code == 409
    err = error(response)
    assert err["code"] == "invalid_transition"
    assert err["details"] == {"id": fo_id, "status": "labelled"}
    assert client.get(path).json()["ship_to"] == ORDER["ship_to"]


def test_patch_an_unknown_order_is_404_whatever_the_body(client: TestClient) -> None:
    for body in ({"ship_to": NEW_SHIP_TO}, {}):
        response = client.patch("/fulfilment-orders/FO-999999", json=body)
        assert response.status_code == 404
        assert error(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "ship_to"),
        ({"ship_to": "2 Compiler Lane"}, "ship_to"),
        ({"ship_to": {**NEW_SHIP_TO, "country": "nl"}}, "ship_to.country"),
        ({"ship_to": {**NEW_SHIP_TO, "name": ""}}, "ship_to.name"),
        ({"ship_to": {k: v for k, v in NEW_SHIP_TO.items() if k != "street"}}, "ship_to.street"),
    ],
)
def test_patch_with_a_bad_body_is_422_and_changes_nothing(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    created = client.post("/fulfilment-orders", json=ORDER).json()
    response = client.patch("/fulfilment-orders/FO-000001", json=body)
    assert response.status_code == 422
    err = error(response)
    assert err["code"] == "validation_failed"
    assert field in [e["field"] for e in err["details"]["errors"]]
    assert client.get("/fulfilment-orders/FO-000001").json() == created


def test_order_path_allows_get_and_patch(client: TestClient) -> None:
    response = client.put("/fulfilment-orders/FO-000001")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH"}


# -- inventory --------------------------------------------------------------------------
def test_inventory_reflects_picks(sim: Simulator, client: TestClient) -> None:
    packed_order(sim, client)
    assert client.get("/inventory").json() == {
        "items": [{"sku": "A-100", "on_hand": 7}, {"sku": "B-200", "on_hand": 5}]
    }
    assert client.get("/inventory/A-100").json() == {"sku": "A-100", "on_hand": 7}


# -- idempotency ------------------------------------------------------------------------
def test_without_dedupe_a_repeated_key_creates_two_orders() -> None:
    sim, client = make(dedupe=False)
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/fulfilment-orders", json=ORDER, headers=headers)
    second = client.post("/fulfilment-orders", json=ORDER, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert "idempotent-replayed" not in second.headers
    assert model(sim).by_ref["SO-000001"] == ["FO-000001", "FO-000002"]


def test_with_dedupe_a_repeated_key_replays() -> None:
    sim, client = make(dedupe=True)
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/fulfilment-orders", json=ORDER, headers=headers)
    second = client.post("/fulfilment-orders", json=ORDER, headers=headers)
    assert second.status_code == 201 and second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert model(sim).by_ref["SO-000001"] == ["FO-000001"]
    reused = client.post("/fulfilment-orders", json={**ORDER, "order_ref": "SO-2"}, headers=headers)
    assert reused.status_code == 422
    assert error(reused)["code"] == "idempotency_key_reused"


# -- correlation and journal ------------------------------------------------------------
def test_correlation_id_is_echoed_and_journalled(client: TestClient) -> None:
    response = client.post("/fulfilment-orders", json=ORDER, headers={"X-Correlation-Id": "c-42"})
    assert response.headers["x-correlation-id"] == "c-42"
    client.get("/fulfilment-orders/FO-000001")
    journal = client.get("/_sim/journal", params={"correlation_id": "c-42"}).json()["items"]
    assert len(journal) == 1
    entry = journal[0]
    assert entry["direction"] == "in" and entry["system"] == "wms"
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/fulfilment-orders", 201)
    assert entry["ref"] == "SO-000001"
    reads = client.get("/_sim/journal", params={"path": "/fulfilment-orders/"}).json()["items"]
    assert [e["ref"] for e in reads] == ["SO-000001"]


# -- control plane ----------------------------------------------------------------------
def test_state_and_reset(sim: Simulator, client: TestClient) -> None:
    packed_order(sim, client)
    model(sim).receive("RC-000001", [{"sku": "C-300", "qty": 4}])
    state = client.get("/_sim/state").json()
    assert state["orders"]["FO-000001"]["status"] == "packed"
    assert state["stock"] == {"A-100": 7, "B-200": 5, "C-300": 4}
    assert client.post("/_sim/reset").status_code == 204
    state = client.get("/_sim/state").json()
    assert sorted(state.pop("items")) == sorted(STOCK)  # the cutover's registry, C-300 gone
    assert state == {
        "orders": {},
        "by_ref": {},
        "stock": STOCK,
        "adjustments": [],
        "receipts": [],
        "return_receipts": [],
        "sites": {"DC1": STOCK},
        "transfers": [],
    }
    assert client.get("/_sim/journal").json() == {"items": []}


def test_health_names_the_system(client: TestClient) -> None:
    assert client.get("/_sim/health").json() == {
        "system": "wms",
        "status": "ok",
        "clock": "2026-11-23T00:00:00Z",
        "api_version": "v1",
    }


def test_webhook_subscription_validates_event_types(client: TestClient) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["order.shipped"], "secret": "s"}
    created = client.post("/webhooks", json=body)
    assert created.status_code == 201 and "secret" not in created.json()
    wrong = client.post("/webhooks", json={**body, "events": ["order.released"]})
    assert wrong.status_code == 422
    assert error(wrong)["code"] == "unknown_event_type"


def test_webhook_deliveries_match_the_published_event_schemas(
    sim: Simulator, client: TestClient
) -> None:
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["*"], "secret": "s"}
    client.post("/webhooks", json=hook)
    fo_id = packed_order(sim, client)
    client.post(f"/fulfilment-orders/{fo_id}/label", json=LABEL)
    model(sim).ship(fo_id)
    model(sim).adjust("A-100", -1, "damage")
    model(sim).receive("RC-000001", [{"sku": "A-100", "qty": 2}])
    events = [orjson.loads(d.body) for d in sim.webhooks.deliveries]
    assert [e["type"] for e in events] == [
        "order.picked",
        "order.packed",
        "order.shipped",
        "inventory.adjusted",
        "receipt.confirmed",
    ]
    # The contract's event schemas are plain JSON Schema (no ``nullable``): Draft 4 reads them.
    components = yaml.safe_load(SPEC.read_text())["components"]
    validator = jsonschema_rs.Draft4Validator(
        {"$ref": "#/components/schemas/Event", "components": components}
    )
    for event in events:
        validator.validate(event)
