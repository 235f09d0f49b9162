"""Return labels: one per RMA, paid, on every API version; the parcel's scans on the way back
are ``tracking.updated`` filed under the RMA, and outbound labels never see them."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from simulators.carrier.api import API_VERSIONS, build
from simulators.carrier.model import CarrierModel
from simulators.common.clock import ManualClock
from simulators.common.errors import SimError
from simulators.provider_states import DEFAULT_SHIP_TO

REQUEST = {
    "rma_id": "RMA-000001",
    "order_ref": "SO-000001",
    "ship_from": DEFAULT_SHIP_TO,
    "packages": [{"weight_kg": 0.8}],
}


@pytest.mark.parametrize("version", API_VERSIONS)
def test_a_return_label_is_sold_once_per_rma_on_every_version(version: str) -> None:
    client = TestClient(build(ManualClock(), api_version=version).app)
    response = client.post("/returns/labels", json=REQUEST)
    assert response.status_code == 201, response.text
    label = response.json()
    assert (label["id"], label["service"], label["cost"]["amount"]) == (
        "RL-000001",
        "ground",
        "5.40",
    )
    assert label["tracking_number"].startswith("PR")
    assert client.get(f"/returns/labels/{label['id']}").json() == label
    again = client.post("/returns/labels", json=REQUEST)
    assert again.status_code == 409
    assert again.json()["error"]["details"]["label_id"] == "RL-000001"
    assert client.get("/returns/labels/RL-999999").status_code == 404


def test_an_unserved_customer_address_is_422() -> None:
    client = TestClient(build(ManualClock()).app)
    body = {**REQUEST, "ship_from": {**DEFAULT_SHIP_TO, "country": "US"}}
    response = client.post("/returns/labels", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "address_invalid"


def test_the_way_back_is_scanned_under_the_rma_and_stays_out_of_outbound_labels() -> None:
    carrier = CarrierModel(ManualClock())
    label = carrier.create_return_label(
        "RMA-000001", "SO-000001", DEFAULT_SHIP_TO, [{"weight_kg": 1}]
    )
    for status in ("picked_up", "in_transit", "delivered"):
        carrier.scan(label.tracking_number, status)
    assert [(kind, data["status"], ref) for kind, data, ref in carrier.emitted] == [
        ("tracking.updated", "picked_up", "RMA-000001"),
        ("tracking.updated", "in_transit", "RMA-000001"),
        ("tracking.updated", "delivered", "RMA-000001"),
    ]
    assert label.status == "delivered"
    snapshot = carrier.snapshot()
    assert snapshot["labels"] == {} and snapshot["by_tracking"] == {}
    assert snapshot["return_labels"]["RL-000001"]["status"] == "delivered"
    with pytest.raises(SimError) as refused:
        carrier.scan(label.tracking_number, "in_transit")
    assert refused.value.status == 409
