"""The reference stack end to end, in process: signed webhooks in, vendor calls out.

The app is driven over ASGI (no socket); aioresponses plays the four vendors (tests/support.py's
``MockVendors``). Retry delays are a few
milliseconds and ``Sut.settle`` polls the idle probe, so no test sleeps for more than a few ms.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from reference_stack.app import build_app
from reference_stack.config import Config
from reference_stack.stack import Stack
from simulators.common.sender import SendFailed
from simulators.common.signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, signed_headers
from tests.support import MockVendors, Sent, VendorAnswer, VendorRoute, answer

SECRET = "s3cr3t"
PORT = 8799
URLS = {s: f"http://{s}.test" for s in ("erp", "wms", "tms", "carrier")}
ERP, WMS, TMS, CARRIER = URLS.values()

ADDRESS = {
    "name": "Ada Lovelace",
    "street": "Main St 1",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}
ORDER = {
    "id": "SO-000001",
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "ship_to": ADDRESS,
    "service_level": "standard",
    "lines": [{"line": 1, "sku": "A-100", "qty": 3}, {"line": 2, "sku": "B-200", "qty": 1}],
    "status": "released",
    "created_at": "2026-11-23T09:00:00Z",
    "released_at": "2026-11-23T09:00:05Z",
}
PICKED = {
    "fulfilment_order_id": "FO-000001",
    "order_ref": "SO-000001",
    "lines": [
        {"line": 1, "sku": "A-100", "qty": 3, "picked_qty": 2, "short_qty": 1},
        {"line": 2, "sku": "B-200", "qty": 1, "picked_qty": 1, "short_qty": 0},
    ],
}
CONTENTS = [{"sku": "A-100", "qty": 2}, {"sku": "B-200", "qty": 1}]
PACKED = {
    "fulfilment_order_id": "FO-000001",
    "order_ref": "SO-000001",
    "ship_to": ADDRESS,
    "service_level": "standard",
    "packages": [{"package_id": "PK-000001", "weight_kg": 2.5, "contents": CONTENTS}],
}
SHIPPED = {
    "fulfilment_order_id": "FO-000001",
    "order_ref": "SO-000001",
    "tracking_number": "PC000000001",
    "carrier": "parcelco",
    "shipped_at": "2026-11-23T16:00:00Z",
    "lines": [{"line": 1, "sku": "A-100", "qty": 2}, {"line": 2, "sku": "B-200", "qty": 1}],
}
SHIPMENT = {
    "id": "SH-000001",
    "order_ref": "SO-000001",
    "fulfilment_order_id": "FO-000001",
    "carrier": "parcelco",
    "service": "ground",
    "rate": {"amount": "7.40", "currency": "EUR"},
    "status": "planned",
}
LABEL = {
    "id": "LB-000001",
    "tracking_number": "PC000000001",
    "shipment_ref": "SH-000001",
    "service": "ground",
    "status": "created",
}

# A stock transfer DC1 -> DC2 as the ERP releases it, and the WMS transfer's two moves.
TRANSFER = {
    "id": "TO-000001",
    "from_site": "DC1",
    "to_site": "DC2",
    "lines": [{"line": 1, "sku": "A-100", "qty": 10}, {"line": 2, "sku": "B-200", "qty": 4}],
    "status": "released",
    "released_at": "2026-11-23T10:00:00Z",
    "issues": [],
    "receipts": [],
}
WMS_TRANSFER = {"id": "WT-000001", "transfer_ref": "TO-000001", "status": "accepted"}
MOVED = {
    "transfer_id": "WT-000001",
    "transfer_ref": "TO-000001",
    "from_site": "DC1",
    "to_site": "DC2",
    "lines": [{"line": 1, "sku": "A-100", "qty": 10}, {"line": 2, "sku": "B-200", "qty": 3}],
}
TRANSFER_SHIPPED = MOVED | {"site": "DC1", "shipped_at": "2026-11-23T11:00:00Z"}
TRANSFER_RECEIVED = MOVED | {"site": "DC2", "received_at": "2026-11-23T14:00:00Z"}


def body(request: Sent) -> Any:
    return orjson.loads(request.content)


def vendor_error(status: int, code: str) -> VendorAnswer:
    error = {"code": code, "message": f"refused: {code}", "details": {}}
    return answer(status, json={"error": error})


@dataclass
class Sut:
    """The stack under test, its ASGI client, and the mock playing the vendors."""

    stack: Stack
    client: httpx.AsyncClient
    vendors: MockVendors
    routes: dict[str, VendorRoute]
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def deliver(
        self,
        system: str,
        event_type: str,
        data: dict[str, Any],
        *,
        event_id: str | None = None,
        correlation_id: str | None = None,
        secret: str = SECRET,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """POST a webhook signed as the simulators sign it."""
        event_id = event_id or f"EV-{system.upper()}-{next(self._ids):06d}"
        envelope = {"id": event_id, "type": event_type, "source": system, "data": data}
        raw = orjson.dumps(envelope)
        headers = signed_headers(secret, raw, timestamp)
        headers |= {
            "content-type": "application/json",
            EVENT_ID_HEADER: event_id,
            EVENT_TYPE_HEADER: event_type,
        }
        if correlation_id:
            headers["x-correlation-id"] = correlation_id
        return await self.client.post(f"/webhooks/{system}", content=raw, headers=headers)

    async def idle(self) -> dict[str, Any]:
        return (await self.client.get("/_stack/idle")).json()

    async def settle(self) -> dict[str, Any]:
        """Wait until nothing is running, due or scheduled (retries are milliseconds here)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            probe = await self.idle()
            if probe["idle"] and probe["scheduled"] == 0:
                return probe
            await asyncio.sleep(0.002)
        raise AssertionError(f"the stack never settled: {probe}")

    async def wait_until_scheduled(self, count: int) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while (probe := await self.idle())["scheduled"] < count:
            assert time.monotonic() < deadline, probe
            await asyncio.sleep(0.002)
        return probe

    def requests(self, name: str) -> list[Sent]:
        return list(self.routes[name].calls)

    async def ship_order(self) -> None:
        """Release, pick, pack and ship SO-000001 along the happy path."""
        await self.deliver("erp", "order.released", ORDER)
        await self.settle()
        await self.deliver("wms", "order.picked", PICKED)
        await self.deliver("wms", "order.packed", PACKED)
        await self.settle()
        await self.deliver("wms", "order.shipped", SHIPPED)
        await self.settle()


