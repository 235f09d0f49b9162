"""SKUs with the punctuation real catalogues carry (``SKU-00001/XL``, ``SKU #8-00003``): a
vendor finds an item whose SKU is percent-encoded as one path segment, answers 404 to one sent
with a bare ``/``, and journals the path with its ``%2F`` kept, so the path keeps its segments.

Served by the real hosting code on an ephemeral port (the raw path is what uvicorn hands over);
the world's ``retail`` catalogue names its SKUs so, and a scripted order must name them."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

import simulators
from harness import hosting, scenario
from harness.cli import main
from harness.world.catalogue import Catalogue, sku_name
from simulators.common.clock import ManualClock

RETAIL = [sku_name(n, "retail") for n in range(1, 5)]


def test_retail_skus_carry_a_slash_spaces_a_hash_a_plus_and_an_ampersand():
    assert RETAIL == ["SKU-00001/XL", "SKU 00002 2M", "SKU #8-00003", "SKU-00004+B&W"]
    assert sku_name(7) == "SKU-00007"
    assert Catalogue.build(4, 10, style="retail").skus == tuple(RETAIL)
    assert sku_name(2, "retail", "NEW") == "NEW 00002 2M"


async def test_an_encoded_sku_is_one_item_and_a_bare_slash_is_no_route():
    clock = ManualClock()
    stock = dict.fromkeys(RETAIL, 5)
    wms, erp = (simulators.build(s, clock, stock=stock) for s in ("wms", "erp"))
    hosted = await hosting.serve([wms, erp], [0, 0])
    try:
        wms_url, erp_url = (h.url for h in hosted)
        async with httpx.AsyncClient() as http:
            body = {"description": "T-shirt XL", "weight_kg": 0.2, "active": True}
            for sku in RETAIL:
                path = f"/items/{quote(sku, safe='')}"
                put = await http.put(wms_url + path, json={**body, "each_per_case": 1})
                assert put.status_code == 200, (sku, put.text)
                assert (await http.get(wms_url + path)).json()["sku"] == sku
                assert (await http.get(erp_url + path)).json()["sku"] == sku
                on_hand = await http.get(f"{wms_url}/inventory/{quote(sku, safe='')}")
                assert on_hand.json() == {"sku": sku, "on_hand": 5}
            bare = await http.put(f"{wms_url}/items/SKU-00001/XL", json=body)
            assert bare.status_code == 404
            assert bare.json()["error"]["code"] == "not_found"
            assert (await http.get(f"{erp_url}/items/SKU-00001/XL")).status_code == 404
            # '#' unencoded starts a fragment: the client asks for another item altogether
            unknown = await http.get(f"{erp_url}/items/SKU #8-00003")
            assert unknown.status_code == 404
    finally:
        await hosting.shutdown(hosted)
    paths = [entry.path for entry in wms.journal.iter() if entry.method == "PUT"]
    assert "/items/SKU-00001%2FXL" in paths  # one segment, as it was on the wire
    assert "/items/SKU #8-00003" in paths  # everything else decoded, as before
    assert "/items/SKU-00001/XL" in paths  # the bare slash, journalled as sent (404)


def test_a_scripted_order_must_name_the_catalogue_s_skus_in_its_style():
    text = (
        "seed: 1\ncatalogue: {skus: 4, sku_style: retail}\n"
        "orders: [{id: SO-1, at: '08:00', lines: [{sku: %s, qty: 1}]}]\n"
    )
    assert scenario.parse(text % "'SKU 00002 2M'").catalogue.sku_style == "retail"
    with pytest.raises(scenario.ScenarioError, match=r"SKU-00001/XL to SKU-00004\+B&W"):
        scenario.parse(text % "SKU-00002")


SLASHED_IDS = """
name: slashed_document_numbers
seed: 5
demand: {orders: 0}
catalogue: {skus: 5, initial_stock: 100, sku_style: retail}
orders:
  - id: SO/2026/0001
    at: "09:00"
    lines: [{sku: SKU-00001/XL, qty: 2}]
  - id: "SO:2026:0002"
    at: "09:30"
    lines: [{sku: "SKU #8-00003", qty: 1}]
"""


@pytest.mark.e2e
def test_an_incident_with_slashed_document_numbers_plays_clean_through_the_reference_stack(
    tmp_path,
):
    """An imported incident keeps its ERP's document numbers (SO/2026/0001, as many European
    ERPs number them): the reference stack encodes them in its paths, the ERP finds them."""
    path = tmp_path / "incident.yaml"
    path.write_text(SLASHED_IDS)
    report = tmp_path / "report"
    assert main(["run", str(path), "--quiet", "--report-dir", str(report)]) == 0
    journal = (report / "journal.jsonl").read_text()
    assert '"path":"/orders/SO%2F2026%2F0001/goods-issue"' in journal
    # imported again (twinyard import of the run folder), the capsule keeps the numbers
    capsule = tmp_path / "capsule.yaml"
    assert main(["import", str(report), "--out", str(capsule)]) == 0
    replayed = {order.id: order for order in scenario.load(capsule).orders}
    assert set(replayed) == {"SO/2026/0001", "SO:2026:0002"}
    # its retail SKUs are played by catalogue number, as any SKU not of the catalogue's form
    assert [(x.sku, x.qty) for x in replayed["SO/2026/0001"].lines] == [("SKU-00001", 2)]
