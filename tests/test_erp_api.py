"""The ERP through HTTP, in process: statuses, vendor error bodies, idempotency, journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
import yaml
from starlette.requests import Request
from starlette.testclient import TestClient

from simulators.common.clock import ManualClock
from simulators.common.idempotency import url_path
from simulators.common.simulator import Simulator
from simulators.erp.api import build
from tests.test_erp_model import NEW_SHIP_TO

ORDER = {
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "ship_to": {
        "name": "Ada Lovelace",
        "street": "12 Analytical Way",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
    "service_level": "express",
    "lines": [{"sku": "A-100", "qty": 3}, {"sku": "B-200", "qty": 1}],
}
SUBSCRIPTION = {"url": "http://127.0.0.1:9/hook", "events": ["order.released"], "secret": "s3cr3t"}
SPEC = Path(__file__).resolve().parent.parent / "contracts" / "openapi" / "erp.yaml"


@pytest.fixture
def sim() -> Simulator:
    return build(ManualClock(), stock={"A-100": 100, "B-200": 50})


@pytest.fixture
def client(sim: Simulator) -> TestClient:
    return TestClient(sim.app)


def create(client: TestClient, **changes: Any) -> dict[str, Any]:
    response = client.post("/orders", json={**ORDER, **changes})
    assert response.status_code == 201, response.text
    return response.json()


def released(client: TestClient) -> dict[str, Any]:
    order = create(client)
    return client.post(f"/orders/{order['id']}/release").json()


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The vendor error body, after checking its status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


# -- orders ---------------------------------------------------------------------------------
def test_create_and_read_an_order(client: TestClient) -> None:
    order = create(client)
    assert order["id"] == "SO-000001"
    assert order["status"] == "open"
    assert order["lines"][1] == {"line": 2, "sku": "B-200", "qty": 1, "uom": "EA"}
    assert order["tracking_number"] is None
    assert client.get("/orders/SO-000001").json() == order


def test_unknown_order_and_route_are_404(client: TestClient) -> None:
    assert error(client.get("/orders/SO-999999"), 404, "not_found")["details"] == {
        "id": "SO-999999"
    }
    error(client.post("/orders/SO-999999/release"), 404, "not_found")
    error(client.post("/orders/SO-999999/goods-issue", json={"lines": []}), 404, "not_found")
    error(client.get("/nowhere"), 404, "not_found")


def test_other_methods_are_405_with_allow(client: TestClient) -> None:
    response = client.delete("/orders")
    error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == {"POST", "GET", "HEAD"}
    assert client.get("/orders/SO-000001/release").headers["allow"] == "POST"
    assert set(client.put("/webhooks").headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


def test_list_filters_by_status_and_limit(client: TestClient) -> None:
    first = create(client)
    create(client)
    client.post(f"/orders/{first['id']}/release")
    items = client.get("/orders", params={"status": "released"}).json()["items"]
    assert [o["id"] for o in items] == [first["id"]]
    assert len(client.get("/orders", params={"limit": 1}).json()["items"]) == 1
    error(client.get("/orders", params={"limit": 0}), 422, "validation_failed")
    error(client.get("/orders", params={"status": "lost"}), 422, "validation_failed")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lines": []}, "lines"),
        ({"lines": [{"sku": "A-100", "qty": "3"}]}, "lines.0.qty"),
        ({"lines": [{"sku": "A-100", "qty": 0}]}, "lines.0.qty"),
        ({"service_level": "overnight"}, "service_level"),
        ({"ship_to": {**ORDER["ship_to"], "country": "Germany"}}, "ship_to.country"),
        ({"customer": None}, "customer"),
    ],
)
def test_invalid_order_bodies_name_the_field(
    client: TestClient, changes: dict[str, Any], field: str
) -> None:
    err = error(client.post("/orders", json={**ORDER, **changes}), 422, "validation_failed")
    assert field in [e["field"] for e in err["details"]["errors"]]


def test_unknown_sku_is_a_business_refusal(client: TestClient) -> None:
    response = client.post("/orders", json={**ORDER, "lines": [{"sku": "Z-999", "qty": 1}]})
    assert error(response, 422, "unknown_sku")["details"]["field"] == "lines.0.sku"


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_malformed_json_is_400(client: TestClient, raw: bytes) -> None:
    response = client.post("/orders", content=raw, headers={"content-type": "application/json"})
    error(response, 400, "malformed_json")


def test_release_and_cancel_conflicts_carry_the_status(client: TestClient) -> None:
    order = released(client)
    assert order["status"] == "released"
    err = error(client.post(f"/orders/{order['id']}/release"), 409, "invalid_status")
    assert err["details"]["status"] == "released"
    assert client.post(f"/orders/{order['id']}/cancel").json()["status"] == "cancelled"
    err = error(client.post(f"/orders/{order['id']}/cancel"), 409, "invalid_status")
    assert err["details"]["status"] == "cancelled"


# -- ship-to changes -------------------------------------------------------------------------
@pytest.mark.parametrize("release_first", [False, True])
def test_patch_changes_the_ship_to_and_get_shows_it(
    client: TestClient, sim: Simulator, release_first: bool
) -> None:
    order = released(client) if release_first else create(client)
    assert order["updated_at"] == order["created_at"]  # the last change: its creation
    sim.clock.advance(90)  # type: ignore[attr-defined]
    response = client.patch(f"/orders/{order['id']}", json={"ship_to": NEW_SHIP_TO})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["ship_to"] == NEW_SHIP_TO
    assert changed["updated_at"] == "2026-11-23T00:01:30Z"
    assert changed["status"] == order["status"]
    assert changed["status_history"] == order["status_history"]
    assert client.get(f"/orders/{order['id']}").json() == changed


def test_patch_emits_order_updated_once_with_the_new_address(
    client: TestClient, sim: Simulator
) -> None:
    client.post("/webhooks", json={**SUBSCRIPTION, "events": ["order.updated"]})
    order = released(client)
    headers = {"X-Correlation-Id": "corr-addr"}
    client.patch(f"/orders/{order['id']}", json={"ship_to": NEW_SHIP_TO}, headers=headers)
    deliveries = client.get("/_sim/deliveries").json()["items"]
    assert [(d["event_type"], d["ref"]) for d in deliveries] == [("order.updated", order["id"])]
    (delivery,) = sim.webhooks.deliveries
    event = orjson.loads(delivery.body)
    assert event["data"] == {
        "order_id": order["id"],
        "ship_to": NEW_SHIP_TO,
        "changed": ["ship_to"],
        "updated_at": "2026-11-23T00:00:00Z",
    }
    assert delivery.correlation_id == "corr-addr"
    # The event schemas are plain JSON Schema (no ``nullable`` in this one): Draft 4 reads it.
    components = yaml.safe_load(SPEC.read_text())["components"]
    validator = jsonschema_rs.Draft4Validator(
        {"$ref": "#/components/schemas/Event", "components": components}
    )
    validator.validate(event)


def test_patch_after_shipping_or_cancelling_is_409(client: TestClient) -> None:
    shipped = released(client)
    client.post(f"/orders/{shipped['id']}/goods-issue", json={"lines": [{"line": 1, "qty": 3}]})
    cancelled = create(client)
    client.post(f"/orders/{cancelled['id']}/cancel")
    for order, status in ((shipped, "shipped"), (cancelled, "cancelled")):
        response = client.patch(f"/orders/{order['id']}", json={"ship_to": NEW_SHIP_TO})
        err = error(response, 409, "invalid_status")
        assert err["details"] == {"status": status, "order_id": order["id"]}
        unchanged = client.get(f"/orders/{order['id']}").json()
        assert unchanged["ship_to"] == ORDER["ship_to"]
        assert unchanged["updated_at"] == unchanged["status_history"][-1]["at"]


def test_patch_an_unknown_order_is_404_whatever_the_body(client: TestClient) -> None:
    error(client.patch("/orders/SO-999999", json={"ship_to": NEW_SHIP_TO}), 404, "not_found")
    error(client.patch("/orders/SO-999999", json={"ship_to": None}), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "ship_to"),
        ({"ship_to": None}, "ship_to"),
        ({"ship_to": {**NEW_SHIP_TO, "country": "Germany"}}, "ship_to.country"),
        ({"ship_to": {**NEW_SHIP_TO, "street": ""}}, "ship_to.street"),
        ({"ship_to": {k: v for k, v in NEW_SHIP_TO.items() if k != "city"}}, "ship_to.city"),
        ({"ship_to": {**NEW_SHIP_TO, "postal_code": 20095}}, "ship_to.postal_code"),
    ],
)
def test_patch_with_a_bad_body_is_422_and_changes_nothing(
    client: TestClient, sim: Simulator, body: dict[str, Any], field: str
) -> None:
    order = create(client)
    response = client.patch(f"/orders/{order['id']}", json=body)
    err = error(response, 422, "validation_failed")
    assert field in [e["field"] for e in err["details"]["errors"]]
    assert client.get(f"/orders/{order['id']}").json() == order
    assert sim.model.emitted == []  # type: ignore[attr-defined]


def test_patch_with_malformed_json_is_400(client: TestClient) -> None:
    order = create(client)
    response = client.patch(
        f"/orders/{order['id']}", content=b"{not json", headers={"content-type": "application/json"}
    )
    error(response, 400, "malformed_json")


def test_patch_honours_idempotency_key(client: TestClient, sim: Simulator) -> None:
    client.post("/webhooks", json={**SUBSCRIPTION, "events": ["order.updated"]})
    order = create(client)
    path, headers = f"/orders/{order['id']}", {"Idempotency-Key": "addr-1"}
    first = client.patch(path, json={"ship_to": NEW_SHIP_TO}, headers=headers)
    replay = client.patch(path, json={"ship_to": NEW_SHIP_TO}, headers=headers)
    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"
    assert len(sim.webhooks.deliveries) == 1  # the replay did not change the order again
    other = {"ship_to": {**NEW_SHIP_TO, "city": "Munich"}}
    error(client.patch(path, json=other, headers=headers), 422, "idempotency_key_reused")
    assert client.get(path).json()["ship_to"]["city"] == "Hamburg"


def test_order_path_allows_get_and_patch(client: TestClient) -> None:
    response = client.put("/orders/SO-000001")
    error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH"}


# -- postings -------------------------------------------------------------------------------
def test_short_goods_issue_and_its_backorder(client: TestClient) -> None:
    order = released(client)
    body = {"lines": [{"line": 1, "qty": 2}], "tracking_number": "PC1", "carrier": "parcelco"}
    response = client.post(f"/orders/{order['id']}/goods-issue", json=body)
    assert response.status_code == 201, response.text
    gi = response.json()
    assert gi["lines"][0] == {"line": 1, "sku": "A-100", "qty": 2}
    assert gi["shipment_id"] is None
    backorder = client.get(f"/backorders/{gi['backorder_id']}").json()
    assert backorder["lines"] == [
        {"line": 1, "sku": "A-100", "qty": 1},
        {"line": 2, "sku": "B-200", "qty": 1},
    ]
    assert client.get("/inventory/A-100").json() == {"sku": "A-100", "on_hand": 98}
    assert client.get(f"/orders/{order['id']}").json()["status"] == "shipped"
    err = error(client.post(f"/orders/{order['id']}/goods-issue", json=body), 409, "already_issued")
    assert err["details"]["status"] == "shipped"
    error(client.get("/backorders/BO-999999"), 404, "not_found")


def test_goods_issue_refusals(client: TestClient) -> None:
    open_order = create(client)
    path = f"/orders/{open_order['id']}/goods-issue"
    error(client.post(path, json={"lines": []}), 409, "invalid_status")
    client.post(f"/orders/{open_order['id']}/release")
    error(client.post(path, json={"lines": [{"line": 9, "qty": 1}]}), 422, "validation_failed")
    error(client.post(path, json={"lines": [{"line": 1, "qty": 9}]}), 422, "qty_exceeds_ordered")
    error(client.post(path, json={"lines": [{"line": 1, "qty": -1}]}), 422, "validation_failed")
    error(client.post(path, json={}), 422, "validation_failed")


def test_tracking_delivers_a_shipped_order(client: TestClient) -> None:
    order = released(client)
    client.post(f"/orders/{order['id']}/goods-issue", json={"lines": [{"line": 1, "qty": 3}]})
    milestone = {
        "tracking_number": "PC1",
        "status": "delivered",
        "occurred_at": "2026-11-24T14:02:00Z",
    }
    delivered = client.post(f"/orders/{order['id']}/tracking", json=milestone).json()
    assert delivered["status"] == "delivered"
    assert delivered["tracking_history"] == [
        {
            "status": "delivered",
            "occurred_at": "2026-11-24T14:02:00Z",
            "tracking_number": "PC1",
            "posted_at": "2026-11-23T00:00:00Z",
        }
    ]
    bad = {**milestone, "status": "lost"}
    error(client.post(f"/orders/{order['id']}/tracking", json=bad), 422, "validation_failed")
    bad = {**milestone, "occurred_at": "yesterday"}
    error(client.post(f"/orders/{order['id']}/tracking", json=bad), 422, "validation_failed")


def test_tracking_a_cancelled_order_is_409(client: TestClient) -> None:
    order = create(client)
    client.post(f"/orders/{order['id']}/cancel")
    milestone = {
        "tracking_number": "PC1",
        "status": "in_transit",
        "occurred_at": "2026-11-24T14:02:00Z",
    }
    error(client.post(f"/orders/{order['id']}/tracking", json=milestone), 409, "invalid_status")


def test_freight_accrual(client: TestClient) -> None:
    order = create(client)
    body = {
        "order_id": order["id"],
        "shipment_id": "SH-1",
        "amount": {"amount": "12.40", "currency": "EUR"},
    }
    response = client.post("/freight-accruals", json=body)
    assert response.status_code == 201
    assert response.json()["id"] == "FA-000001"
    error(
        client.post("/freight-accruals", json={**body, "order_id": "SO-999999"}), 404, "not_found"
    )
    bad = {**body, "amount": {"amount": "12,40", "currency": "EUR"}}
    error(client.post("/freight-accruals", json=bad), 422, "validation_failed")


def test_adjustments_receipts_and_inventory(client: TestClient) -> None:
    adjustment = {"sku": "B-200", "delta": -5, "reason": "damage", "reference": "CC-1"}
    response = client.post("/inventory/adjustments", json=adjustment)
    assert response.status_code == 201
    assert response.json()["on_hand"] == 45
    too_many = {**adjustment, "delta": -46}
    error(client.post("/inventory/adjustments", json=too_many), 422, "insufficient_stock")
    receipt = {"reference": "RC-1", "lines": [{"sku": "B-200", "qty": 10}]}
    assert client.post("/goods-receipts", json=receipt).json()["id"] == "GR-000001"
    assert client.get("/inventory").json()["items"] == [
        {"sku": "A-100", "on_hand": 100},
        {"sku": "B-200", "on_hand": 55},
    ]
    error(client.get("/inventory/Z-999"), 404, "not_found")


# -- idempotency, correlation, journal ------------------------------------------------------
@pytest.mark.parametrize("path", ["/orders/SO-1", "/a?b", "/a#b", "/a\\b", "/x%y", "/é", "//a"])
def test_the_idempotency_scope_names_the_path_as_starlettes_url_does(path: str) -> None:
    scope = {"type": "http", "path": path, "headers": [(b"host", b"127.0.0.1:7101")]}
    assert url_path(scope) == Request(scope).url.path


def test_idempotency_key_replays_the_first_response(client: TestClient, sim: Simulator) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/orders", json=ORDER, headers=headers)
    replay = client.post("/orders", json=ORDER, headers=headers)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(sim.model.orders) == 1  # type: ignore[attr-defined]


def test_idempotency_key_reused_for_another_body_is_422(client: TestClient) -> None:
    headers = {"Idempotency-Key": "k-1"}
    client.post("/orders", json=ORDER, headers=headers)
    response = client.post("/orders", json={**ORDER, "service_level": "standard"}, headers=headers)
    error(response, 422, "idempotency_key_reused")


def test_replayed_refusal_stays_a_refusal(client: TestClient) -> None:
    order = released(client)
    headers = {"Idempotency-Key": "rel"}
    first = client.post(f"/orders/{order['id']}/release", headers=headers)
    replay = client.post(f"/orders/{order['id']}/release", headers=headers)
    assert (first.status_code, replay.status_code) == (409, 409)
    assert replay.headers["idempotent-replayed"] == "true"


def test_correlation_id_is_echoed_and_journalled(client: TestClient) -> None:
    response = client.post("/orders", json=ORDER, headers={"X-Correlation-Id": "corr-42"})
    assert response.headers["x-correlation-id"] == "corr-42"
    client.post("/orders/SO-000001/release", headers={"X-Correlation-Id": "corr-43"})
    entries = client.get("/_sim/journal", params={"correlation_id": "corr-42"}).json()["items"]
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["direction"], entry["method"], entry["path"]) == ("in", "POST", "/orders")
    assert (entry["status"], entry["ref"], entry["system"]) == (201, "SO-000001", "erp")
    refs = client.get("/_sim/journal", params={"ref": "SO-000001"}).json()["items"]
    assert [e["correlation_id"] for e in refs] == ["corr-42", "corr-43"]


# -- webhooks and control plane -------------------------------------------------------------
def test_webhook_subscriptions(client: TestClient) -> None:
    response = client.post("/webhooks", json=SUBSCRIPTION)
    assert response.status_code == 201
    sub = response.json()
    assert sub["id"] == "WH-0001"
    assert "secret" not in sub
    assert client.get("/webhooks").json() == {"items": [sub]}
    unknown = {**SUBSCRIPTION, "events": ["order.exploded"]}
    error(client.post("/webhooks", json=unknown), 422, "unknown_event_type")
    error(client.post("/webhooks", json={**SUBSCRIPTION, "secret": ""}), 422, "validation_failed")
    assert client.delete(f"/webhooks/{sub['id']}").status_code == 204
    error(client.delete(f"/webhooks/{sub['id']}"), 404, "not_found")


def test_release_queues_a_delivery_for_subscribers(client: TestClient) -> None:
    client.post("/webhooks", json=SUBSCRIPTION)
    order = create(client)
    client.post(f"/orders/{order['id']}/release", headers={"X-Correlation-Id": "corr-7"})
    client.post(f"/orders/{order['id']}/cancel")  # not subscribed
    deliveries = client.get("/_sim/deliveries").json()["items"]
    assert [(d["event_type"], d["ref"], d["status"]) for d in deliveries] == [
        ("order.released", order["id"], "pending")
    ]


def test_state_and_reset(client: TestClient) -> None:
    order = released(client)
    client.post("/webhooks", json=SUBSCRIPTION)
    client.post("/inventory/adjustments", json={"sku": "A-100", "delta": -1, "reason": "shrink"})
    state = client.get("/_sim/state").json()
    assert [o["id"] for o in state["orders"]] == [order["id"]]
    assert state["stock"] == {"A-100": 99, "B-200": 50}
    assert client.post("/_sim/reset").status_code == 204
    state = client.get("/_sim/state").json()
    assert state["orders"] == [] and state["adjustments"] == []
    assert state["stock"] == {"A-100": 100, "B-200": 50}
    assert client.get("/_sim/journal").json() == {"items": []}
    assert client.get("/webhooks").json() == {"items": []}


def test_health_and_clock(client: TestClient) -> None:
    assert client.get("/_sim/health").json() == {
        "system": "erp",
        "status": "ok",
        "clock": "2026-11-23T00:00:00Z",
        "api_version": "v1",
    }
    assert client.get("/_sim/clock").json()["virtual_seconds"] == 0
