"""ERP returns: an RMA for issued units, and one credit memo per return receipt that restocks
only the good units; every refusal a vendor-style error."""

from __future__ import annotations

from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from simulators.common.clock import ManualClock
from simulators.common.errors import SimError
from simulators.erp.api import build
from simulators.erp.model import ErpModel, list_price
from tests.test_erp_api import ORDER


@pytest.fixture
def client() -> TestClient:
    return TestClient(build(ManualClock(), stock={"A-100": 100, "B-200": 50}).app)


def shipped(client: TestClient, issued: list[dict] | None = None) -> str:
    """A released order of 3 x A-100 and 1 x B-200, goods issued (in full by default)."""
    order_id = client.post("/orders", json=ORDER).json()["id"]
    client.post(f"/orders/{order_id}/release")
    lines = issued or [{"line": 1, "qty": 3}, {"line": 2, "qty": 1}]
    response = client.post(f"/orders/{order_id}/goods-issue", json={"lines": lines})
    assert response.status_code == 201, response.text
    return order_id


def authorise(client: TestClient, order_id: str, **changes) -> dict:
    body = {"order_id": order_id, "lines": [{"line": 1, "qty": 2}], "reason": "wrong_size"}
    response = client.post("/returns", json={**body, **changes})
    assert response.status_code == 201, response.text
    return response.json()


def test_an_rma_authorises_issued_units_and_is_announced() -> None:
    model = ErpModel(ManualClock(), {"A-100": 10})
    order = model.create_order(
        {"name": "A", "email": "a@x"}, {}, "standard", [{"sku": "A-100", "qty": 2}]
    )
    model.release(order.id)
    model.goods_issue(order.id, [{"line": 1, "qty": 2}], "PC1", "parcelco", None)
    rma = model.authorise_return(order.id, [{"line": 1, "qty": 2}], "defective", "credit")
    kind, data, ref = model.emitted[-1]
    assert (kind, ref) == ("return.authorised", order.id)
    assert data["rma_id"] == rma.id == "RMA-000001"
    assert data["lines"] == [{"line": 1, "sku": "A-100", "qty": 2}]
    assert (data["reason"], data["resolution"]) == ("defective", "credit")


def test_a_disposition_credits_at_list_price_and_restocks_only_the_good_units(client) -> None:
    order_id = shipped(client)
    rma = authorise(client, order_id, lines=[{"line": 1, "qty": 3}])
    before = client.get("/inventory/A-100").json()["on_hand"]
    body = {"receipt_id": "RR-000001", "lines": [{"line": 1, "qty": 3, "restock_qty": 1}]}
    response = client.post(f"/returns/{rma['id']}/disposition", json=body)
    assert response.status_code == 201, response.text
    memo = response.json()
    price = list_price("A-100")
    assert memo["lines"][0]["amount"] == {"amount": f"{price * 3:.2f}", "currency": "EUR"}
    assert Decimal(memo["total"]["amount"]) == price * 3
    assert (memo["receipt_id"], memo["resolution"]) == ("RR-000001", "refund")
    assert client.get("/inventory/A-100").json()["on_hand"] == before + 1
    read = client.get(f"/returns/{rma['id']}").json()
    assert (read["status"], read["credit_memos"]) == ("credited", [memo["id"]])


def test_a_second_disposition_of_one_receipt_is_409(client) -> None:
    rma = authorise(client, shipped(client))
    body = {"receipt_id": "RR-000001", "lines": [{"line": 1, "qty": 1, "restock_qty": 1}]}
    first = client.post(f"/returns/{rma['id']}/disposition", json=body).json()
    again = client.post(f"/returns/{rma['id']}/disposition", json=body)
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "already_disposed"
    assert error["details"]["credit_memo_id"] == first["id"]
    assert error["details"]["status"] == "partially_credited"


def test_crediting_beyond_what_was_authorised_is_422(client) -> None:
    rma = authorise(client, shipped(client))  # 2 of line 1
    over = {"receipt_id": "RR-000001", "lines": [{"line": 1, "qty": 3, "restock_qty": 0}]}
    response = client.post(f"/returns/{rma['id']}/disposition", json=over)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "qty_exceeds_authorised"
    one = {"receipt_id": "RR-000001", "lines": [{"line": 1, "qty": 1, "restock_qty": 0}]}
    assert client.post(f"/returns/{rma['id']}/disposition", json=one).status_code == 201
    two = {"receipt_id": "RR-000002", "lines": [{"line": 1, "qty": 2, "restock_qty": 0}]}
    refused = client.post(f"/returns/{rma['id']}/disposition", json=two)
    assert refused.json()["error"]["details"] == {"line": 1, "left": 1, "requested": 2}


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"line": 1, "qty": 1, "restock_qty": 2}, "lines.0.restock_qty"),
        ({"line": 2, "qty": 1, "restock_qty": 0}, "lines.0.line"),
    ],
)
def test_a_disposition_line_that_makes_no_sense_is_422(client, line, field) -> None:
    rma = authorise(client, shipped(client))
    response = client.post(
        f"/returns/{rma['id']}/disposition", json={"receipt_id": "RR-1", "lines": [line]}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["field"] == field


def test_only_issued_units_of_a_shipped_order_can_be_returned(client) -> None:
    short = shipped(client, [{"line": 1, "qty": 1}, {"line": 2, "qty": 1}])
    authorise(client, short, lines=[{"line": 1, "qty": 1}])
    again = client.post(
        "/returns",
        json={"order_id": short, "lines": [{"line": 1, "qty": 1}], "reason": "defective"},
    )
    assert again.status_code == 422
    assert again.json()["error"]["code"] == "qty_exceeds_issued"
    open_order = client.post("/orders", json=ORDER).json()["id"]
    refused = client.post(
        "/returns",
        json={"order_id": open_order, "lines": [{"line": 1, "qty": 1}], "reason": "defective"},
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["status"] == "open"


def test_unknown_rmas_are_404(client) -> None:
    assert client.get("/returns/RMA-999999").status_code == 404
    body = {"receipt_id": "RR-1", "lines": [{"line": 1, "qty": 1, "restock_qty": 0}]}
    assert client.post("/returns/RMA-999999/disposition", json=body).status_code == 404


def test_the_model_refuses_an_unknown_reason() -> None:
    model = ErpModel(ManualClock(), {"A-100": 10})
    model.seed_examples()
    with pytest.raises(SimError) as refused:
        model.authorise_return("SO-000004", [{"line": 1, "qty": 1}], "bored")
    assert refused.value.status == 422
