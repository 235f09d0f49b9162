"""The reference stack's vendor client: how each answer is classified, and what every call carries.

Hermetic: aioresponses answers in place of the simulators (tests/support.py's ``MockVendors``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest

from reference_stack import steps
from reference_stack.clients import Outcome, Vendors, Verdict
from tests.support import MockVendors

URLS = {s: f"http://{s}.test" for s in ("erp", "wms", "tms", "carrier")}
CORR = "corr-SO-000001-abcd1234"


@pytest.fixture
async def vendors() -> AsyncIterator[Vendors]:
    client = Vendors(URLS, timeout_s=1.0)
    yield client
    await client.aclose()


@pytest.fixture
def mock() -> Iterator[MockVendors]:
    with MockVendors() as vendors:
        yield vendors


def vendor_error(code: str, **details: object) -> dict[str, object]:
    return {"error": {"code": code, "message": f"refused: {code}", "details": details}}


async def buy(vendors: Vendors) -> Outcome:
    body = {"shipment_ref": "SH-000001", "service": "ground", "ship_to": {}, "packages": []}
    return await vendors.buy_label(body, key="label-FO-000001", correlation_id=CORR)


@pytest.mark.parametrize(
    "failure",
    [
        TimeoutError(),  # what aiohttp raises when the total timeout is up
        aiohttp.SocketTimeoutError("timed out"),
        aiohttp.ClientConnectionError("connection refused"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("Response payload is not completed"),
    ],
)
async def test_timeouts_and_connection_errors_are_retryable(
    vendors: Vendors, mock: MockVendors, failure: Exception
) -> None:
    mock.post("http://carrier.test/labels").side_effect = failure
    outcome = await buy(vendors)
    assert outcome.verdict is Verdict.RETRY
    assert outcome.status is None
    assert type(failure).__name__ in (outcome.error or "")


async def test_429_is_retryable_after_the_delay_the_vendor_asks_for(
    vendors: Vendors, mock: MockVendors
) -> None:
    mock.post("http://carrier.test/labels").respond(
        429, json=vendor_error("rate_limited"), headers={"Retry-After": "7"}
    )
    outcome = await buy(vendors)
    assert (outcome.verdict, outcome.status, outcome.retry_after) == (Verdict.RETRY, 429, 7.0)


async def test_retry_after_may_be_an_http_date(vendors: Vendors, mock: MockVendors) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    mock.post("http://carrier.test/labels").respond(429, headers={"Retry-After": when})
    outcome = await buy(vendors)
    assert outcome.retry_after is not None and 25 < outcome.retry_after <= 30


async def test_503_is_retryable(vendors: Vendors, mock: MockVendors) -> None:
    mock.post("http://carrier.test/labels").respond(503, json=vendor_error("unavailable"))
    outcome = await buy(vendors)
    assert (outcome.verdict, outcome.status, outcome.retry_after) == (Verdict.RETRY, 503, None)


async def test_422_is_permanent_and_keeps_the_vendor_error(
    vendors: Vendors, mock: MockVendors
) -> None:
    refusal = vendor_error("address_invalid", field="ship_to.postal_code")
    mock.post("http://carrier.test/labels").respond(422, json=refusal)
    outcome = await buy(vendors)
    assert (outcome.verdict, outcome.status) == (Verdict.REFUSED, 422)
    assert outcome.body == refusal
    assert "address_invalid" in (outcome.error or "")


@pytest.mark.parametrize("content", [b'{"id": "', b"<html>Bad Gateway</html>", b"[]", b""])
async def test_a_2xx_whose_answer_does_not_read_is_retried_not_taken_for_done(
    vendors: Vendors, mock: MockVendors, content: bytes
) -> None:
    """A gateway that cuts an answer off after the status line: the work may not be done."""
    mock.post("http://carrier.test/labels").respond(201, content=content)
    outcome = await buy(vendors)
    assert (outcome.verdict, outcome.status) == (Verdict.RETRY, 201)
    assert "unreadable answer" in (outcome.error or "")


async def test_goods_issue_already_issued_counts_as_done(
    vendors: Vendors, mock: MockVendors
) -> None:
    route = mock.post("http://erp.test/orders/SO-000001/goods-issue")
    route.respond(409, json=vendor_error("already_issued", status="shipped"))
    outcome = await vendors.goods_issue(
        "SO-000001", {"lines": []}, key="gi-FO-1", correlation_id=CORR
    )
    assert outcome.verdict is Verdict.DONE and outcome.succeeded

    route.respond(409, json=vendor_error("invalid_transition", status="cancelled"))
    outcome = await vendors.goods_issue(
        "SO-000001", {"lines": []}, key="gi-FO-1", correlation_id=CORR
    )
    assert outcome.verdict is Verdict.REFUSED


@pytest.mark.parametrize(
    ("refusal", "verdict"),
    [
        (vendor_error("invalid_transition", status="shipped"), Verdict.DONE),
        (vendor_error("already_labelled", status="labelled", tracking_number="PC1"), Verdict.DONE),
        (vendor_error("already_labelled", status="labelled"), Verdict.DONE),
        # another parcel's label is on it: a real conflict, never "done"
        (vendor_error("label_mismatch", status="labelled", tracking_number="PC9"), Verdict.REFUSED),
        (vendor_error("invalid_transition", status="accepted"), Verdict.REFUSED),  # not packed
    ],
)
async def test_a_label_already_attached_counts_as_done(
    vendors: Vendors, mock: MockVendors, refusal: dict[str, object], verdict: Verdict
) -> None:
    mock.post("http://wms.test/fulfilment-orders/FO-000001/label").respond(409, json=refusal)
    body = {"tracking_number": "PC1", "carrier": "parcelco", "label_id": "LB-1"}
    outcome = await vendors.attach_label("FO-000001", body, key="k", correlation_id=CORR)
    assert outcome.verdict is verdict


@pytest.mark.parametrize(
    ("wms_status", "verdict"),
    [
        ("cancelled", Verdict.DONE),
        ("shipped", Verdict.REFUSED),  # too late to cancel: permanent, not retried
    ],
)
async def test_cancelling_a_fulfilment_order_that_is_already_cancelled_counts_as_done(
    vendors: Vendors, mock: MockVendors, wms_status: str, verdict: Verdict
) -> None:
    mock.post("http://wms.test/fulfilment-orders/FO-000001/cancel").respond(
        409, json=vendor_error("invalid_transition", status=wms_status)
    )
    outcome = await vendors.cancel_fulfilment_order("FO-000001", key="k", correlation_id=CORR)
    assert outcome.verdict is verdict


Write = Callable[[Vendors], Awaitable[Outcome]]
WRITES: dict[str, Write] = {
    "create fulfilment order": lambda v: v.create_fulfilment_order(
        {}, key="K", correlation_id=CORR
    ),
    "cancel fulfilment order": lambda v: v.cancel_fulfilment_order(
        "FO-1", key="K", correlation_id=CORR
    ),
    "attach label": lambda v: v.attach_label(
        "FO-1", {"tracking_number": "PC1"}, key="K", correlation_id=CORR
    ),
    "plan shipment": lambda v: v.plan_shipment({}, key="K", correlation_id=CORR),
    "buy label": lambda v: v.buy_label({}, key="K", correlation_id=CORR),
    "goods issue": lambda v: v.goods_issue("SO-1", {}, key="K", correlation_id=CORR),
    "tracking": lambda v: v.post_tracking("SO-1", {}, key="K", correlation_id=CORR),
    "freight accrual": lambda v: v.freight_accrual({}, key="K", correlation_id=CORR),
    "inventory adjustment": lambda v: v.inventory_adjustment({}, key="K", correlation_id=CORR),
    "goods receipt": lambda v: v.goods_receipt({}, key="K", correlation_id=CORR),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
async def test_every_write_carries_idempotency_key_and_correlation_id(
    vendors: Vendors, mock: MockVendors, write: Write
) -> None:
    for url in URLS.values():
        mock.post(re.compile(re.escape(url))).respond(201, json={"id": "X-1"})
    outcome = await write(vendors)
    assert outcome.verdict is Verdict.OK
    request = mock.calls[-1]
    assert request.headers["idempotency-key"] == "K"
    assert request.headers["x-correlation-id"] == CORR
    assert request.headers["content-type"] == "application/json"


async def test_reads_carry_the_correlation_id_too(vendors: Vendors, mock: MockVendors) -> None:
    mock.get("http://wms.test/fulfilment-orders").respond(200, json={"items": []})
    await vendors.find_fulfilment_orders("SO-000001", correlation_id=CORR)
    request = mock.calls[-1]
    assert request.headers["x-correlation-id"] == CORR
    assert request.url.query["order_ref"] == "SO-000001"
    assert "idempotency-key" not in request.headers


def test_idempotency_keys_name_the_business_action() -> None:
    """The same action always gets the same key, whichever event or retry asks for it."""
    packed = {
        "order_ref": "SO-000001",
        "fulfilment_order_id": "FO-000001",
        "ship_to": {"country": "DE"},
        "service_level": "standard",
        "packages": [{"package_id": "P1", "weight_kg": 1.5, "contents": []}],
    }
    plan = steps.plan_shipment(packed)
    shipment = {"id": "SH-000001", "service": "ground", "carrier": "parcelco"}
    label = steps.buy_label("SO-000001", "FO-000001", shipment, plan.payload)
    assert plan.key == "shipment-FO-000001"
    assert label.key == steps.buy_label("SO-000001", "FO-000001", shipment, plan.payload).key
    assert label.key == "label-FO-000001"
    shipped_gi = steps.goods_issue("SO-000001", "FO-000001", {"lines": [{"line": 1, "qty": 2}]})
    assert shipped_gi.key == "gi-FO-000001"
    settled = {"order_ref": "SO-000001", "shipment_id": "SH-000001", "amount": {}}
    assert steps.freight_accrual(settled).key == "accrual-SH-000001"