def vendor_routes(router: MockVendors) -> dict[str, VendorRoute]:
    """Every vendor answering as on a good day; tests change single routes."""
    for url in URLS.values():
        router.post(f"{url}/webhooks").respond(201, json={"id": "WH-0001"})
        router.get(f"{url}/webhooks").respond(200, json={"items": []})
    fo = {"id": "FO-000001", "order_ref": "SO-000001", "status": "accepted"}
    return {
        "create": router.post(f"{WMS}/fulfilment-orders").respond(201, json=fo),
        "find": router.get(f"{WMS}/fulfilment-orders").respond(200, json={"items": []}),
        "cancel": router.post(f"{WMS}/fulfilment-orders/FO-000001/cancel").respond(200, json=fo),
        "readdress": router.patch(f"{WMS}/fulfilment-orders/FO-000001").respond(200, json=fo),
        "attach": router.post(f"{WMS}/fulfilment-orders/FO-000001/label").respond(200, json=fo),
        "plan": router.post(f"{TMS}/shipments").respond(201, json=SHIPMENT),
        "label": router.post(f"{CARRIER}/labels").respond(201, json=LABEL),
        "issue": router.post(f"{ERP}/orders/SO-000001/goods-issue").respond(
            201, json={"id": "GI-000001"}
        ),
        "tracking": router.post(f"{ERP}/orders/SO-000001/tracking").respond(200, json={}),
        "accrual": router.post(f"{ERP}/freight-accruals").respond(201, json={"id": "FA-000001"}),
        "adjust": router.post(f"{ERP}/inventory/adjustments").respond(201, json={"id": "IA-1"}),
        "receipt": router.post(f"{ERP}/goods-receipts").respond(201, json={"id": "GR-1"}),
        "dispose": router.post(f"{ERP}/returns/RMA-000001/disposition").respond(
            201, json={"id": "CM-000001"}
        ),
        "put_item": router.put(re.compile(rf"{WMS}/items/.+")).respond(200, json={"sku": "N-1"}),
        "item": router.get(f"{ERP}/items/N-1").respond(200, json={"sku": "N-1", **ITEM_DATA}),
        "transfer": router.post(f"{WMS}/transfers").respond(201, json=WMS_TRANSFER),
        "find_transfer": router.get(f"{WMS}/transfers").respond(200, json={"items": []}),
        "transfer_issue": router.post(f"{ERP}/transfers/TO-000001/goods-issue").respond(
            201, json={"id": "TI-000001"}
        ),
        "transfer_receipt": router.post(f"{ERP}/transfers/TO-000001/goods-receipt").respond(
            201, json={"id": "TR-000001"}
        ),
    }


ITEM_DATA = {
    "description": "Kettle",
    "uom": "CS",
    "each_per_case": 6,
    "weight_kg": 1.2,
    "active": True,
    "version": 1,
    "created_at": "2026-11-23T09:00:00Z",
    "updated_at": "2026-11-23T09:00:00Z",
}


def make_config(db: Path) -> Config:
    return Config(
        vendor_urls=URLS,
        webhook_secret=SECRET,
        port=PORT,
        db_path=db,
        retry_base_s=0.001,
        retry_max_s=0.004,
        in_doubt_s=0.004,
        max_attempts=4,
        workers=4,
    )


@asynccontextmanager
async def running(
    db: Path,
    router: MockVendors,
    routes: dict[str, VendorRoute],
    config: Config | None = None,
) -> AsyncIterator[Sut]:
    """The stack in process on ``db`` (``config``: another configuration of it)."""
    stack = Stack(config or make_config(db))
    await stack.start()
    await stack.subscribe()
    transport = httpx.ASGITransport(app=build_app(stack))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://stack") as client:
            yield Sut(stack, client, router, routes)
    finally:
        await stack.stop()


@pytest.fixture
def router() -> Iterator[MockVendors]:
    with MockVendors() as mock:
        yield mock


@pytest.fixture
async def sut(tmp_path: Path, router: MockVendors) -> AsyncIterator[Sut]:
    async with running(tmp_path / "stack.db", router, vendor_routes(router)) as stack:
        yield stack


