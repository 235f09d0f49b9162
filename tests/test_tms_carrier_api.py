"""The TMS and carrier over HTTP, in process: statuses, vendor error bodies, idempotent replays."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

import simulators
from simulators.carrier.model import CarrierModel
from simulators.common.clock import ManualClock
from simulators.common.simulator import Simulator

NL = {
    "name": "Ada Lovelace",
    "street": "Keizersgracht 1",
    "city": "Amsterdam",
    "postal_code": "1015 CJ",
    "country": "NL",
}
PLAN = {
    "order_ref": "SO-000001",
    "fulfilment_order_id": "FO-000001",
    "ship_to": NL,
    "service_level": "express",
    "packages": [{"weight_kg": 2.5}],
}
LABEL = {
    "shipment_ref": "SH-000001",
    "service": "ground",
    "ship_to": NL,
    "packages": [{"weight_kg": 2.5, "contents": [{"sku": "A-100", "qty": 3}]}],
}


@pytest.fixture
def tms() -> Simulator:
    return simulators.build("tms", ManualClock())


@pytest.fixture
def carrier() -> Simulator:
    return simulators.build("carrier", ManualClock())


def client(sim: Simulator) -> TestClient:
    return TestClient(sim.app)


def error(response: Any) -> dict[str, Any]:
    """The vendor error in a response, after checking its shape."""
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


@pytest.mark.parametrize("system", ["tms", "carrier"])
def test_build_ignores_options_meant_for_other_systems(system: str) -> None:
    sim = simulators.build(system, ManualClock(), stock={"A-100": 5}, dedupe=False)
    assert sim.honour_idempotency


# -- TMS --------------------------------------------------------------------------------


def test_plan_read_and_cancel_a_shipment(tms: Simulator) -> None:
    http = client(tms)
    created = http.post("/shipments", json=PLAN)
    assert created.status_code == 201
    shipment = created.json()
    assert shipment["id"] == "SH-000001"
    assert (shipment["service"], shipment["rate"]["amount"]) == ("express", "11.90")
    assert http.get("/shipments/SH-000001").json() == shipment
    cancelled = http.post("/shipments/SH-000001/cancel")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    again = http.post("/shipments/SH-000001/cancel")
    assert again.status_code == 409
    assert error(again)["details"] == {"status": "cancelled"}


def test_a_settled_shipment_cannot_be_cancelled(tms: Simulator) -> None:
    http = client(tms)
    http.post("/shipments", json=PLAN)
    tms.model.settle("SH-000001")  # type: ignore[attr-defined]
    refused = http.post("/shipments/SH-000001/cancel")
    assert (refused.status_code, error(refused)["code"]) == (409, "invalid_transition")


def test_unknown_shipment_is_a_vendor_404(tms: Simulator) -> None:
    response = client(tms).get("/shipments/SH-999999")
    assert response.status_code == 404
    assert error(response) == {
        "code": "not_found",
        "message": "shipment SH-999999 does not exist",
        "details": {"id": "SH-999999"},
    }


def test_tender_rejected_for_a_us_address(tms: Simulator) -> None:
    response = client(tms).post("/shipments", json={**PLAN, "ship_to": {**NL, "country": "US"}})
    assert response.status_code == 422
    assert error(response)["code"] == "tender_rejected"


def test_an_invalid_plan_names_the_field(tms: Simulator) -> None:
    response = client(tms).post("/shipments", json={**PLAN, "packages": [{"weight_kg": "2.5"}]})
    assert response.status_code == 422
    err = error(response)
    assert err["code"] == "validation_failed"
    assert [e["field"] for e in err["details"]["errors"]] == ["packages.0.weight_kg"]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
@pytest.mark.parametrize(("system", "path"), [("tms", "/shipments"), ("carrier", "/labels")])
def test_malformed_json_is_400(system: str, path: str, body: bytes) -> None:
    sim = simulators.build(system, ManualClock())
    response = client(sim).post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert error(response)["code"] == "malformed_json"


def test_correlation_id_is_echoed_and_journalled_with_the_order_ref(tms: Simulator) -> None:
    response = client(tms).post("/shipments", json=PLAN, headers={"X-Correlation-Id": "corr-1"})
    assert response.headers["x-correlation-id"] == "corr-1"
    (entry,) = tms.journal.query(correlation_id="corr-1")
    assert (entry.direction, entry.method, entry.path) == ("in", "POST", "/shipments")
    assert (entry.status, entry.ref) == (201, "SO-000001")


def test_a_replayed_plan_books_one_shipment(tms: Simulator) -> None:
    http = client(tms)
    key = {"Idempotency-Key": "plan-SO-000001"}
    first = http.post("/shipments", json=PLAN, headers=key)
    replay = http.post("/shipments", json=PLAN, headers=key)
    assert replay.headers["idempotent-replayed"] == "true"
    assert (replay.status_code, replay.json()) == (201, first.json())
    assert list(tms.model.shipments) == ["SH-000001"]  # type: ignore[attr-defined]


def test_unsupported_method_is_405_listing_every_allowed_method(tms: Simulator) -> None:
    response = client(tms).options("/webhooks")
    assert (response.status_code, error(response)["code"]) == (405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


def test_webhooks_accept_only_tms_events(tms: Simulator) -> None:
    http = client(tms)
    body = {"url": "http://127.0.0.1:9/hook", "events": ["freight.settled"], "secret": "s"}
    assert http.post("/webhooks", json=body).status_code == 201
    refused = http.post("/webhooks", json={**body, "events": ["tracking.updated"]})
    assert (refused.status_code, error(refused)["code"]) == (422, "unknown_event_type")


# -- carrier ----------------------------------------------------------------------------


def labels(sim: Simulator) -> CarrierModel:
    return sim.model  # type: ignore[return-value]


def test_a_retried_label_purchase_buys_one_label(carrier: Simulator) -> None:
    http = client(carrier)
    key = {"Idempotency-Key": "label-SH-000001"}
    first = http.post("/labels", json=LABEL, headers=key)
    replay = http.post("/labels", json=LABEL, headers=key)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert replay.headers["idempotent-replayed"] == "true"
    assert (replay.status_code, replay.json()) == (201, first.json())
    assert labels(carrier).by_shipment == {"SH-000001": ["LB-000001"]}


def test_without_a_key_a_retry_buys_a_second_label(carrier: Simulator) -> None:
    http = client(carrier)
    first, second = (http.post("/labels", json=LABEL).json() for _ in range(2))
    assert first["tracking_number"] != second["tracking_number"]
    assert labels(carrier).by_shipment == {"SH-000001": ["LB-000001", "LB-000002"]}


def test_a_key_reused_for_another_body_is_422(carrier: Simulator) -> None:
    http = client(carrier)
    key = {"Idempotency-Key": "label-SH-000001"}
    http.post("/labels", json=LABEL, headers=key)
    reused = http.post("/labels", json={**LABEL, "service": "express"}, headers=key)
    assert (reused.status_code, error(reused)["code"]) == (422, "idempotency_key_reused")
    assert len(labels(carrier).labels) == 1


def test_blank_postal_code_is_address_invalid(carrier: Simulator) -> None:
    body = {**LABEL, "ship_to": {**NL, "postal_code": ""}}
    response = client(carrier).post("/labels", json=body)
    assert response.status_code == 422
    err = error(response)
    assert (err["code"], err["details"]) == ("address_invalid", {"field": "ship_to.postal_code"})


def test_void_until_picked_up(carrier: Simulator) -> None:
    http = client(carrier)
    unused = http.post("/labels", json=LABEL).json()
    used = http.post("/labels", json=LABEL).json()
    labels(carrier).scan(used["tracking_number"], "picked_up")
    voided = http.post(f"/labels/{unused['id']}/void")
    assert (voided.status_code, voided.json()["status"]) == (200, "voided")
    refused = http.post(f"/labels/{used['id']}/void")
    assert refused.status_code == 409
    assert error(refused)["details"] == {"status": "in_transit"}


def test_tracking_shows_the_scans(carrier: Simulator) -> None:
    http = client(carrier)
    label = http.post("/labels", json=LABEL).json()
    labels(carrier).scan(label["tracking_number"], "picked_up")
    tracking = http.get(f"/tracking/{label['tracking_number']}")
    assert tracking.status_code == 200
    assert tracking.json() == {
        "tracking_number": "PC000000001",
        "status": "in_transit",
        "events": [{"status": "picked_up", "occurred_at": "2026-11-23T00:00:00Z", "sequence": 1}],
    }
    assert http.get(f"/labels/{label['id']}").json()["events"] == tracking.json()["events"]


@pytest.mark.parametrize("path", ["/labels/LB-999999", "/tracking/PC999999999"])
def test_unknown_label_or_parcel_is_404(carrier: Simulator, path: str) -> None:
    response = client(carrier).get(path)
    assert (response.status_code, error(response)["code"]) == (404, "not_found")


def test_label_requests_are_journalled_with_the_shipment_ref(carrier: Simulator) -> None:
    http = client(carrier)
    http.post("/labels", json=LABEL, headers={"X-Correlation-Id": "corr-7"})
    (entry,) = carrier.journal.query(correlation_id="corr-7")
    assert (entry.path, entry.status, entry.ref) == ("/labels", 201, "SH-000001")
