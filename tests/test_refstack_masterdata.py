"""The reference stack carries the ERP's item master to the WMS: one PUT per item version,
never an older version over a newer, and a case line sent in eaches. Same set-up as
tests/test_refstack_flow.py (ASGI app, mocked vendors, signed webhooks)."""

from __future__ import annotations

from pathlib import Path

from tests.support import MockVendors, answer
from tests.test_refstack_flow import (
    ITEM_DATA,
    ORDER,
    body,
    router,  # noqa: F401  (the fixture)
    running,
    vendor_routes,
)


def version(n: int, weight: float) -> dict:
    return {"sku": "N-1", **ITEM_DATA, "version": n, "weight_kg": weight}


async def test_each_item_version_is_put_once_and_an_older_one_never_overwrites(
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    async with running(tmp_path / "stack.db", router, vendor_routes(router)) as sut:
        await sut.deliver("erp", "item.created", version(1, 1.0))
        await sut.settle()
        await sut.deliver("erp", "item.changed", version(3, 3.0))
        await sut.deliver("erp", "item.changed", version(3, 3.0))  # a duplicate, new event id
        await sut.settle()
        await sut.deliver("erp", "item.changed", version(2, 2.0))  # reordered: older, late
        await sut.settle()
        puts = sut.requests("put_item")
        assert [body(r)["weight_kg"] for r in puts] == [1.0, 3.0]
        assert body(puts[0]) == {
            "description": "Kettle",
            "weight_kg": 1.0,
            "active": True,
            "each_per_case": 6,
        }
        assert {r.headers["idempotency-key"] for r in puts} == {
            "wms-item-N-1-v1",
            "wms-item-N-1-v3",
        }


async def test_a_case_line_reaches_the_wms_in_eaches_reading_the_item_when_unknown(
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    order = {
        **ORDER,
        "lines": [{"line": 1, "sku": "N-1", "qty": 2, "uom": "CS"}, ORDER["lines"][1]],
    }
    async with running(tmp_path / "stack.db", router, vendor_routes(router)) as sut:
        await sut.deliver("erp", "order.released", order)  # no item.created heard yet
        await sut.settle()
        [created] = sut.requests("create")
        assert [(x["sku"], x["qty"]) for x in body(created)["lines"]] == [("N-1", 12), ("B-200", 1)]
        assert len(sut.requests("item")) == 1  # the case size, read from the ERP's master


async def test_a_version_that_died_is_superseded_once_a_newer_one_is_in_the_wms(
    tmp_path: Path,
    router: MockVendors,  # noqa: F811
) -> None:
    routes = vendor_routes(router)
    down = answer(503, json={"error": {"code": "unavailable", "message": "down"}})
    put = answer(200, json={"sku": "N-1"})
    routes["put_item"].side_effect = [down] * 4 + [put]  # max_attempts is 4 here
    async with running(tmp_path / "stack.db", router, routes) as sut:
        await sut.deliver("erp", "item.created", version(1, 1.0))
        assert (await sut.settle())["dead"] == 1  # the on-call would be paged for it
        await sut.deliver("erp", "item.changed", version(2, 2.0))
        probe = await sut.settle()
        letters = (await sut.client.get("/_stack/dead-letters")).json()["items"]
    assert probe["dead"] == 0 and letters == []  # v2 is in the WMS: v1's letter is obsolete
    assert [body(r)["weight_kg"] for r in sut.requests("put_item")] == [1.0] * 4 + [2.0]