# -- start-up ---------------------------------------------------------------------------------
async def test_subscribes_to_each_system_for_the_events_it_consumes(sut: Sut) -> None:
    subscriptions = {
        call.url.host.split(".")[0]: body(call)
        for call in sut.vendors.calls
        if call.method == "POST" and call.url.path == "/webhooks"
    }
    assert subscriptions["erp"] == {
        "url": f"http://127.0.0.1:{PORT}/webhooks/erp",
        "events": [
            "order.released",
            "order.cancelled",
            "order.updated",
            "item.created",
            "item.changed",
            "transfer.released",
        ],
        "secret": SECRET,
    }
    assert set(subscriptions["wms"]["events"]) == {
        "order.picked",
        "order.packed",
        "order.shipped",
        "inventory.adjusted",
        "receipt.confirmed",
        "return.received",
        "transfer.shipped",
        "transfer.received",
    }
    assert subscriptions["tms"]["events"] == ["freight.settled"]
    assert subscriptions["carrier"]["events"] == ["tracking.updated"]
    assert (await sut.client.get("/_stack/health")).json() == {"status": "ok"}


async def test_health_waits_for_a_simulator_that_is_not_up_yet(
    tmp_path: Path, router: MockVendors
) -> None:
    vendor_routes(router)
    router.post(f"{TMS}/webhooks").side_effect = [
        SendFailed("cannot connect to tms.test:80: Connection refused"),
        answer(201, json={"id": "WH-1"}),
    ]
    stack = Stack(make_config(tmp_path / "stack.db"))
    await stack.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(stack)), base_url="http://s"
    )
    try:
        assert (await client.get("/_stack/health")).status_code == 503
        await stack.subscribe()
        assert (await client.get("/_stack/health")).status_code == 200
    finally:
        await client.aclose()
        await stack.stop()


# -- the webhook door -------------------------------------------------------------------------
async def test_the_same_event_delivered_twice_creates_one_fulfilment_order(sut: Sut) -> None:
    first = await sut.deliver("erp", "order.released", ORDER, event_id="EV-ERP-000042")
    again = await sut.deliver("erp", "order.released", ORDER, event_id="EV-ERP-000042")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["status"] == "duplicate"
    await sut.settle()
    [create] = sut.requests("create")
    assert body(create) == {
        "order_ref": "SO-000001",
        "ship_to": ADDRESS,
        "service_level": "standard",
        "lines": [{"line": 1, "sku": "A-100", "qty": 3}, {"line": 2, "sku": "B-200", "qty": 1}],
    }
    assert create.headers["idempotency-key"] == "wms-create-SO-000001"
    assert create.headers["x-correlation-id"].startswith("corr-SO-000001-")


async def test_two_events_releasing_one_order_create_one_fulfilment_order(sut: Sut) -> None:
    await sut.deliver("erp", "order.released", ORDER)
    await sut.deliver("erp", "order.released", ORDER)
    await sut.settle()
    await sut.deliver("erp", "order.released", ORDER)  # after the create went through, too
    await sut.settle()
    assert len(sut.requests("create")) == 1


async def test_a_bad_signature_is_refused_and_nothing_is_kept(sut: Sut) -> None:
    forged = await sut.deliver("erp", "order.released", ORDER, event_id="EV-1", secret="guess")
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "invalid_signature"
    await sut.settle()
    assert sut.requests("create") == []
    genuine = await sut.deliver("erp", "order.released", ORDER, event_id="EV-1")
    assert genuine.status_code == 202  # not a duplicate: the forged one was never stored


async def test_an_old_timestamp_is_refused(sut: Sut) -> None:
    stale = int(time.time()) - 301
    response = await sut.deliver("erp", "order.released", ORDER, timestamp=stale)
    assert response.status_code == 401
    assert "replay window" in response.json()["error"]["message"]


async def test_a_body_that_is_no_event_envelope_is_a_400(sut: Sut) -> None:
    raw = b"[1, 2]"
    headers = signed_headers(SECRET, raw)
    response = await sut.client.post("/webhooks/erp", content=raw, headers=headers)
    assert response.status_code == 400
    assert (await sut.client.post("/webhooks/crm", content=raw, headers=headers)).status_code == 404


