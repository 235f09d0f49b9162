"""WMS return receipts: each unit graded at the bench, only restock units back in stock,
announced as ``return.received`` and readable by id."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from simulators.common.clock import ManualClock
from simulators.common.errors import SimError
from simulators.wms.api import build
from simulators.wms.model import WmsModel

LINES = [
    {"line": 1, "sku": "A-100", "qty": 2, "condition": "restock"},
    {"line": 1, "sku": "A-100", "qty": 1, "condition": "damaged"},
    {"line": 2, "sku": "B-200", "qty": 1, "condition": "scrap"},
]


def test_only_restock_units_go_back_on_the_shelf_and_the_receipt_is_announced() -> None:
    wms = WmsModel(ManualClock(), {"A-100": 5, "B-200": 5})
    receipt = wms.receive_return("RMA-000001", "SO-000001", LINES)
    assert wms.stock == {"A-100": 7, "B-200": 5}
    kind, data, ref = wms.emitted[-1]
    assert (kind, ref) == ("return.received", "SO-000001")
    assert data == receipt
    assert data["receipt_id"] == "RR-000001"
    assert [x["condition"] for x in data["lines"]] == ["restock", "damaged", "scrap"]
    assert wms.snapshot()["return_receipts"] == [receipt]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"line": 1, "sku": "A-100", "qty": 0, "condition": "restock"}, "lines.0.qty"),
        ({"line": 1, "sku": "A-100", "qty": 1, "condition": "lost"}, "lines.0.condition"),
    ],
)
def test_a_bad_return_line_is_refused(line: dict, field: str) -> None:
    wms = WmsModel(ManualClock(), {"A-100": 5})
    with pytest.raises(SimError) as refused:
        wms.receive_return("RMA-1", "SO-1", [line])
    assert refused.value.details["errors"][0]["field"] == field
    assert wms.stock == {"A-100": 5}


def test_a_return_receipt_is_read_by_id() -> None:
    sim = build(ManualClock(), stock={"A-100": 5, "B-200": 5})
    sim.model.receive_return("RMA-000001", "SO-000001", LINES)
    client = TestClient(sim.app)
    found = client.get("/return-receipts/RR-000001")
    assert found.status_code == 200
    assert found.json()["rma_id"] == "RMA-000001"
    assert client.get("/return-receipts/RR-999999").status_code == 404