async def test_the_webhook_and_idle_routes_answer_as_starlette_did_around_them(
    sut: Sut, monkeypatch: pytest.MonkeyPatch
) -> None:
    # served in front of Starlette (reference_stack.app.HotRoutes); the rest of each path is
    # still Starlette's: another method, a deeper path
    raw = orjson.dumps({"id": "EV-1", "type": "order.released", "source": "erp", "data": ORDER})
    headers = signed_headers(SECRET, raw)
    wrong_method = await sut.client.get("/webhooks/erp")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    deeper = await sut.client.post("/webhooks/erp/x", content=raw, headers=headers)
    assert (deeper.status_code, deeper.json()["error"]["code"]) == (404, "not_found")
    assert (await sut.client.post("/_stack/idle")).status_code == 405
    assert (await sut.client.get("/_stack/idle", params={"wait_ms": "x"})).json()["idle"] is True

    def broken(*args: Any) -> bool:
        raise RuntimeError("the store fell over")

    monkeypatch.setattr(sut.stack, "receive", broken)
    transport = httpx.ASGITransport(app=build_app(sut.stack), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://stack") as client:
        failed = await client.post("/webhooks/erp", content=raw, headers=headers)
    assert (failed.status_code, failed.text) == (500, "Internal Server Error")


async def test_an_event_missing_its_data_is_acknowledged_and_does_not_wedge(sut: Sut) -> None:
    response = await sut.deliver("erp", "order.released", {"id": "SO-000009"})  # no lines
    assert response.status_code == 202
    assert (await sut.idle())["idle"] is True


# -- the choreography -------------------------------------------------------------------------
async def test_packed_plans_buys_and_attaches_in_that_order(sut: Sut) -> None:
    await sut.deliver("erp", "order.released", ORDER, correlation_id="corr-world-1")
    await sut.settle()
    await sut.deliver("wms", "order.packed", PACKED)
    await sut.settle()
    writes = [
        (c.url.host, c.url.path)
        for c in sut.vendors.calls
        if c.method == "POST" and c.url.path != "/webhooks"
    ]
    assert writes == [
        ("wms.test", "/fulfilment-orders"),
        ("tms.test", "/shipments"),
        ("carrier.test", "/labels"),
        ("wms.test", "/fulfilment-orders/FO-000001/label"),
    ]
    [plan], [label], [attach] = sut.requests("plan"), sut.requests("label"), sut.requests("attach")
    assert body(plan)["packages"] == [{"weight_kg": 2.5}]
    assert body(label) == {
        "shipment_ref": "SH-000001",
        "service": "ground",
        "ship_to": ADDRESS,
        "packages": [{"weight_kg": 2.5, "contents": CONTENTS}],
    }
    assert body(attach) == {
        "tracking_number": "PC000000001",
        "carrier": "parcelco",
        "label_id": "LB-000001",
    }
    keys = [r.headers["idempotency-key"] for r in (plan, label, attach)]
    assert keys == ["shipment-FO-000001", "label-FO-000001", "wms-label-FO-000001"]
    # one correlation id for everything about the order: the one its release came with
    correlation_ids = {
        c.headers["x-correlation-id"] for c in sut.vendors.calls if c.url.path != "/webhooks"
    }
    assert correlation_ids == {"corr-world-1"}
    known = (await sut.client.get("/_stack/orders/SO-000001")).json()["order"]
    assert known["shipment_id"] == "SH-000001"
    assert known["tracking_number"] == "PC000000001"
    assert known["label_attached"] is True


async def test_a_retried_label_purchase_sends_the_same_key_and_body(sut: Sut) -> None:
    await retried_label_purchase_is_the_same(sut, LABEL)


async def retried_label_purchase_is_the_same(sut: Sut, label: dict[str, Any]) -> None:
    """A purchase cut off, then refused, then bought: three times the same bytes, one key."""
    sut.routes["label"].side_effect = [
        TimeoutError("timed out"),
        vendor_error(503, "unavailable"),
        answer(201, json=label),
    ]
    await sut.deliver("wms", "order.packed", PACKED)
    await sut.settle()
    purchases = sut.requests("label")
    assert len(purchases) == 3
    assert {r.headers["idempotency-key"] for r in purchases} == {"label-FO-000001"}
    assert len({r.content for r in purchases}) == 1
    assert len(sut.requests("attach")) == 1


async def test_shipped_posts_the_goods_issue_with_the_picked_qty(sut: Sut) -> None:
    await sut.ship_order()
    [issue] = sut.requests("issue")
    assert body(issue) == {
        "lines": [{"line": 1, "qty": 2, "uom": "EA"}, {"line": 2, "qty": 1, "uom": "EA"}],
        "tracking_number": "PC000000001",
        "carrier": "parcelco",
        "shipment_id": "SH-000001",
    }
    assert issue.headers["idempotency-key"] == "gi-FO-000001"
    await sut.deliver("wms", "order.shipped", SHIPPED)  # a late duplicate with a new event id
    await sut.settle()
    assert len(sut.requests("issue")) == 1


async def test_nothing_picked_posts_a_zero_goods_issue(sut: Sut) -> None:
    unpicked = {
        **PICKED,
        "lines": [{**line, "picked_qty": 0, "short_qty": line["qty"]} for line in PICKED["lines"]],
    }
    await sut.deliver("wms", "order.picked", unpicked)
    await sut.settle()
    [issue] = sut.requests("issue")
    assert body(issue) == {"lines": [{"line": 1, "qty": 0}, {"line": 2, "qty": 0}]}


async def test_stale_tracking_sequences_are_ignored(sut: Sut) -> None:
    await sut.ship_order()

    def scan(status: str, sequence: int) -> dict[str, Any]:
        at = f"2026-11-24T0{sequence}:00:00Z"
        return {
            "tracking_number": "PC000000001",
            "status": status,
            "occurred_at": at,
            "sequence": sequence,
        }

    for status, sequence in [("in_transit", 2), ("picked_up", 1), ("in_transit", 2)]:
        assert (await sut.deliver("carrier", "tracking.updated", scan(status, sequence))).is_success
    await sut.deliver("carrier", "tracking.updated", scan("delivered", 3))
    await sut.settle()
    posted = [body(r) for r in sut.requests("tracking")]
    assert [(p["status"], p["occurred_at"]) for p in posted] == [
        ("in_transit", "2026-11-24T02:00:00Z"),
        ("delivered", "2026-11-24T03:00:00Z"),
    ]


async def test_cancelled_after_creation_cancels_the_fulfilment_order(sut: Sut) -> None:
    await sut.deliver("erp", "order.released", ORDER)
    await sut.settle()
    await sut.deliver("erp", "order.cancelled", {"order_id": "SO-000001", "cancelled_at": "x"})
    await sut.settle()
    assert len(sut.requests("cancel")) == 1
    await sut.deliver("wms", "order.packed", PACKED)  # a late event must not push it on
    await sut.settle()
    assert sut.requests("plan") == []


async def test_cancelled_before_the_create_ran_sends_nothing_more_to_the_wms(sut: Sut) -> None:
    sut.routes["create"].respond(503, headers={"Retry-After": "1"})
    await sut.deliver("erp", "order.released", ORDER)
    await sut.wait_until_scheduled(1)  # the first attempt failed; the retry is 1 s away
    await sut.deliver("erp", "order.cancelled", {"order_id": "SO-000001", "cancelled_at": "x"})
    await sut.settle()
    assert len(sut.requests("create")) == 1  # no retry once cancelled
    assert sut.requests("find") == []
    assert sut.requests("cancel") == []  # no fulfilment order was ever created


async def test_cancelled_while_a_create_was_in_doubt_cancels_what_it_made(sut: Sut) -> None:
    """The create's answer never came (cut off by the timeout), the customer cancels before
    its retry: the retry does not create, but looks, and the WMS order the first attempt made
    after all is cancelled, not left to be picked and shipped."""
    sut.routes["create"].side_effect = [TimeoutError("timed out")]
    created = {"id": "FO-000001", "order_ref": "SO-000001", "status": "accepted"}
    sut.routes["find"].respond(200, json={"items": [created]})
    sut.stack.worker.in_doubt_s = 1.0  # the retry waits; the cancellation comes meanwhile
    await sut.deliver("erp", "order.released", ORDER)
    await sut.wait_until_scheduled(1)
    await sut.deliver("erp", "order.cancelled", {"order_id": "SO-000001", "cancelled_at": "x"})
    deadline = time.monotonic() + 5
    while (await sut.idle())["scheduled"] or not (await sut.idle())["idle"]:
        assert time.monotonic() < deadline, "the stack never settled"
        await asyncio.sleep(0.01)
    assert len(sut.requests("create")) == 1  # never created again once cancelled
    assert len(sut.requests("find")) == 1
    assert len(sut.requests("cancel")) == 1


async def test_a_create_still_in_doubt_after_a_failed_look_is_looked_for_once_cancelled(
    sut: Sut,
) -> None:
    """The create's answer was lost (504); the retry's look failed too (the WMS's search was
    down: 503), so the doubt stands. The customer cancels: the job looks on rather than skip,
    until a look answers, and cancels the order the first attempt made
    (write_responses_lost)."""
    sut.routes["create"].side_effect = [vendor_error(504, "gateway_timeout")]
    created = {"id": "FO-000001", "order_ref": "SO-000001", "status": "picked"}
    search_down = {"error": {"code": "service_unavailable", "message": "x", "details": {}}}
    down = answer(503, json=search_down, headers={"Retry-After": "1"})
    # down for a second (the cancellation comes meanwhile), and once more after it
    sut.routes["find"].side_effect = [down, down, answer(200, json={"items": [created]})]
    sut.stack.worker.in_doubt_s = 0.0
    await sut.deliver("erp", "order.released", ORDER)
    deadline = time.monotonic() + 5
    while len(sut.requests("find")) < 1:  # the first look, refused
        assert time.monotonic() < deadline, "the retry never looked"
        await asyncio.sleep(0.01)
    await sut.deliver("erp", "order.cancelled", {"order_id": "SO-000001", "cancelled_at": "x"})
    probe = await sut.settle()
    assert len(sut.requests("create")) == 1  # never created again
    assert len(sut.requests("find")) == 3  # looked on although the order was cancelled
    assert len(sut.requests("cancel")) == 1  # and cancelled what the lost attempt made
    assert probe["dead"] == 0


async def test_settlement_adjustments_and_receipts_reach_the_erp(sut: Sut) -> None:
    amount = {"amount": "7.40", "currency": "EUR"}
    settled = {
        "shipment_id": "SH-000001",
        "order_ref": "SO-000001",
        "amount": amount,
        "settled_at": "2026-11-23T22:00:00Z",
    }
    adjusted = {"adjustment_id": "ADJ-000001", "sku": "A-100", "delta": -2, "reason": "damage"}
    received = {"receipt_id": "RC-000001", "lines": [{"sku": "A-100", "qty": 40}]}
    await sut.deliver("tms", "freight.settled", settled)
    await sut.deliver("wms", "inventory.adjusted", adjusted)
    await sut.deliver("wms", "receipt.confirmed", received)
    await sut.settle()
    [accrual], [adjust], [receipt] = (sut.requests(n) for n in ("accrual", "adjust", "receipt"))
    assert body(accrual) == {"order_id": "SO-000001", "shipment_id": "SH-000001", "amount": amount}
    assert accrual.headers["idempotency-key"] == "accrual-SH-000001"
    assert body(adjust) == {
        "sku": "A-100",
        "delta": -2,
        "reason": "damage",
        "reference": "ADJ-000001",
    }
    assert body(receipt) == {"reference": "RC-000001", "lines": [{"sku": "A-100", "qty": 40}]}


async def test_an_order_is_created_at_the_site_the_erp_assigned(sut: Sut) -> None:
    await sut.deliver("erp", "order.released", ORDER | {"site": "DC2"})
    await sut.deliver("erp", "order.released", ORDER | {"id": "SO-000002"})  # one site: none
    await sut.settle()
    sites = {body(r)["order_ref"]: body(r).get("site") for r in sut.requests("create")}
    assert sites == {"SO-000001": "DC2", "SO-000002": None}


async def test_a_transfer_is_created_once_then_issued_and_received_per_wms_transfer(
    sut: Sut,
) -> None:
    await sut.deliver("erp", "transfer.released", TRANSFER)
    await sut.deliver("erp", "transfer.released", TRANSFER)  # again, under a new event id
    await sut.settle()
    [created] = sut.requests("transfer")
    assert body(created) == {
        "transfer_ref": "TO-000001",
        "from_site": "DC1",
        "to_site": "DC2",
        "lines": [{"line": 1, "sku": "A-100", "qty": 10}, {"line": 2, "sku": "B-200", "qty": 4}],
    }
    assert created.headers["idempotency-key"] == "wms-transfer-TO-000001"
    for _ in range(2):  # each move reported twice
        await sut.deliver("wms", "transfer.shipped", TRANSFER_SHIPPED)
        await sut.deliver("wms", "transfer.received", TRANSFER_RECEIVED)
        await sut.settle()
    [issue], [receipt] = sut.requests("transfer_issue"), sut.requests("transfer_receipt")
    moved = [{"line": 1, "qty": 10}, {"line": 2, "qty": 3}]
    assert body(issue) == body(receipt) == {"reference": "WT-000001", "lines": moved}
    assert issue.headers["idempotency-key"] == "transfer-issue-WT-000001"
    assert receipt.headers["idempotency-key"] == "transfer-receipt-WT-000001"


async def test_a_receipt_that_overtook_its_issue_waits_for_it(sut: Sut) -> None:
    """The ERP refuses a receipt while the transfer is still ``released`` (409
    ``invalid_status``): the issue is on its way, so the receipt is retried, not dead, and
    under a new Idempotency-Key, since the ERP replays a refusal to the key it was given."""
    refused = vendor_error(409, "invalid_status")
    refused_body = refused.payload
    refused_body["error"]["details"] = {"status": "released", "transfer_id": "TO-000001"}
    sut.routes["transfer_receipt"].side_effect = [
        answer(409, json=refused_body),
        answer(201, json={"id": "TR-000001"}),
    ]
    await sut.deliver("wms", "transfer.received", TRANSFER_RECEIVED)
    probe = await sut.settle()
    refused_try, retry = sut.requests("transfer_receipt")
    assert refused_try.headers["idempotency-key"] == "transfer-receipt-WT-000001"
    assert retry.headers["idempotency-key"].startswith("transfer-receipt-WT-000001-retry-")
    assert probe["dead"] == 0


# -- failures ---------------------------------------------------------------------------------
async def test_wms_down_twice_then_up_still_creates_the_order(sut: Sut) -> None:
    sut.routes["create"].side_effect = [
        vendor_error(503, "unavailable"),
        vendor_error(503, "unavailable"),
        answer(201, json={"id": "FO-000001"}),
    ]
    await sut.deliver("erp", "order.released", ORDER)
    probe = await sut.settle()
    creates = sut.requests("create")
    assert len(creates) == 3
    assert {r.headers["idempotency-key"] for r in creates} == {"wms-create-SO-000001"}
    assert len(sut.requests("find")) == 2  # each retry looked for an order created unseen
    order = (await sut.client.get("/_stack/orders/SO-000001")).json()
    assert order["order"]["fulfilment_order_id"] == "FO-000001"
    assert probe["dead"] == 0


async def test_a_retry_adopts_an_order_a_timed_out_attempt_created(sut: Sut) -> None:
    sut.routes["create"].side_effect = [TimeoutError("timed out")]
    created = {"id": "FO-000007", "order_ref": "SO-000001", "status": "accepted"}
    sut.routes["find"].respond(200, json={"items": [created]})
    await sut.deliver("erp", "order.released", ORDER)
    await sut.settle()
    assert len(sut.requests("create")) == 1
    order = (await sut.client.get("/_stack/orders/SO-000001")).json()
    assert order["order"]["fulfilment_order_id"] == "FO-000007"


async def test_a_permanent_refusal_is_a_dead_letter_that_can_be_replayed(sut: Sut) -> None:
    sut.routes["create"].side_effect = [
        vendor_error(422, "validation_failed"),
        answer(201, json={"id": "FO-000001"}),
    ]
    await sut.deliver("erp", "order.released", ORDER)
    probe = await sut.settle()
    assert probe["dead"] == 1
    assert len(sut.requests("create")) == 1  # a 422 is never retried
    [dead] = (await sut.client.get("/_stack/dead-letters")).json()["items"]
    assert dead["kind"] == "create_fulfilment_order"
    assert dead["last_status"] == 422
    assert dead["last_response"]["error"]["code"] == "validation_failed"
    assert "validation_failed" in dead["last_error"]

    replayed = await sut.client.post(f"/_stack/dead-letters/{dead['id']}/replay")
    assert replayed.status_code == 200
    probe = await sut.settle()
    assert probe["dead"] == 0
    assert (await sut.client.get("/_stack/dead-letters")).json()["items"] == []
    retry = sut.requests("create")[1]
    # the vendor remembers the refused key, so the replay goes out under a fresh one
    assert retry.headers["idempotency-key"].startswith("wms-create-SO-000001-replay-")
    order = (await sut.client.get("/_stack/orders/SO-000001")).json()
    assert order["order"]["fulfilment_order_id"] == "FO-000001"
    again = await sut.client.post(f"/_stack/dead-letters/{dead['id']}/replay")
    assert again.status_code == 409


async def test_retries_give_up_after_max_attempts(sut: Sut) -> None:
    sut.routes["accrual"].respond(503)
    settled = {"shipment_id": "SH-000001", "order_ref": "SO-000001", "amount": {}}
    await sut.deliver("tms", "freight.settled", settled)
    probe = await sut.settle()
    assert len(sut.requests("accrual")) == 4  # REFSTACK_MAX_ATTEMPTS in these tests
    assert probe["dead"] == 1


async def test_a_cancel_refused_because_it_shipped_is_not_retried(sut: Sut) -> None:
    await sut.deliver("erp", "order.released", ORDER)
    await sut.settle()
    sut.routes["cancel"].respond(
        409, json={"error": {"code": "invalid_transition", "details": {"status": "shipped"}}}
    )
    await sut.deliver("erp", "order.cancelled", {"order_id": "SO-000001", "cancelled_at": "x"})
    probe = await sut.settle()
    assert len(sut.requests("cancel")) == 1
    assert probe["dead"] == 1


# -- the idle probe ---------------------------------------------------------------------------
async def test_idle_is_false_while_work_is_due_or_running_and_true_when_done(sut: Sut) -> None:
    on_the_wire, gate = asyncio.Event(), asyncio.Event()

    async def slow_create(request: Sent) -> VendorAnswer:
        on_the_wire.set()
        await gate.wait()
        return answer(201, json={"id": "FO-000001"})

    sut.routes["create"].side_effect = slow_create
    assert (await sut.idle())["idle"] is True
    await sut.deliver("erp", "order.released", ORDER)
    # The create goes out once its attempt is committed (the next pass of the loop): the
    # cancel is delivered while it is on the wire, so both jobs exist.
    await asyncio.wait_for(on_the_wire.wait(), 5)
    await sut.deliver("erp", "order.cancelled", {"order_id": "SO-000001", "cancelled_at": "x"})
    probe = await sut.idle()  # the webhook answered: its jobs are already counted
    assert probe["idle"] is False
    assert probe["running"] + probe["due"] == 2
    gate.set()
    probe = await sut.settle()
    assert probe == {"idle": True, "inbox": 0, "running": 0, "due": 0, "scheduled": 0, "dead": 0}


async def test_work_waiting_for_a_retry_timer_does_not_hold_idle(sut: Sut) -> None:
    sut.routes["create"].respond(429, headers={"Retry-After": "30"})
    await sut.deliver("erp", "order.released", ORDER)
    await sut.wait_until_scheduled(1)
    await sut.deliver("erp", "order.cancelled", {"order_id": "SO-000001", "cancelled_at": "x"})
    await asyncio.sleep(0.01)  # over twice the longest backoff: only Retry-After holds it back
    assert len(sut.requests("create")) == 1
    probe = await sut.idle()
    # the create waits 30 s for its retry; the cancel queued behind it waits with it
    assert probe == {"idle": True, "inbox": 0, "running": 0, "due": 0, "scheduled": 2, "dead": 0}


async def test_jobs_survive_a_restart(tmp_path: Path, router: MockVendors) -> None:
    routes = vendor_routes(router)
    routes["create"].respond(503, headers={"Retry-After": "0.05"})
    db = tmp_path / "stack.db"
    async with running(db, router, routes) as first:
        await first.deliver("erp", "order.released", ORDER)
        await first.wait_until_scheduled(1)
    routes["create"].respond(201, json={"id": "FO-000001"})
    async with running(db, router, routes) as second:
        await second.settle()
        order = (await second.client.get("/_stack/orders/SO-000001")).json()
    assert order["order"]["fulfilment_order_id"] == "FO-000001"
    assert [job["status"] for job in order["jobs"]] == ["done"]
    assert len(routes["create"].calls) == 2


async def test_a_body_over_a_megabyte_is_refused_unparsed(sut: Sut) -> None:
    pad = "x" * (1 << 20)
    raw = orjson.dumps({"id": "EV-BIG", "type": "order.released", "data": {"pad": pad}})
    headers = signed_headers(SECRET, raw)
    response = await sut.client.post("/webhooks/erp", content=raw, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    genuine = await sut.deliver("erp", "order.released", ORDER, event_id="EV-BIG")
    assert genuine.status_code == 202  # the refused one was never stored


async def test_a_label_goes_to_the_new_address_while_the_wms_change_is_still_retried(
    sut: Sut,
) -> None:
    moved = {**ADDRESS, "street": "Elsewhere 9", "city": "Hamburg"}
    sut.routes["readdress"].side_effect = [
        vendor_error(502, "bad_gateway"),
        vendor_error(502, "bad_gateway"),
        answer(200, json={"id": "FO-000001", "ship_to": moved}),
    ]
    await sut.deliver("erp", "order.released", ORDER)
    await sut.settle()
    update = {"order_id": "SO-000001", "ship_to": moved, "updated_at": "2026-05-04T10:05:00Z"}
    await sut.deliver("erp", "order.updated", update)
    await sut.deliver("wms", "order.packed", PACKED)  # packed at the WMS's (old) address
    await sut.settle()
    [plan], [label] = sut.requests("plan"), sut.requests("label")
    assert body(plan)["ship_to"] == moved
    assert body(label)["ship_to"] == moved


async def test_a_label_refused_for_an_address_the_customer_then_changed_is_no_dead_letter(
    sut: Sut,
) -> None:
    moved = {**ADDRESS, "street": "Elsewhere 9", "city": "Hamburg"}
    sut.routes["label"].side_effect = [
        vendor_error(422, "address_invalid"),
        answer(201, json={"id": "LBL-2", "tracking_number": "TRK-2", "status": "paid"}),
    ]
    await sut.deliver("erp", "order.released", ORDER)
    await sut.deliver("wms", "order.packed", PACKED)
    probe = await sut.settle()
    assert probe["dead"] == 1  # the carrier refused the address: the on-call's, for now
    update = {"order_id": "SO-000001", "ship_to": moved, "updated_at": "2026-05-04T10:05:00Z"}
    await sut.deliver("erp", "order.updated", update)
    probe = await sut.settle()
    assert body(sut.requests("label")[1])["ship_to"] == moved
    assert probe["dead"] == 0  # the refused purchase is superseded, not left to page anyone
    assert (await sut.client.get("/_stack/dead-letters")).json()["items"] == []
    jobs = (await sut.client.get("/_stack/orders/SO-000001")).json()["jobs"]
    assert [j["status"] for j in jobs if j["kind"] == "buy_label"] == ["superseded", "done"]


async def test_the_idle_probe_long_polls_a_busy_stack_until_it_goes_idle(sut):
    on_the_wire, gate = asyncio.Event(), asyncio.Event()

    async def slow_create(request: Sent) -> VendorAnswer:
        on_the_wire.set()
        await gate.wait()
        return answer(201, json={"id": "FO-000001", "order_ref": "SO-000001"})

    sut.routes["create"].side_effect = slow_create
    await sut.deliver("erp", "order.released", ORDER)
    await asyncio.wait_for(on_the_wire.wait(), 5)
    # a wait that is not a number, or none, is answered at once: busy
    for params in ({}, {"wait_ms": "soon"}, {"wait_ms": "0"}):
        assert (await sut.client.get("/_stack/idle", params=params)).json()["idle"] is False
    held = asyncio.create_task(sut.client.get("/_stack/idle", params={"wait_ms": "1000"}))
    await asyncio.sleep(0.01)
    assert not held.done()  # held while the create is on the wire
    gate.set()
    assert (await asyncio.wait_for(held, 5)).json()["idle"] is True


async def test_throttles_do_not_use_up_the_retries_a_vendor_outage_needs(sut: Sut) -> None:
    # max_attempts is 4 here: six throttles, then the vendor falls over, then it is back
    throttled = answer(429, headers={"Retry-After": "0.001"}, json={"error": {}})
    down = answer(503, json={"error": {"code": "unavailable", "message": "down"}})
    created = answer(201, json={"id": "FO-000001", "order_ref": "SO-000001"})
    sut.routes["create"].side_effect = [throttled] * 6 + [down] * 3 + [created]
    await sut.deliver("erp", "order.released", ORDER)
    await sut.settle()
    order = (await sut.client.get("/_stack/orders/SO-000001")).json()
    assert [(job["status"], job["attempts"], job["waits"]) for job in order["jobs"]] == [
        ("done", 10, 6)
    ]


async def test_a_job_failing_past_its_budget_is_dead_whatever_it_was_throttled(sut: Sut) -> None:
    throttled = answer(429, headers={"Retry-After": "0.001"}, json={"error": {}})
    down = answer(503, json={"error": {"code": "unavailable", "message": "down"}})
    sut.routes["create"].side_effect = [throttled] * 2 + [down] * 10
    await sut.deliver("erp", "order.released", ORDER)
    probe = await sut.settle()
    assert probe["dead"] == 1
    assert len(sut.requests("create")) == 6  # two throttles, then four failures: the budget


async def test_an_event_that_cannot_be_handled_is_kept_with_its_reason_and_wedges_nothing(
    sut: Sut,
) -> None:
    answer = await sut.deliver("erp", "order.released", {"order_id": "SO-000009"}, event_id="EV-X")
    assert answer.status_code == 202  # acknowledged: it is kept, whatever its handling did
    row = sut.stack.store._db.execute(
        "SELECT processed, error FROM inbox WHERE event_id = 'EV-X'"
    ).fetchone()
    assert row["processed"] == 1 and row["error"].startswith("KeyError")
    assert (await sut.idle())["idle"] is True
    await sut.ship_order()  # the next events are handled as ever
    assert len(sut.requests("issue")) == 1
